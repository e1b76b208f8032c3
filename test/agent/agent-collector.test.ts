import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import {
  agentErrorReason,
  createAgentCollector,
  type AgentCollectorOptions,
} from '../../src/agent/agent-collector';
import { TtrpcStatusError } from '../../src/agent/ttrpc-client';
import { KataMonitorError } from '../../src/errors';
import { silentLogger } from '../../src/log';
import { CpuSlices } from '../../src/util/cpu-slices';
import type { CollectContext, ExpositionChunk, ExtraSource, ShimOutcome } from '../../src/metrics/source';
import { startAgentServer, type SimAgentServer } from '../../src/sim/agent-server';
import type { SimSandbox } from '../../src/sim/types';
import type { SandboxInfo } from '../../src/types';
import { rmrf, tmpDir, waitFor } from '../helpers/util';
import { simSandbox } from './helpers';

const OK: ShimOutcome = {
  ok: true,
  durationMs: 3,
  families: new Set(['kata_agent_scrape_count', 'kata_shim_threads']),
};
const FAILED: ShimOutcome = { ok: false, durationMs: 3000, reason: 'timeout', message: 'shim hung' };

function info(sim: SimSandbox, withUrl = true): SandboxInfo {
  const s: SandboxInfo = {
    id: sim.id,
    runtime: sim.runtime,
    root: path.dirname(sim.sandboxDir),
    dir: sim.sandboxDir,
    hypervisor: sim.hypervisor,
    cri: { uid: sim.pod.uid, name: sim.pod.name, namespace: sim.pod.namespace },
  };
  if (withUrl) s.agentUrl = sim.agentUrl;
  return s;
}

function ctxFor(
  sandboxes: SandboxInfo[],
  outcomes: Record<string, ShimOutcome>,
  timeoutMs = 10_000,
): { ctx: CollectContext; done(): void } {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  return {
    ctx: {
      sandboxes: [...sandboxes].sort((a, b) => a.id.localeCompare(b.id)),
      shimOutcome: id => Promise.resolve(outcomes[id] ?? FAILED),
      signal: ac.signal,
      deadline: Date.now() + timeoutMs,
    },
    done: () => clearTimeout(timer),
  };
}

async function collect(
  src: ExtraSource,
  sandboxes: SandboxInfo[],
  outcomes: Record<string, ShimOutcome>,
  timeoutMs?: number,
) {
  const { ctx, done } = ctxFor(sandboxes, outcomes, timeoutMs);
  try {
    return await src.collect(ctx);
  } finally {
    done();
  }
}

const own = (chunks: ExpositionChunk[]): string =>
  chunks
    .filter(c => !c.sandbox)
    .map(c => String(c.text))
    .join('');
const agentChunk = (chunks: ExpositionChunk[], id: string) => chunks.find(c => c.sandbox?.id === id);

