/**
 * End to end with a real Prometheus (Debian's /usr/bin/prometheus): simulated Kata node → kata-monitor
 * → Prometheus discovering it with the example config's relabel recipe → PromQL through the HTTP API.
 *
 * Processes: `bin/kata-sim` (6 Go-runtime and 2 runtime-rs sandboxes, sandbox 1's shim hangs),
 * `bin/kata-monitor`, `prometheus`. All three run from the built dist/ (`npm test` builds it first).
 *
 * Discovery: Debian's Prometheus has no Kubernetes SD, so the example's `kubernetes_sd_configs` is
 * replaced by a file_sd target carrying the same `__meta_kubernetes_pod_*` labels the pod role
 * would set (annotations, node name, a pod IP with an unrelated container port). The example's
 * relabel_configs are used unchanged: the target is only scraped if they keep it and rewrite its
 * address to the annotated port. A second pod without `prometheus.io/scrape: "true"` must be dropped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as yaml from 'js-yaml';
import { findBinary, rmrf, tmpDir, waitFor } from '../helpers/util';
import {
  DAEMONSET_DIR,
  EXAMPLE_SCRAPE_CONFIG,
  REPO,
  RULES_FILE,
  dashboardQueries,
  findObject,
  metricNames,
  renderKustomize,
  substituteVariables,
  type K8sObject,
} from '../deploy/deploy-helpers';

jest.setTimeout(180_000);

// kata-sim: --sandboxes Go-runtime sandboxes plus --rs runtime-rs ones.
const GO_SANDBOXES = 6;
const RS_SANDBOXES = 2;
const SANDBOXES = GO_SANDBOXES + RS_SANDBOXES;
const HUNG_INDEX = 1;
// Prometheus requires scrape_timeout <= scrape_interval. The daemon's per-shim timeout must stay well
// under the scrape timeout, or the hung shim would fail the whole scrape (up == 0) instead of one sandbox.
const SCRAPE_INTERVAL = '2s';
const SHIM_TIMEOUT = '400ms';
// Grafana's $__rate_interval for these queries: several scrapes wide.
const RATE_INTERVAL = '20s';
const NODE_NAME = 'kata-node-1';

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

interface Proc {
  name: string;
  child: ChildProcess;
  output: string[];
}

const procs: Proc[] = [];
const dirs: string[] = [];

function start(name: string, cmd: string, args: string[]): Proc {
  // detached: its own process group, so afterAll can stop it with everything it spawned.
  const child = spawn(cmd, args, { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = { name, child, output: [] };
  const keep = (b: Buffer): void => {
    p.output.push(b.toString());
    if (p.output.length > 200) p.output.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  procs.push(p);
  return p;
}

function logsOf(p: Proc): string {
  // The simulator's summary line is long and already known: leave it out.
  const text = p.output
    .join('')
    .split('\n')
    .filter(l => !l.startsWith('{"dir"'))
    .join('\n');
  return `--- ${p.name} (exit ${p.child.exitCode ?? 'running'}) ---\n${text.slice(-3000)}`;
}

async function stopAll(): Promise<void> {
  await Promise.all(
    procs.splice(0).map(
      p =>
        new Promise<void>(resolve => {
          if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve();
          const pid = p.child.pid as number;
          const kill = (sig: NodeJS.Signals): void => {
            try {
              process.kill(-pid, sig);
            } catch {
              /* already gone */
            }
          };
          const hard = setTimeout(() => kill('SIGKILL'), 5000);
          p.child.once('exit', () => {
            clearTimeout(hard);
            resolve();
          });
          kill('SIGTERM');
        }),
    ),
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The simulator's one-line JSON summary, printed once every shim listens. */
function firstJsonLine(p: Proc, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(
      () => reject(new Error(`no summary within ${timeoutMs} ms\n${logsOf(p)}`)),
      timeoutMs,
    );
    const onData = (b: Buffer): void => {
      buf += b.toString();
      for (const line of buf.split('\n').slice(0, -1)) {
        const t = line.trim();
        if (!t.startsWith('{')) continue;
        try {
          const v = JSON.parse(t) as unknown;
          clearTimeout(timer);
          p.child.stdout?.off('data', onData);
          return resolve(v);
        } catch {
          /* not the summary */
        }
      }
    };
    p.child.stdout?.on('data', onData);
    p.child.once('exit', code => {
      clearTimeout(timer);
      reject(new Error(`kata-sim exited with ${code} before its summary\n${logsOf(p)}`));
    });
  });
}

