/**
 * The container stats text built from cached label sets is byte for byte what TextBuilder writes from label
 * pairs (the reference); the cache follows label value changes (a CRI rename) and forgets what went.
 */
import { ContainerStatsText, LabelTextCache, renderContainerStats } from '../../src/agent/agent-collector';
import type { LeanContainerStats } from '../../src/agent/stats-decode';
import { TextBuilder, type LabelPairs } from '../../src/metrics/text-builder';
import { sandboxLabels, type SandboxInfo } from '../../src/types';

type Sb = Pick<SandboxInfo, 'id' | 'cri'>;

const HELP: Record<string, [string, string]> = {
  kata_monitor_guest_container_cpu_usage_seconds_total: [
    'counter',
    'CPU time used by a container inside the guest, from the agent (StatsContainer).',
  ],
  kata_monitor_guest_container_memory_usage_bytes: [
    'gauge',
    'Memory used by a container inside the guest (cgroup usage), from the agent.',
  ],
  kata_monitor_guest_container_memory_limit_bytes: [
    'gauge',
    'Memory limit of a container inside the guest (cgroup limit), from the agent.',
  ],
  kata_monitor_guest_container_pids: [
    'gauge',
    'Processes (tasks) of a container inside the guest, from the agent.',
  ],
  kata_monitor_guest_container_blkio_bytes_total: [
    'counter',
    'Bytes of block I/O done by a container inside the guest, by operation.',
  ],
  kata_monitor_guest_container_network_receive_bytes_total: [
    'counter',
    'Bytes received on a guest interface of a container, from the agent.',
  ],
  kata_monitor_guest_container_network_transmit_bytes_total: [
    'counter',
    'Bytes sent on a guest interface of a container, from the agent.',
  ],
};

/** The reference rendering: label pairs per sample through TextBuilder. */
function reference(items: Array<[Sb, string, LeanContainerStats]>): string {
  const b = new TextBuilder();
  for (const [name, [type, help]] of Object.entries(HELP)) b.family(name, type as 'gauge', help);
  const n = Object.keys(HELP);
  for (const [sb, id, s] of items) {
    const base: LabelPairs = [...sandboxLabels(sb), ['container_id', id]];
    if (s.cpuTotalNs !== undefined) b.sample(n[0]!, base, s.cpuTotalNs / 1e9);
    if (s.memory) {
      b.sample(n[1]!, base, s.memory.usage);
      b.sample(n[2]!, base, s.memory.limit);
    }
    if (s.pids !== undefined) b.sample(n[3]!, base, s.pids);
    const ops = new Map<string, number>();
    for (const e of s.blkioServiceBytes)
      ops.set(e.op.toLowerCase(), (ops.get(e.op.toLowerCase()) ?? 0) + e.value);
    for (const [op, v] of [...ops].sort((x, y) => x[0].localeCompare(y[0])))
      b.sample(n[4]!, [...base, ['op', op]], v);
    for (const x of s.network) {
      b.sample(n[5]!, [...base, ['interface', x.name]], x.rx_bytes);
      b.sample(n[6]!, [...base, ['interface', x.name]], x.tx_bytes);
    }
  }
  return b.toString();
}

const stats = (over: Partial<LeanContainerStats> = {}): LeanContainerStats => ({
  cpuTotalNs: 616309121789,
  memory: { usage: 104521728, limit: 2 ** 63 },
  pids: 4,
  blkioServiceBytes: [
    { op: 'Write', value: 10 },
    { op: 'Read', value: 5 },
    { op: 'read', value: 7 },
    { op: 'Total', value: 22 },
  ],
  network: [
    { name: 'eth0', rx_bytes: 1, tx_bytes: 2 },
    { name: 'we"ird\\\n', rx_bytes: 3, tx_bytes: 4 },
  ],
  ...over,
});

const A: Sb = { id: 'a'.repeat(64), cri: { uid: 'u-1', name: 'web-1', namespace: 'default' } };
const B: Sb = { id: 'b'.repeat(64), cri: { uid: 'u"2', name: 'line\nbreak', namespace: 'back\\slash' } };
const C: Sb = { id: 'c'.repeat(64) };

function render(cache: LabelTextCache, items: Array<[Sb, string, LeanContainerStats]>): string {
  cache.nextGeneration();
  const out = new ContainerStatsText();
  for (const [sb, id, s] of items) out.add(cache.container(cache.sandbox(sb), id), s);
  cache.pruneContainers();
  return out.toString();
}

describe('container stats text', () => {
  const items: Array<[Sb, string, LeanContainerStats]> = [
    [A, 'c1', stats()],
    [A, 'c2', stats({ cpuTotalNs: undefined, network: [] })],
    [B, 'c"3', stats({ memory: undefined, pids: undefined, blkioServiceBytes: [{ op: 'Sync', value: 1 }] })],
    [C, 'c4', stats({ blkioServiceBytes: [], cpuTotalNs: 0.5 })],
  ];

  it('is byte for byte what TextBuilder writes, first and second time (cached labels)', () => {
    const cache = new LabelTextCache();
    const want = reference(items);
    expect(render(cache, items)).toBe(want);
    expect(render(cache, items)).toBe(want);
    expect(want).toContain('cri_name="line\\nbreak"');
  });

  it('leaves out families without samples and gives nothing for no containers', () => {
    const cache = new LabelTextCache();
    const only: Array<[Sb, string, LeanContainerStats]> = [
      [A, 'x', { cpuTotalNs: undefined, memory: undefined, pids: 3, blkioServiceBytes: [], network: [] }],
    ];
    expect(render(cache, only)).toBe(reference(only));
    expect(render(cache, only).match(/# TYPE/g)).toHaveLength(1);
    expect(render(cache, [])).toBe('');
  });

  it('shows a CRI rename on the next collection and drops sandboxes and containers that went', () => {
    const cache = new LabelTextCache();
    render(cache, items);
    const renamed: Sb = { id: A.id, cri: { uid: 'u-1', name: 'web-renamed', namespace: 'prod' } };
    const next: Array<[Sb, string, LeanContainerStats]> = [[renamed, 'c1', stats()]];
    const text = render(cache, next);
    expect(text).toBe(reference(next));
    expect(text).not.toContain('web-1');
    cache.retain(new Set([A.id]));
    expect(cache.size).toBe(1);
    // c2 was not rendered in the last collection: it is gone from the cache, and renders afresh if it returns.
    const back: Array<[Sb, string, LeanContainerStats]> = [[renamed, 'c2', stats()]];
    expect(render(cache, back)).toBe(reference(back));
  });

  it('renderContainerStats renders one container alone', () => {
    const one: Array<[Sb, string, LeanContainerStats]> = [[B, 'k', stats()]];
    expect(renderContainerStats(B, 'k', stats())).toBe(reference(one));
  });
});