describe('agent collector', () => {
  let dir: string;
  let sims: SimSandbox[];
  let servers: SimAgentServer[];
  let collector: (ExtraSource & { close(): Promise<void> }) | undefined;
  const extraClosers: (() => Promise<void>)[] = [];

  async function setup(n: number, opts: Partial<AgentCollectorOptions> = {}): Promise<ExtraSource> {
    sims = [];
    servers = [];
    for (let i = 0; i < n; i++) {
      const sim = simSandbox(dir, i);
      fs.mkdirSync(sim.sandboxDir, { recursive: true });
      // Go runtime layout: one directory per container
      for (const c of sim.containers) fs.mkdirSync(path.join(sim.sandboxDir, c));
      fs.writeFileSync(path.join(sim.sandboxDir, 'persist.json'), '{}');
      sims.push(sim);
      servers.push(await startAgentServer(sim));
    }
    collector = createAgentCollector({
      logger: silentLogger,
      callTimeoutMs: 2000,
      dialTimeoutMs: 1000,
      ...opts,
    });
    return collector;
  }

  beforeEach(() => {
    dir = tmpDir('km-col-');
  });
  afterEach(async () => {
    await collector?.close();
    collector = undefined;
    for (const s of servers ?? []) await s.stop();
    for (const c of extraClosers.splice(0)) await c();
    rmrf(dir);
  });

  it('fallback: asks the agent for metrics only when the shim failed', async () => {
    const src = await setup(2);
    const [a, b] = sims as [SimSandbox, SimSandbox];
    const chunks = await collect(src, [info(a), info(b)], { [a.id]: OK, [b.id]: FAILED });
    expect(servers[0]!.calls('grpc.AgentService/GetMetrics')).toBe(0);
    expect(servers[1]!.calls('grpc.AgentService/GetMetrics')).toBe(1);
    expect(agentChunk(chunks, a.id)).toBeUndefined();
    const cb = agentChunk(chunks, b.id)!;
    expect(String(cb.text)).toContain('kata_agent_scrape_count');
    expect(String(cb.text)).toContain('kata_guest_meminfo');
    expect(cb.skipFamilies).toBeUndefined();
    expect(cb.sandbox).toMatchObject({ id: b.id });
  });

  it('always: asks every agent and skips the families the shim already gave', async () => {
    const src = await setup(2, { agentMetrics: 'always' });
    const [a, b] = sims as [SimSandbox, SimSandbox];
    const chunks = await collect(src, [info(a), info(b)], { [a.id]: OK, [b.id]: FAILED });
    expect(servers.map(s => s.calls('grpc.AgentService/GetMetrics'))).toEqual([1, 1]);
    expect(agentChunk(chunks, a.id)!.skipFamilies).toBe(OK.families);
    expect(agentChunk(chunks, b.id)!.skipFamilies).toBeUndefined();
  });

  it('never: no GetMetrics even when the shim failed; the rest still works', async () => {
    const src = await setup(1, { agentMetrics: 'never' });
    const a = sims[0]!;
    const chunks = await collect(src, [info(a)], { [a.id]: FAILED });
    expect(servers[0]!.calls('grpc.AgentService/GetMetrics')).toBe(0);
    expect(chunks.every(c => !c.sandbox)).toBe(true);
    expect(own(chunks)).toContain('kata_monitor_agent_up{');
  });

  it('exports agent_up, agent_info and per-container stats with the sandbox labels', async () => {
    const src = await setup(1);
    const a = sims[0]!;
    const text = own(await collect(src, [info(a)], { [a.id]: OK }));
    const sbl = `sandbox_id="${a.id}",cri_uid="uid-0",cri_name="pod-0",cri_namespace="default"`;
    expect(text).toContain(`kata_monitor_agent_up{${sbl}} 1\n`);
    expect(text).toMatch(
      new RegExp(
        `kata_monitor_agent_info\\{${sbl},version="[^"]+",init_daemon="true",supports_seccomp="true"\\} 1\n`,
      ),
    );
    expect(text).toContain('# TYPE kata_monitor_guest_container_cpu_usage_seconds_total counter\n');
    for (const c of a.containers) {
      const cl = `${sbl},container_id="${c}"`;
      expect(text).toMatch(
        new RegExp(`kata_monitor_guest_container_cpu_usage_seconds_total\\{${cl}\\} [0-9.e+]+\n`),
      );
      expect(text).toMatch(new RegExp(`kata_monitor_guest_container_memory_usage_bytes\\{${cl}\\} \\d+\n`));
      expect(text).toMatch(
        new RegExp(`kata_monitor_guest_container_memory_limit_bytes\\{${cl}\\} [0-9.e+]+\n`),
      );
      expect(text).toMatch(new RegExp(`kata_monitor_guest_container_pids\\{${cl}\\} \\d+\n`));
      expect(text).toMatch(
        new RegExp(`kata_monitor_guest_container_blkio_bytes_total\\{${cl},op="read"\\} \\d+\n`),
      );
      expect(text).toMatch(
        new RegExp(`kata_monitor_guest_container_blkio_bytes_total\\{${cl},op="write"\\} \\d+\n`),
      );
      expect(text).toMatch(
        new RegExp(
          `kata_monitor_guest_container_network_receive_bytes_total\\{${cl},interface="eth0"\\} \\d+\n`,
        ),
      );
      expect(text).toMatch(
        new RegExp(
          `kata_monitor_guest_container_network_transmit_bytes_total\\{${cl},interface="eth0"\\} \\d+\n`,
        ),
      );
    }
    expect(servers[0]!.calls('grpc.AgentService/StatsContainer')).toBe(2);
    // each family header exactly once
    expect(text.match(/# TYPE kata_monitor_guest_container_pids /g)).toHaveLength(1);
    expect(text).not.toContain('kata_monitor_agent_errors_total{');
  });

  it('writes the per-sandbox text in turns of the CPU slices it is given', async () => {
    const slices = new CpuSlices(0); // every slice is used up at once: each sandbox takes a turn
    const src = await setup(3, { slices });
    const text = own(
      await collect(
        src,
        sims.map(s => info(s)),
        Object.fromEntries(sims.map(s => [s.id, OK])),
      ),
    );
    for (const s of sims) expect(text).toContain(`kata_monitor_agent_up{sandbox_id="${s.id}"`);
    expect(slices.parked).toBeGreaterThanOrEqual(3);
  });

  it('sees containers added and removed between collections (the listing is cached by directory mtime)', async () => {
    const src = await setup(1);
    const a = sims[0]!;
    const pids = (text: string) => text.match(/^kata_monitor_guest_container_pids\{[^}]*\}/gm) ?? [];
    const first = own(await collect(src, [info(a)], { [a.id]: OK }));
    expect(pids(first)).toHaveLength(2);
    // Removing a container directory: its stats stop at once.
    fs.rmSync(path.join(a.sandboxDir, a.containers[0]!), { recursive: true });
    const second = own(await collect(src, [info(a)], { [a.id]: OK }));
    expect(pids(second)).toHaveLength(1);
    expect(second).not.toContain(`container_id="${a.containers[0]}"`);
    // Adding it back: asked again (the agent still knows it).
    fs.mkdirSync(path.join(a.sandboxDir, a.containers[0]!));
    const third = own(await collect(src, [info(a)], { [a.id]: OK }));
    expect(pids(third)).toHaveLength(2);
    expect(third).toContain(`container_id="${a.containers[0]}"`);
  });

  it('caches guest details across collections and reuses the connection', async () => {
    const src = await setup(1);
    const a = sims[0]!;
    await collect(src, [info(a)], { [a.id]: OK });
    const second = own(await collect(src, [info(a)], { [a.id]: OK }));
    expect(second).toContain('kata_monitor_agent_info{');
    expect(servers[0]!.calls('grpc.AgentService/GetGuestDetails')).toBe(1);
    expect(servers[0]!.calls('grpc.Health/Check')).toBe(2);
    expect(servers[0]!.connections).toBe(1);
  });

  it('runtime-rs: container ids come from the injected function; collectContainerStats=false turns stats off', async () => {
    const sim = simSandbox(dir, 5, { runtime: 'rs' });
    fs.mkdirSync(sim.sandboxDir, { recursive: true });
    servers = [await startAgentServer(sim)];
    sims = [sim];
    const asked: string[] = [];
    collector = createAgentCollector({
      logger: silentLogger,
      containerIds: sb => {
        asked.push(sb.id);
        return [sim.containers[1]!];
      },
    });
    const text = own(await collect(collector, [info(sim)], { [sim.id]: OK }));
    expect(asked).toEqual([sim.id]);
    expect(text).toContain(`container_id="${sim.containers[1]}"`);
    expect(text).not.toContain(`container_id="${sim.containers[0]}"`);
    await collector.close();

    collector = createAgentCollector({
      logger: silentLogger,
      collectContainerStats: false,
      containerIds: () => sim.containers,
    });
    const off = own(await collect(collector, [info(sim)], { [sim.id]: OK }));
    expect(off).not.toContain('kata_monitor_guest_container_');
    expect(off).toContain('kata_monitor_agent_up{');
  });

  it('remembers PERMISSION_DENIED per method: the next collection does not call again', async () => {
    const src = await setup(1);
    const a = sims[0]!;
    a.agentFault = { kind: 'deny' };
    const first = await collect(src, [info(a)], { [a.id]: FAILED });
    expect(servers[0]!.calls('grpc.AgentService/GetMetrics')).toBe(1);
    expect(agentChunk(first, a.id)).toBeUndefined();
    const t1 = own(first);
    expect(t1).toContain(
      `kata_monitor_agent_errors_total{sandbox_id="${a.id}",reason="permission_denied"} 4\n`,
    );
    expect(t1).not.toContain('kata_monitor_agent_up{'); // a refused Check says nothing about health

    const t2 = own(await collect(src, [info(a)], { [a.id]: FAILED }));
    expect(servers[0]!.calls('grpc.AgentService/GetMetrics')).toBe(1);
    expect(servers[0]!.calls('grpc.Health/Check')).toBe(1);
    expect(servers[0]!.calls('grpc.AgentService/StatsContainer')).toBe(1);
    // the counter is kept across collections, not increased while backing off
    expect(t2).toContain(`reason="permission_denied"} 4\n`);
  });

  it('retries a remembered denial once the back-off has passed', async () => {
    let clock = 1_000_000;
    const src = await setup(1, { now: () => clock, deniedRetryMs: 60_000 });
    const a = sims[0]!;
    a.agentFault = { kind: 'unimplemented' };
    const t1 = own(await collect(src, [info(a)], { [a.id]: FAILED }));
    expect(t1).toContain('reason="unimplemented"} 4\n');
    a.agentFault = undefined;
    clock += 61_000;
    const chunks = await collect(src, [info(a)], { [a.id]: FAILED });
    expect(servers[0]!.calls('grpc.AgentService/GetMetrics')).toBe(2);
    expect(agentChunk(chunks, a.id)).toBeDefined();
    expect(own(chunks)).toContain('kata_monitor_agent_up{');
  });

  it('counts unreachable agents once per collection and drops series of sandboxes that left', async () => {
    const src = await setup(1);
    const a = sims[0]!;
    const gone = simSandbox(dir, 7); // no server, no shim
    const t1 = own(await collect(src, [info(a), info(gone)], { [a.id]: OK, [gone.id]: FAILED }));
    expect(t1).toContain(
      `kata_monitor_agent_up{sandbox_id="${gone.id}",cri_uid="uid-7",cri_name="pod-7",cri_namespace="default"} 0\n`,
    );
    expect(t1).toContain(`kata_monitor_agent_errors_total{sandbox_id="${gone.id}",reason="unreachable"} 1\n`);
    const t2 = own(await collect(src, [info(a), info(gone)], { [a.id]: OK, [gone.id]: FAILED }));
    expect(t2).toContain(`kata_monitor_agent_errors_total{sandbox_id="${gone.id}",reason="unreachable"} 2\n`);
    const t3 = own(await collect(src, [info(a)], { [a.id]: OK }));
    expect(t3).not.toContain(gone.id);
    expect(t3).toContain(a.id);
  });

  it('reports a broken agent (bad frames) as protocol errors and recovers', async () => {
    const src = await setup(1);
    const a = sims[0]!;
    a.agentFault = { kind: 'badframe' };
    const t1 = own(await collect(src, [info(a)], { [a.id]: FAILED }));
    expect(t1).toContain(`reason="protocol"} 1\n`);
    expect(t1).toContain(`kata_monitor_agent_up{sandbox_id="${a.id}"`);
    a.agentFault = undefined;
    const chunks = await collect(src, [info(a)], { [a.id]: FAILED });
    expect(agentChunk(chunks, a.id)).toBeDefined();
  });

  it('stays within the collection deadline when the agent hangs', async () => {
    const src = await setup(1, { callTimeoutMs: 60_000 });
    const a = sims[0]!;
    a.agentFault = { kind: 'hang' };
    const chunks = await collect(src, [info(a)], { [a.id]: FAILED }, 300);
    expect(own(chunks)).toContain(`reason="timeout"} 1\n`);
    expect(own(chunks)).toContain(
      `kata_monitor_agent_up{sandbox_id="${a.id}",cri_uid="uid-0",cri_name="pod-0",cri_namespace="default"} 0\n`,
    );
  });

  it('asks at most `concurrency` agents at a time', async () => {
    const src = await setup(6, { concurrency: 2, callTimeoutMs: 60_000 });
    for (const s of sims) s.agentFault = { kind: 'hang' };
    const asked = (): number => servers.filter(s => s.connections > 0).length;
    const run = collect(
      src,
      sims.map(s => info(s)),
      {},
      1500,
    );
    await waitFor(() => asked() >= 2);
    // The two hung agents hold both places until the deadline: nobody else is dialled meanwhile.
    await new Promise(r => setTimeout(r, 300));
    expect(asked()).toBe(2);
    const chunks = await run;
    for (const s of sims) expect(own(chunks)).toContain(`kata_monitor_agent_up{sandbox_id="${s.id}"`);
  });

  it('vsock:// without the addon is reported as vsock_unavailable', async () => {
    const src = await setup(0, { vsock: null });
    const sim = simSandbox(dir, 3);
    const sb: SandboxInfo = { ...info(sim), agentUrl: 'vsock://830455376:1024' };
    const text = own(await collect(src, [sb], { [sim.id]: FAILED }));
    expect(text).toContain(
      `kata_monitor_agent_errors_total{sandbox_id="${sim.id}",reason="vsock_unavailable"} 1\n`,
    );
  });

  it("prefers the shim's /agent-url and caches it; the on-disk URL is enough when the shim is hung", async () => {
    const src = await setup(1);
    const a = sims[0]!;
    let asked = 0;
    const shim = http.createServer((req, res) => {
      asked++;
      if (req.url === '/agent-url') res.end(a.agentUrl);
      else res.writeHead(404).end();
    });
    await new Promise<void>(r => shim.listen(a.shimSocketPath, r));
    extraClosers.push(() => new Promise<void>(r => shim.close(() => r())));
    const noDiskUrl = info(a, false);
    const t1 = own(await collect(src, [noDiskUrl], { [a.id]: OK }));
    expect(t1).toContain(
      `kata_monitor_agent_up{sandbox_id="${a.id}",cri_uid="uid-0",cri_name="pod-0",cri_namespace="default"} 1\n`,
    );
    await collect(src, [noDiskUrl], { [a.id]: OK });
    expect(asked).toBe(1);

    // another sandbox whose shim accepts but never answers: the on-disk URL is used right away
    const b = simSandbox(dir, 1);
    fs.mkdirSync(b.sandboxDir, { recursive: true });
    servers.push(await startAgentServer(b));
    const hung = http.createServer(() => undefined);
    await new Promise<void>(r => hung.listen(b.shimSocketPath, r));
    extraClosers.push(async () => {
      hung.closeAllConnections();
      await new Promise<void>(r => hung.close(() => r()));
    });
    const chunks = await collect(src, [info(b)], { [b.id]: FAILED });
    expect(agentChunk(chunks, b.id)).toBeDefined();
  });
});

describe('agentErrorReason', () => {
  it.each([
    [new TtrpcStatusError('/m', 7, 'x'), 'permission_denied'],
    [new TtrpcStatusError('/m', 12, 'x'), 'unimplemented'],
    [new TtrpcStatusError('/m', 4, 'x'), 'timeout'],
    [new TtrpcStatusError('/m', 13, 'x'), 'protocol'],
    [new KataMonitorError('AGENT_TIMEOUT', 'x'), 'timeout'],
    [new KataMonitorError('AGENT_UNREACHABLE', 'x'), 'unreachable'],
    [new KataMonitorError('AGENT_PROTOCOL', 'x'), 'protocol'],
    [new KataMonitorError('VSOCK_UNAVAILABLE', 'x'), 'vsock_unavailable'],
  ])('%s → %s', (err, reason) => {
    expect(agentErrorReason(err)).toBe(reason);
  });
});