/** Sandbox ids in creation order: `sandboxes[].id` (sorted by `index` when given), else every 64-hex string. */
function sandboxIds(summary: unknown): string[] {
  const s = summary as { sandboxes?: { id?: string; index?: number }[] };
  if (Array.isArray(s.sandboxes) && s.sandboxes.every(x => typeof x.id === 'string')) {
    return [...s.sandboxes].sort((a, b) => (a.index ?? 0) - (b.index ?? 0)).map(x => x.id as string);
  }
  return [...new Set(JSON.stringify(summary).match(/\b[0-9a-f]{64}\b/g) ?? [])];
}

/** The simulator's fake sysfs (pod cgroups), if its summary names one. */
function simSysfs(summary: unknown): string | undefined {
  const s = summary as { sysfs?: unknown; paths?: { sysfs?: unknown } };
  const v = s.sysfs ?? s.paths?.sysfs;
  return typeof v === 'string' ? v : undefined;
}

async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: await r.text() };
}

let promBase = '';
async function query(expr: string): Promise<PromResult[]> {
  const { status, body } = await httpGet(`${promBase}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const j = JSON.parse(body) as {
    status: string;
    error?: string;
    data?: { resultType: string; result: unknown };
  };
  if (status !== 200 || j.status !== 'success')
    throw new Error(`query ${expr}: HTTP ${status} ${j.error ?? body}`);
  if (j.data?.resultType === 'scalar') return [{ metric: {}, value: j.data.result as [number, string] }];
  return j.data?.result as PromResult[];
}

const prometheus = findBinary('prometheus');
let nodeDir = '';
let ids: string[] = [];
let daemonBase = '';
let daemonPort = 0;

beforeAll(async () => {
  if (!prometheus) {
    throw new Error(
      "prometheus not found on PATH or in /usr/bin: install Debian's `prometheus` package (.ci/run does)",
    );
  }
  for (const f of ['dist/cli.js', 'dist/main.js', 'dist/sim/cli.js']) {
    if (!fs.existsSync(path.join(REPO, f)))
      throw new Error(`${f} missing: run \`npm run build\` first (npm test does)`);
  }
  // Short: <dir>/vc/sbs/<64 hex>/shim-monitor.sock must fit in a unix socket path.
  nodeDir = tmpDir('k');
  const promDir = tmpDir('km-prom-');
  dirs.push(nodeDir, promDir);

  const sim = start('kata-sim', process.execPath, [
    'bin/kata-sim',
    '--dir',
    nodeDir,
    '--sandboxes',
    String(GO_SANDBOXES),
    '--rs',
    String(RS_SANDBOXES),
    '--faults',
    `${HUNG_INDEX}:hang`,
    '--seed',
    '7',
  ]);
  const summary = await firstJsonLine(sim, 60_000);
  ids = sandboxIds(summary);
  expect(ids).toHaveLength(SANDBOXES);

  daemonPort = await freePort();
  daemonBase = `http://127.0.0.1:${daemonPort}`;
  const sysfs = simSysfs(summary);
  const daemon = start('kata-monitor', process.execPath, [
    'bin/kata-monitor',
    '--listen-address',
    `127.0.0.1:${daemonPort}`,
    '--sandbox-roots',
    `${path.join(nodeDir, 'vc', 'sbs')},${path.join(nodeDir, 'kata')}`,
    '--runtime-endpoint',
    `unix://${path.join(nodeDir, 'cri.sock')}`,
    '--path.run',
    nodeDir,
    ...(sysfs ? ['--path.sysfs', sysfs] : []),
    '--shim-timeout',
    SHIM_TIMEOUT,
    '--log-level',
    process.env.E2E_LOG_LEVEL ?? 'warn',
  ]);
  await waitFor(
    async () => daemon.child.exitCode === null && (await httpGet(`${daemonBase}/healthz`)).status === 200,
    30_000,
    200,
    `kata-monitor /healthz\n${logsOf(daemon)}`,
  );

  // The example scrape config's job, with kubernetes_sd replaced by an equivalent file_sd target list.
  const example = yaml.load(fs.readFileSync(EXAMPLE_SCRAPE_CONFIG, 'utf8')) as {
    scrape_configs: { job_name: string; kubernetes_sd_configs?: unknown; relabel_configs: unknown[] }[];
  };
  const job = example.scrape_configs.find(j => j.job_name === 'kata-monitor');
  if (!job) throw new Error('examples/prometheus.yml has no kata-monitor job');
  const ds = findObject<
    K8sObject & { spec: { template: { metadata: { annotations: Record<string, string> } } } }
  >(renderKustomize(DAEMONSET_DIR), 'DaemonSet');
  const annotationLabels = (annotations: Record<string, string>): Record<string, string> =>
    Object.fromEntries(
      Object.entries(annotations).map(([k, v]) => [
        `__meta_kubernetes_pod_annotation_${k.replace(/[^A-Za-z0-9_]/g, '_')}`,
        v,
      ]),
    );
  const targetsFile = path.join(promDir, 'targets.json');
  fs.writeFileSync(
    targetsFile,
    JSON.stringify([
      {
        // The pod role's address is <pod IP>:<a declared container port>; the annotation picks ours.
        targets: ['127.0.0.1:1'],
        labels: {
          ...annotationLabels({
            ...ds.spec.template.metadata.annotations,
            'prometheus.io/port': String(daemonPort),
          }),
          __meta_kubernetes_namespace: 'kata-system',
          __meta_kubernetes_pod_name: 'kata-monitor-abcde',
          __meta_kubernetes_pod_node_name: NODE_NAME,
        },
      },
      {
        // Another pod in the namespace that did not ask to be scraped.
        targets: ['127.0.0.1:2'],
        labels: {
          __meta_kubernetes_namespace: 'kata-system',
          __meta_kubernetes_pod_name: 'something-else',
          __meta_kubernetes_pod_node_name: NODE_NAME,
        },
      },
    ]),
  );
  const promPort = await freePort();
  promBase = `http://127.0.0.1:${promPort}`;
  const config = {
    global: { scrape_interval: SCRAPE_INTERVAL, scrape_timeout: SCRAPE_INTERVAL, evaluation_interval: '1s' },
    rule_files: [RULES_FILE],
    scrape_configs: [
      {
        job_name: job.job_name,
        file_sd_configs: [{ files: [targetsFile], refresh_interval: '1s' }],
        relabel_configs: job.relabel_configs,
      },
    ],
  };
  const configFile = path.join(promDir, 'prometheus.yml');
  fs.writeFileSync(configFile, yaml.dump(config));
  const prom = start('prometheus', prometheus, [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${path.join(promDir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`,
    '--log.level=warn',
  ]);
  await waitFor(
    async () => prom.child.exitCode === null && (await httpGet(`${promBase}/-/ready`)).status === 200,
    30_000,
    200,
    `prometheus /-/ready\n${logsOf(prom)}`,
  );
});

afterAll(async () => {
  await stopAll();
  for (const d of dirs) rmrf(d);
});

/** waitFor with the processes' logs in the failure message. */
async function eventually<T>(
  what: string,
  f: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  try {
    return (await waitFor(f, timeoutMs, 500, what)) as T;
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${procs.map(logsOf).join('\n')}`);
  }
}

describe('kata-monitor scraped by a real Prometheus', () => {
  it('serves the probe and metrics paths the DaemonSet declares', async () => {
    const ds = findObject<
      K8sObject & {
        spec: {
          template: {
            metadata: { annotations: Record<string, string> };
            spec: {
              containers: {
                livenessProbe: { httpGet: { path: string } };
                readinessProbe: { httpGet: { path: string } };
              }[];
            };
          };
        };
      }
    >(renderKustomize(DAEMONSET_DIR), 'DaemonSet');
    const c = ds.spec.template.spec.containers[0];
    const paths = [
      c?.livenessProbe.httpGet.path,
      c?.readinessProbe.httpGet.path,
      ds.spec.template.metadata.annotations['prometheus.io/path'],
    ];
    expect(paths).toEqual(['/healthz', '/readyz', '/metrics']);
    for (const p of paths) {
      await eventually(
        `GET ${p} == 200`,
        async () => (await httpGet(`${daemonBase}${p}`)).status === 200,
        30_000,
      );
    }
  });

  it('discovers the annotated pod with the example relabel recipe, drops the other, and scrapes it: up == 1', async () => {
    const up = await eventually('up{job="kata-monitor"} == 1', async () => {
      const r = await query('up{job="kata-monitor"}');
      return r.length === 1 && r[0]?.value[1] === '1' && r;
    });
    expect(up[0]?.metric).toMatchObject({
      job: 'kata-monitor',
      instance: `127.0.0.1:${daemonPort}`,
      node: NODE_NAME,
      namespace: 'kata-system',
      pod: 'kata-monitor-abcde',
    });
    const targets = JSON.parse((await httpGet(`${promBase}/api/v1/targets?state=any`)).body) as {
      data: { activeTargets: unknown[]; droppedTargets: { discoveredLabels: Record<string, string> }[] };
    };
    expect(targets.data.activeTargets).toHaveLength(1);
    expect(targets.data.droppedTargets.map(t => t.discoveredLabels.__meta_kubernetes_pod_name)).toEqual([
      'something-else',
    ]);
  });

  it('the hung sandbox is the only one with kata_monitor_sandbox_up == 0', async () => {
    const down = await eventually('kata_monitor_sandbox_up == 0', async () => {
      const r = await query('kata_monitor_sandbox_up == 0');
      return r.length > 0 && r;
    });
    expect(down.map(s => s.metric.sandbox_id)).toEqual([ids[HUNG_INDEX]]);
    const all = await eventually(`${SANDBOXES} kata_monitor_sandbox_up series`, async () => {
      const r = await query('kata_monitor_sandbox_up');
      return r.length === SANDBOXES && r;
    });
    expect(all.map(s => s.metric.sandbox_id).sort()).toEqual([...ids].sort());
  });

  it('kata_guest_load{item="load1"}: one series per scraped sandbox, each with its pod name', async () => {
    const healthy = ids.filter((_, i) => i !== HUNG_INDEX);
    const load = await eventually('kata_guest_load for every healthy sandbox with cri_name', async () => {
      const r = await query('kata_guest_load{item="load1"}');
      const withName = r.filter(s => s.metric.cri_name);
      return healthy.every(id => withName.some(s => s.metric.sandbox_id === id)) && r;
    });
    const perSandbox = new Map<string, number>();
    for (const s of load) {
      const id = s.metric.sandbox_id as string;
      perSandbox.set(id, (perSandbox.get(id) ?? 0) + 1);
      expect(ids).toContain(id);
      expect(s.metric.cri_name).not.toBe('');
      expect(s.metric.cri_namespace).not.toBe('');
    }
    for (const [id, n] of perSandbox) expect({ id, n }).toEqual({ id, n: 1 });
    // The hung shim's guest may still be reported through the agent (--agent-metrics fallback), never twice.
    expect([...perSandbox.keys()].sort()).toEqual(expect.arrayContaining([...healthy].sort()));
  });

  it('the rules load in Prometheus and the sandbox alert goes pending for the hung sandbox', async () => {
    const alert = await eventually('KataSandboxScrapeFailing pending', async () => {
      const j = JSON.parse((await httpGet(`${promBase}/api/v1/alerts`)).body) as {
        data: { alerts: { labels: Record<string, string>; state: string }[] };
      };
      const a = j.data.alerts.filter(x => x.labels.alertname === 'KataSandboxScrapeFailing');
      return a.length > 0 && a;
    });
    expect(alert.map(a => [a.labels.sandbox_id, a.state])).toEqual([[ids[HUNG_INDEX], 'pending']]);
    const rules = JSON.parse((await httpGet(`${promBase}/api/v1/rules`)).body) as {
      data: { groups: { rules: { name: string; health: string }[] }[] };
    };
    const health = rules.data.groups.flatMap(g => g.rules).map(r => [r.name, r.health]);
    expect(health.length).toBe(8);
    for (const [name, h] of health) expect({ name, h }).toEqual({ name, h: 'ok' });
  });

  /** Poll every query until each has returned data once; fail listing the ones that never did. */
  async function expectData(queries: ReturnType<typeof dashboardQueries>): Promise<void> {
    expect(queries.length).toBeGreaterThan(0);
    const empty = new Map(queries.map(q => [`${q.panel} [${q.refId}]: ${q.expr}`, q.expr]));
    await eventually(
      'dashboard queries with data',
      async () => {
        for (const [key, expr] of [...empty]) {
          const r = await query(substituteVariables(expr, RATE_INTERVAL));
          if (r.length > 0) empty.delete(key);
        }
        return empty.size === 0;
      },
      90_000,
    ).catch(err => {
      throw new Error(`${[...empty.keys()].join('\n')}\nreturned no data:\n${(err as Error).message}`);
    });
    expect([...empty.keys()]).toEqual([]);
  }

  // Families produced by the agent collector (direct ttrpc to the simulated agents) and the host
  // collector (/proc of the stand-in processes, the simulator's cgroup files). They need the daemon to
  // run both collectors and kata-sim to start its agents and stand-in processes.
  const EXTRA_SOURCE_METRIC = /^kata_monitor_(agent_|guest_container_|sandbox_process_|pod_|host_)/;
  const usesExtraSources = (expr: string): boolean =>
    metricNames(substituteVariables(expr)).some(n => EXTRA_SOURCE_METRIC.test(n));

  it('every dashboard query on shim and self metrics returns data', async () => {
    await expectData(dashboardQueries().filter(q => !usesExtraSources(q.expr)));
  });

  it('every dashboard query on agent and host collector metrics returns data', async () => {
    await expectData(dashboardQueries().filter(q => usesExtraSources(q.expr)));
  });
});
