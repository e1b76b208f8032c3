/**
 * The whole product on one simulated node: SimNode (real shim servers, CRI over gRPC, agents over hybrid vsock,
 * stand-in hypervisor processes, a cgroup tree) against the real daemon (startDaemon), through HTTP.
 */
import { spawnSync } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from '../../src/config';
import { parseExposition } from '../../src/metrics/exposition-parse';
import { silentLogger } from '../../src/log';
import { startDaemon, type Daemon } from '../../src/main';
import { defaultSimHooks, simSysfs } from '../../src/sim/default-hooks';
import { SimNode } from '../../src/sim/node';
import type { SimSandbox } from '../../src/sim/types';
import { findBinary, rmrf, tmpDir, waitFor } from '../helpers/util';

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function get(url: string, headers: Record<string, string> = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, res => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', d => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

/** Sample lines of `family` (exact name) whose labels include `sandbox_id="<id>"`. */
function samplesOf(body: string, family: string, id?: string): string[] {
  return body
    .split('\n')
    .filter(
      l =>
        (l.startsWith(family + '{') || l.startsWith(family + ' ')) &&
        (!id || l.includes(`sandbox_id="${id}"`)),
    );
}

/** GET that reads one chunk, then waits for `resume` before reading the rest (a slow client). */
function slowGet(url: string, resume: Promise<void>): Promise<Res> {
  return new Promise((resolve, reject) => {
    http
      .get(url, res => {
        const chunks: Buffer[] = [];
        res.once('data', (d: Buffer) => {
          chunks.push(d);
          res.pause();
          void resume.then(() => {
            res.on('data', (c: Buffer) => chunks.push(c));
            res.resume();
          });
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      })
      .on('error', reject);
  });
}

/** Sample lines per sandbox id. */
function linesPerSandbox(body: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of body.matchAll(/[{,]sandbox_id="([0-9a-f]+)"/g)) out.set(m[1]!, (out.get(m[1]!) ?? 0) + 1);
  return out;
}

function valueOf(line: string | undefined): number {
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('simulated node + daemon', () => {
  let dir: string;
  let node: SimNode;
  let daemon: Daemon;
  let sbs: SimSandbox[];
  const byIndex = (i: number): SimSandbox => sbs.find(s => s.index === i)!;

  beforeAll(async () => {
    dir = tmpDir('kn-');
    node = await SimNode.start({
      dir,
      sandboxes: 10,
      rs: 5,
      seed: 11,
      faults: [
        { target: { index: 0 }, shim: { kind: 'hang' } },
        { target: { index: 1 }, shim: { kind: 'garbage' } },
        { target: { index: 2 }, shim: { kind: 'http500' } },
        { target: { index: 2 }, agent: { kind: 'deny' } },
        { target: { index: 3 }, shim: { kind: 'gone' } },
        { target: { index: 5 }, shim: { kind: 'disconnect' } },
        { target: { index: 6 }, shim: { kind: 'conflict' } },
        { target: { index: 7 }, shim: { kind: 'prelabelled' } },
        { target: { index: 8 }, shim: { kind: 'huge' } },
        { target: { index: 9 }, shim: { kind: 'slow', ms: 300 } },
      ],
      hooks: defaultSimHooks({ dir, processes: 'light' }),
    });
    sbs = node.sandboxes();
    const config = parseArgs([
      '--listen-address=127.0.0.1:0',
      `--sandbox-roots=${path.join(dir, 'vc', 'sbs')},${path.join(dir, 'kata')}`,
      `--runtime-endpoint=unix://${path.join(dir, 'cri.sock')}`,
      `--path.run=${dir}`,
      `--path.sysfs=${simSysfs(dir)}`,
      '--shim-timeout=1500ms',
      '--shim-max-body=8MiB',
    ]);
    daemon = await startDaemon(config, { logger: silentLogger });
    // Every sandbox listed and labelled by CRI.
    await waitFor(
      async () => {
        const m = await get(`${daemon.url}/metrics?filter_family=kata_monitor_sandboxes_without_metadata`);
        const s = await get(`${daemon.url}/sandboxes`);
        return s.body.split('\n').filter(Boolean).length === 15 && m.body.includes('without_metadata 0');
      },
      10000,
      100,
      'all 15 sandboxes discovered and labelled',
    );
  }, 60000);

  afterAll(async () => {
    await daemon?.stop();
    await node?.stop();
    rmrf(dir);
  });

  it('lists the Kata sandboxes sorted, never the runc pod', async () => {
    const r = await get(`${daemon.url}/sandboxes`);
    const ids = r.body.split('\n').filter(Boolean);
    expect(ids).toEqual(sbs.map(s => s.id).sort());
    for (const p of node.summary().runcPods) expect(r.body).not.toContain(p.id);
  });

  it('turns every shim failure into data and keeps every other sandbox', async () => {
    const r = await get(`${daemon.url}/metrics`);
    expect(r.status).toBe(200);
    const body = r.body;
    const up = (i: number): number => valueOf(samplesOf(body, 'kata_monitor_sandbox_up', byIndex(i).id)[0]);
    const errors = (i: number, reason: string): number =>
      valueOf(
        body
          .split('\n')
          .find(l =>
            l.startsWith(
              `kata_monitor_sandbox_scrape_errors_total{sandbox_id="${byIndex(i).id}",reason="${reason}"}`,
            ),
          ),
      );
    expect(samplesOf(body, 'kata_monitor_sandbox_up')).toHaveLength(15);
    const expected: Array<[number, string]> = [
      [0, 'timeout'],
      [1, 'parse'],
      [2, 'http_status'],
      [3, 'gone'],
      [5, 'parse'],
      [8, 'too_large'],
    ];
    for (const [i, reason] of expected) {
      expect({ i, up: up(i) }).toEqual({ i, up: 0 });
      expect({ i, reason, n: errors(i, reason) >= 1 }).toEqual({ i, reason, n: true });
    }
    // runtime-rs QEMU and Firecracker shims abort on /metrics: skipped, said so.
    for (const sb of sbs.filter(s => s.runtime === 'rs')) {
      const unsafe = sb.hypervisor === 'qemu' || sb.hypervisor === 'firecracker';
      expect({ hv: sb.hypervisor, up: up(sb.index) }).toEqual({ hv: sb.hypervisor, up: unsafe ? 0 : 1 });
      if (unsafe) expect(errors(sb.index, 'unsafe_skipped')).toBeGreaterThanOrEqual(1);
    }
    for (const i of [4, 6, 7, 9]) expect({ i, up: up(i) }).toEqual({ i, up: 1 });
    // Healthy sandboxes carry their shim families with the four labels, go_/process_ renamed.
    const ok = byIndex(4);
    const line = samplesOf(body, 'kata_shim_go_goroutines', ok.id)[0];
    expect(line).toContain(
      `sandbox_id="${ok.id}",cri_uid="${ok.pod.uid}",cri_name="${ok.pod.name}",cri_namespace="${ok.pod.namespace}"`,
    );
    expect(body).not.toMatch(/^go_goroutines/m);
    // Garbage is not data: none of that sandbox's shim samples.
    expect(samplesOf(body, 'kata_shim_threads', byIndex(1).id)).toEqual([]);
    // A series that already had sandbox_id keeps it as exported_sandbox_id.
    expect(body).toMatch(new RegExp(`exported_sandbox_id="[^"]*",sandbox_id="${byIndex(7).id}"`));
    expect(valueOf(samplesOf(body, 'kata_monitor_scrape_failed_count')[0])).toBeGreaterThanOrEqual(1);
  });

  it('takes guest metrics from the agent when the shim cannot be scraped, and remembers a policy refusal', async () => {
    const body = (await get(`${daemon.url}/metrics`)).body;
    // Hung shim (Go) and unsafe runtime-rs Firecracker: guest load straight from the agent.
    const rsFc = sbs.find(s => s.runtime === 'rs' && s.hypervisor === 'firecracker')!;
    for (const sb of [byIndex(0), rsFc]) {
      expect({ id: sb.index, n: samplesOf(body, 'kata_guest_load', sb.id).length }).toEqual({
        id: sb.index,
        n: 3,
      });
    }
    // A healthy shim's guest families are not duplicated by the agent.
    expect(samplesOf(body, 'kata_guest_load', byIndex(4).id)).toHaveLength(3);
    // The agent of sandbox 2 denies every call by policy: no guest metrics, the refusal counted.
    expect(samplesOf(body, 'kata_guest_load', byIndex(2).id)).toEqual([]);
    expect(body).toMatch(
      new RegExp(
        `kata_monitor_agent_errors_total\\{sandbox_id="${byIndex(2).id}",reason="permission_denied"\\} [1-9]`,
      ),
    );
  });

  it('exports per-container guest stats and agent health for every sandbox whose agent answers', async () => {
    const body = (await get(`${daemon.url}/metrics`)).body;
    for (const sb of sbs) {
      // QEMU agents are on real AF_VSOCK (vsock://CID:1024), which this machine does not have: the failure
      // is counted instead.
      if (sb.hypervisor === 'qemu') {
        expect(body).toMatch(
          new RegExp(`kata_monitor_agent_errors_total\\{sandbox_id="${sb.id}",reason="[a-z_]+"\\} [1-9]`),
        );
        continue;
      }
      const denied = sb.index === 2;
      const cpu = samplesOf(body, 'kata_monitor_guest_container_cpu_usage_seconds_total', sb.id);
      expect({ i: sb.index, hv: sb.hypervisor, containers: cpu.length }).toEqual({
        i: sb.index,
        hv: sb.hypervisor,
        containers: denied ? 0 : sb.containers.length,
      });
      if (!denied) {
        expect({ i: sb.index, up: valueOf(samplesOf(body, 'kata_monitor_agent_up', sb.id)[0]) }).toEqual({
          i: sb.index,
          up: 1,
        });
      }
    }
  });

  it('reads host-side process and pod cgroup usage without the shim', async () => {
    const body = (await get(`${daemon.url}/metrics`)).body;
    const hung = byIndex(0); // its shim hangs: the host side must not care
    expect(
      samplesOf(body, 'kata_monitor_sandbox_process_resident_memory_bytes', hung.id).some(l =>
        l.includes('component="hypervisor"'),
      ),
    ).toBe(true);
    for (const sb of sbs.filter(s => s.runtime === 'go')) {
      expect({
        i: sb.index,
        n: samplesOf(body, 'kata_monitor_pod_memory_working_set_bytes', sb.id).length,
      }).toEqual({
        i: sb.index,
        n: 1,
      });
    }
    expect(valueOf(samplesOf(body, 'kata_monitor_host_cpus')[0])).toBeGreaterThan(0);
  });

  it('counts a family typed differently by one sandbox and keeps the output valid for promtool', async () => {
    await get(`${daemon.url}/metrics`);
    const body = (await get(`${daemon.url}/metrics`)).body;
    expect(
      valueOf(samplesOf(body, 'kata_monitor_family_conflicts_total{family="kata_guest_load"}')[0]),
    ).toBeGreaterThanOrEqual(1);
    expect(body.match(/^# TYPE kata_guest_load .*$/gm)).toEqual(['# TYPE kata_guest_load gauge']);
    const promtool = findBinary('promtool');
    if (!promtool) throw new Error('promtool not found: install Debian package prometheus (.ci/run does)');
    const check = spawnSync(promtool, ['check', 'metrics'], { input: body, encoding: 'utf8' });
    const out = `${check.stdout}${check.stderr}`;
    expect(out).not.toMatch(/error while linting|parse error|duplicate/i);
    expect(check.status).not.toBe(1);
  });

  it('shares one collection between concurrent scrapes: each shim is asked once', async () => {
    const ok = byIndex(4);
    const before = node.shimServer(ok.id)!.tick;
    const [a, b] = await Promise.all([
      get(`${daemon.url}/metrics`),
      get(`${daemon.url}/metrics`, { 'Accept-Encoding': 'gzip' }),
    ]);
    expect(a.status).toBe(200);
    expect(b.headers['content-encoding']).toBe('gzip');
    expect(node.shimServer(ok.id)!.tick).toBe(before + 1);
  });

  it('serves ?sandbox= of a hung shim from its agent, saying so in a header; 502 when nothing is left', async () => {
    const hung = await get(`${daemon.url}/metrics?sandbox=${byIndex(0).id}`);
    expect(hung.status).toBe(200);
    expect(hung.headers['x-kata-monitor-shim-error']).toMatch(/^timeout: /);
    expect(samplesOf(hung.body, 'kata_guest_load', byIndex(0).id)).toHaveLength(3);
    expect(hung.body).not.toMatch(/^kata_shim_go_goroutines/m);
    // Shim answers 500 and the agent refuses everything: no data for it at all.
    const none = await get(`${daemon.url}/metrics?sandbox=${byIndex(2).id}`);
    expect(none.status).toBe(502);
    expect(none.body).toContain('http_status');
    const ok = await get(`${daemon.url}/metrics?sandbox=${byIndex(4).id}`);
    expect(ok.status).toBe(200);
    expect(ok.headers['x-kata-monitor-shim-error']).toBeUndefined();
  }, 20000);

  it('never reuses a body Buffer a slow client is still being sent from', async () => {
    let resume!: () => void;
    const slow = slowGet(`${daemon.url}/metrics`, new Promise<void>(r => (resume = r)));
    // While the slow response waits, later collections run to completion (they would reuse released bodies).
    await new Promise(r => setTimeout(r, 300));
    const later1 = await get(`${daemon.url}/metrics`);
    const later2 = await get(`${daemon.url}/metrics`);
    resume();
    const first = await slow;
    expect(first.status).toBe(200);
    expect(() => parseExposition(first.body)).not.toThrow();
    // Simulated shims grow new series now and then, so the scrapes may differ by a few series; but every
    // series of the slow response is one the later scrapes know, and every sandbox is complete.
    const seriesOf = (body: string): Set<string> =>
      new Set(
        body
          .split('\n')
          .filter(l => l !== '' && !l.startsWith('#'))
          .map(l => l.slice(0, l.lastIndexOf(' '))),
      );
    const known = new Set([...seriesOf(later1.body), ...seriesOf(later2.body)]);
    const unknown = [...seriesOf(first.body)].filter(k => !known.has(k));
    expect(unknown).toEqual([]);
    const perSandbox = linesPerSandbox(first.body);
    for (const [id, n] of linesPerSandbox(later1.body)) {
      expect({ id, n: perSandbox.get(id) ?? 0 }).toEqual({ id, n: expect.any(Number) as number });
      expect(Math.abs((perSandbox.get(id) ?? 0) - n)).toBeLessThanOrEqual(5);
    }
    for (const sb of sbs.filter(s => s.index === 4 || s.index === 6)) {
      expect(samplesOf(first.body, 'kata_shim_go_goroutines', sb.id)).toHaveLength(1);
    }
  }, 30000);

  it('survives a sandbox removed during a scrape, and forgets it', async () => {
    const victim = byIndex(9); // slow shim: still answering when it is removed
    const scrape = get(`${daemon.url}/metrics`);
    await new Promise(r => setTimeout(r, 100));
    await node.removeSandbox(victim.id);
    const r = await scrape;
    expect(r.status).toBe(200);
    await waitFor(
      async () => !(await get(`${daemon.url}/sandboxes`)).body.includes(victim.id),
      2000,
      50,
      'removed sandbox unlisted',
    );
    const after = (await get(`${daemon.url}/metrics`)).body;
    expect(after).not.toContain(victim.id);
  });
});
