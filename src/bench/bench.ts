/**
 * `npm run bench`: measures the daemon against the simulator on this machine, and the floor in the same run.
 *
 * For each node size it starts a fresh simulator and a fresh daemon (each its own process, so their CPU
 * and memory are measured apart), then:
 * - floor: every shim's /metrics fetched at once by this driver, bodies discarded (no parsing, no output);
 * - the daemon's /metrics, plain and gzipped, one scrape at a time: p50/p95 latency, response bytes;
 * - the daemon's CPU time per scrape (utime+stime from /proc/<pid>/stat over the scrapes) and peak RSS (VmHWM);
 * - /healthz latency polled every 10 ms while scrapes run, and the daemon's own event-loop lag p99.
 * Prints a table and writes bench/results.md. Never part of `npm test`.
 *
 * `--against DIR` (pair mode) compares this checkout with another built one (DIR/bin/kata-monitor, DIR/dist) on
 * one simulator instead: see runPair. It prints its table, and writes a file only with `--out`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { EVENT_LOOP_SAMPLE_MS } from '../metrics/event-loop-lag';

const ROOT = path.resolve(__dirname, '..', '..');
const CLK_TCK = 100;

interface Scenario {
  name: string;
  sandboxes: number;
  faults?: string;
  scrapes: number;
  /**
   * Scrapes before measuring, plain and gzip alternating: V8 is still compiling the per-scrape code for the
   * first 20-40 scrapes of a fresh daemon (docs/performance.md), which the measured scrapes are not about.
   */
  warmup: number;
  /** Extra daemon flags. */
  flags?: string[];
}

/** Warm-up scrapes per scenario (Scenario.warmup). */
const WARMUP = {
  normal: 20,
  /** 250 sandboxes: a scrape takes about a second. */
  large: 10,
  /** Every scrape waits 3 s for the hung shims. */
  faults: 3,
  quick: 3,
} as const;

interface Row {
  scenario: string;
  sandboxes: number;
  floorP50Ms: number;
  plainP50Ms: number;
  plainP95Ms: number;
  gzipP50Ms: number;
  gzipP95Ms: number;
  cpuMsPerScrape: number;
  /** CPU per scrape over the warm-up scrapes (a fresh daemon). */
  cpuMsWarmup: number;
  /** The same for plain and gzip scrapes apart. */
  cpuMsPlain: number;
  cpuMsGzip: number;
  peakRssMb: number;
  plainBytes: number;
  gzipBytes: number;
  samples: number;
  healthzP99Ms: number;
  eventLoopLagP99Ms: number;
  sandboxesUp: number;
  /** The host collector's own duration in the last scrape (kata_monitor_host_collection_duration_seconds). */
  hostCollectionMs: number;
}

interface Args {
  sizes: number[];
  out: string;
  /** Whether --out was given (pair mode writes a file only then). */
  outGiven: boolean;
  quick: boolean;
  daemonFlags: string[];
  /** Pair mode: the root of another built checkout (its bin/kata-monitor and dist/) to compare with. */
  against?: string;
  /** Pair mode: rounds (one scrape of each daemon per round). */
  rounds?: number;
}

function parseArgs(argv: string[]): Args {
  let sizes = [10, 100, 250];
  let out = path.join(ROOT, 'bench', 'results.md');
  let outGiven = false;
  let quick = false;
  const daemonFlags: string[] = [];
  let against: string | undefined;
  let rounds: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--sizes')
      sizes = (argv[++i] ?? '')
        .split(',')
        .map(Number)
        .filter(n => n > 0);
    else if (a === '--out') {
      out = path.resolve(argv[++i] ?? out);
      outGiven = true;
    } else if (a === '--against') against = path.resolve(argv[++i] ?? '');
    else if (a === '--rounds') {
      rounds = Number(argv[++i]);
      if (!Number.isInteger(rounds) || rounds < 2 || rounds > 10000)
        throw new Error(`--rounds wants a whole number from 2 to 10000, not ${argv[i]}`);
    } else if (a === '--quick') quick = true;
    else if (a === '--daemon-flag') daemonFlags.push(argv[++i] ?? '');
    else
      throw new Error(
        `unknown argument ${a} (accepted: --sizes 10,100,250 --out FILE --quick --daemon-flag FLAG ... --against DIR --rounds N)`,
      );
  }
  if (against !== undefined && !fs.existsSync(path.join(against, 'bin', 'kata-monitor')))
    throw new Error(`--against ${against}: no bin/kata-monitor there (a built checkout is needed)`);
  return {
    sizes,
    out,
    outGiven,
    quick,
    daemonFlags,
    ...(against !== undefined ? { against } : {}),
    ...(rounds !== undefined ? { rounds } : {}),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise(r => setTimeout(r, ms));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = http.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

interface Fetched {
  status: number;
  bytes: number;
  ms: number;
  body?: Buffer;
}

function get(opts: http.RequestOptions, keep = false): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request({ method: 'GET', agent: false, ...opts }, res => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (keep) chunks.push(c);
      });
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        resolve({ status: res.statusCode ?? 0, bytes, ms, ...(keep ? { body: Buffer.concat(chunks) } : {}) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.timeout) req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Probe code run by a child process: GET /healthz every 10 ms, print the latencies (ms) as JSON on stdin end. */
const PROBER = `
const http = require('node:http');
const port = Number(process.argv[1]);
const ms = [];
let on = true;
const once = () => new Promise(resolve => {
  const t0 = process.hrtime.bigint();
  http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false }, res => {
    res.resume();
    res.on('end', () => { ms.push(Number(process.hrtime.bigint() - t0) / 1e6); resolve(); });
  }).on('error', () => resolve());
});
(async () => { while (on) { await once(); await new Promise(r => setTimeout(r, 10)); } })();
process.stdin.on('data', () => undefined);
process.stdin.on('end', () => { on = false; process.stdout.write(JSON.stringify(ms)); process.exit(0); });
`;

function startHealthzProber(port: number): { stop(): Promise<number[]> } {
  const child = spawn(process.execPath, ['-e', PROBER, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  running.add(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()));
  return {
    async stop(): Promise<number[]> {
      child.stdin?.end();
      await exited;
      running.delete(child);
      try {
        return JSON.parse(out) as number[];
      } catch {
        return [];
      }
    },
  };
}

function procCpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

function peakRssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Children still running; killed (whole process groups) if the driver exits early, so none is orphaned. */
const running = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

/** Node directories of scenarios still running; removed if the driver exits early. */
const nodeDirs = new Set<string>();

process.on('exit', () => {
  for (const c of running) killGroup(c, 'SIGKILL');
  for (const d of nodeDirs) fs.rmSync(d, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    for (const c of running) killGroup(c, 'SIGTERM');
    process.exit(130);
  });
}

function startProcess(args: string[], label: string, cwd = ROOT): ChildProcess {
  const child = spawn(process.execPath, args, {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  child.stderr?.on('data', (d: Buffer) => {
    if (process.env.BENCH_VERBOSE) process.stderr.write(`[${label}] ${d.toString()}`);
  });
  return child;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.pid === undefined) return;
  const done = new Promise<void>(r => child.once('exit', () => r()));
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, 5000);
  await done;
  clearTimeout(timer);
}

function shimSockets(dir: string): string[] {
  const out: string[] = [];
  for (const root of [path.join(dir, 'vc', 'sbs'), path.join(dir, 'kata')]) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(root);
    } catch {
      continue;
    }
    for (const n of names.sort()) {
      const p = path.join(root, n, 'shim-monitor.sock');
      if (fs.existsSync(p)) out.push(p);
    }
  }
  return out;
}

/** Resolves once the simulator printed its summary (every shim listens); rejects if it exits or takes 60 s. */
function simulatorReady(sim: ChildProcess): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let buf = '';
    let settled = false;
    const done = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer); // a pending timer would keep the driver alive for up to a minute after the last row
      sim.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    };
    const onData = (d: Buffer): void => {
      if (settled) return; // keep reading what the simulator prints later, without keeping it
      buf += d.toString();
      if (buf.includes('\n')) done();
    };
    const onExit = (code: number | null): void => done(new Error(`kata-sim exited with ${code}`));
    const timer = setTimeout(() => done(new Error('kata-sim did not print its summary within 60 s')), 60000);
    sim.stdout?.on('data', onData);
    sim.once('exit', onExit);
  });
}

/** The daemon's command line against the simulated node in `dir`. */
function daemonArgs(dir: string, port: number, flags: readonly string[]): string[] {
  return [
    'bin/kata-monitor',
    '--listen-address',
    `127.0.0.1:${port}`,
    '--sandbox-roots',
    `${path.join(dir, 'vc', 'sbs')},${path.join(dir, 'kata')}`,
    '--runtime-endpoint',
    `unix://${path.join(dir, 'cri.sock')}`,
    '--path.run',
    dir,
    '--path.sysfs',
    path.join(dir, 'sys'),
    '--log-level',
    'error',
    ...flags,
  ];
}

/** Resolves once the daemon on `port` lists `sandboxes` sandboxes; throws after 60 s. */
async function daemonReady(port: number, sandboxes: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      const r = await get({ host: '127.0.0.1', port, path: '/sandboxes' }, true);
      const n = r.body ? r.body.toString().split('\n').filter(Boolean).length : 0;
      if (r.status === 200 && n >= sandboxes) return;
    } catch {
      /* not listening yet */
    }
    if (Date.now() - t0 > 60000) throw new Error('daemon did not list every sandbox within 60 s');
    await sleep(100);
  }
}

async function runScenario(sc: Scenario): Promise<Row> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmb-'));
  nodeDirs.add(dir);
  const simArgs = ['bin/kata-sim', '--dir', dir, '--sandboxes', String(sc.sandboxes), '--seed', '42'];
  if (sc.faults) simArgs.push('--faults', sc.faults);
  const sim = startProcess(simArgs, 'sim');
  let daemon: ChildProcess | undefined;
  try {
    await simulatorReady(sim);
    const sockets = shimSockets(dir);
    const port = await freePort();
    daemon = startProcess(daemonArgs(dir, port, sc.flags ?? []), 'daemon');
    const base = { host: '127.0.0.1', port };
    await daemonReady(port, sc.sandboxes);
    await sleep(1500); // let CRI metadata arrive

    // Floor: every shim body at once, discarded.
    const floor: number[] = [];
    for (let i = 0; i < sc.scrapes; i++) {
      const s0 = process.hrtime.bigint();
      await Promise.all(
        sockets.map(socketPath =>
          get({ socketPath, path: '/metrics', timeout: 3000 }).catch(() => undefined),
        ),
      );
      floor.push(Number(process.hrtime.bigint() - s0) / 1e6);
    }

    // Warm-up scrapes (JIT, first CRI lookups), plain and gzip alternating: their CPU is reported apart.
    const warm0 = procCpuMs(daemon.pid!);
    for (let i = 0; i < sc.warmup; i++) {
      await get({
        ...base,
        path: '/metrics',
        ...(i % 2 === 1 ? { headers: { 'Accept-Encoding': 'gzip' } } : {}),
      });
    }
    const cpuMsWarmup = (procCpuMs(daemon.pid!) - warm0) / Math.max(1, sc.warmup);

    // CPU phase: plain then gzip scrapes back to back, nothing else asking the daemon anything.
    const cpu0 = procCpuMs(daemon.pid!);
    const plain: number[] = [];
    let plainBytes = 0;
    let lastPlain: Buffer | undefined;
    for (let i = 0; i < sc.scrapes; i++) {
      const r = await get({ ...base, path: '/metrics' }, i === sc.scrapes - 1);
      plain.push(r.ms);
      plainBytes = r.bytes;
      if (r.body) lastPlain = r.body;
    }
    const cpuMid = procCpuMs(daemon.pid!);
    const gz: number[] = [];
    let gzipBytes = 0;
    for (let i = 0; i < sc.scrapes; i++) {
      const r = await get({ ...base, path: '/metrics', headers: { 'Accept-Encoding': 'gzip' } }, i === 0);
      gz.push(r.ms);
      gzipBytes = r.bytes;
      if (r.body) zlib.gunzipSync(r.body); // the body is valid gzip
    }
    const cpuMs = procCpuMs(daemon.pid!) - cpu0;

    // Responsiveness phase: /healthz every 10 ms from a process of its own (this driver's event loop is
    // busy receiving 20 MB responses and would add its own delays) while scrapes run.
    const prober = startHealthzProber(port);
    await sleep(200);
    for (let i = 0; i < Math.max(3, Math.ceil(sc.scrapes / 2)); i++) await get({ ...base, path: '/metrics' });
    const healthz = await prober.stop();

    const text = lastPlain?.toString() ?? '';
    let samples = 0;
    let up = 0;
    let lag = NaN;
    let hostMs = NaN;
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      samples++;
      if (line.startsWith('kata_monitor_sandbox_up{') && line.endsWith(' 1')) up++;
      if (line.startsWith('kata_monitor_nodejs_eventloop_lag_p99_seconds'))
        lag = Number(line.split(' ').pop()) * 1000;
      if (line.startsWith('kata_monitor_host_collection_duration_seconds '))
        hostMs = Number(line.split(' ').pop()) * 1000;
    }
    return {
      scenario: sc.name,
      sandboxes: sc.sandboxes,
      floorP50Ms: pct(floor, 50),
      plainP50Ms: pct(plain, 50),
      plainP95Ms: pct(plain, 95),
      gzipP50Ms: pct(gz, 50),
      gzipP95Ms: pct(gz, 95),
      cpuMsPerScrape: cpuMs / (2 * sc.scrapes),
      cpuMsWarmup,
      cpuMsPlain: (cpuMid - cpu0) / sc.scrapes,
      cpuMsGzip: (cpu0 + cpuMs - cpuMid) / sc.scrapes,
      peakRssMb: peakRssMb(daemon.pid!),
      plainBytes,
      gzipBytes,
      samples,
      healthzP99Ms: pct(healthz, 99),
      eventLoopLagP99Ms: lag,
      sandboxesUp: up,
      hostCollectionMs: hostMs,
    };
  } finally {
    if (daemon) await stopProcess(daemon);
    await stopProcess(sim);
    fs.rmSync(dir, { recursive: true, force: true });
    nodeDirs.delete(dir);
  }
}

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '–';
}

function table(rows: Row[]): string {
  const columns = [
    'scenario',
    'sandboxes',
    'floor p50',
    'plain p50',
    'plain p95',
    'gzip p50',
    'gzip p95',
    'p50 / floor',
    'CPU per scrape (plain / gzip)',
    'CPU, warm-up scrapes',
    'peak RSS',
    'plain bytes',
    'gzip bytes',
    'samples',
    'sandboxes up',
    '/healthz p99',
    'event-loop lag p99',
    'host collection',
  ];
  // The delimiter row has a cell per column (a Markdown table with fewer is not a table).
  const head = `| ${columns.join(' | ')} |\n|${columns.map(() => '---|').join('')}\n`;
  return (
    head +
    rows
      .map(
        r =>
          `| ${r.scenario} | ${r.sandboxes} | ${fmt(r.floorP50Ms, 1)} ms | ${fmt(r.plainP50Ms, 1)} ms | ${fmt(r.plainP95Ms, 1)} ms | ${fmt(r.gzipP50Ms, 1)} ms | ${fmt(r.gzipP95Ms, 1)} ms | ${fmt(r.plainP50Ms / r.floorP50Ms, 1)} × | ${fmt(r.cpuMsPerScrape, 1)} ms (${fmt(r.cpuMsPlain, 0)} / ${fmt(r.cpuMsGzip, 0)}) | ${fmt(r.cpuMsWarmup, 0)} ms | ${fmt(r.peakRssMb, 0)} MB | ${(r.plainBytes / 1e6).toFixed(2)} MB | ${(r.gzipBytes / 1e6).toFixed(2)} MB | ${r.samples} | ${r.sandboxesUp} | ${fmt(r.healthzP99Ms, 1)} ms | ${fmt(r.eventLoopLagP99Ms, 1)} ms | ${Number.isFinite(r.hostCollectionMs) ? `${fmt(r.hostCollectionMs, 1)} ms (${fmt((r.hostCollectionMs * 1000) / r.sandboxes, 0)} µs/sandbox)` : '–'} |`,
      )
      .join('\n') +
    '\n'
  );
}

/** One daemon of a pair: where it runs from, its process, and the CPU of each of its scrapes. */
interface PairSide {
  label: string;
  root: string;
  port: number;
  proc?: ChildProcess;
  plain: number[];
  gzip: number[];
}

/**
 * Pair mode (`--against DIR`): this checkout's daemon and another build's, on one simulator, scraped in turns.
 * This machine's speed drifts by up to 2x within minutes, so two bench runs of two builds mostly compare two
 * moments; here every round scrapes both (which one goes first alternates, and so do plain and gzip), and each
 * scrape's CPU is read from /proc around it, so both see the same moments.
 */
async function runPair(args: Args): Promise<string> {
  const sandboxes = args.sizes.length === 1 ? args.sizes[0]! : 100; // --sizes N picks one size
  const rounds = args.rounds ?? (args.quick ? 6 : 40);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmb-'));
  nodeDirs.add(dir);
  const sim = startProcess(
    ['bin/kata-sim', '--dir', dir, '--sandboxes', String(sandboxes), '--seed', '42'],
    'sim',
  );
  const sides: PairSide[] = [
    { label: 'other', root: args.against!, port: 0, plain: [], gzip: [] },
    { label: 'this', root: ROOT, port: 0, plain: [], gzip: [] },
  ];
  try {
    await simulatorReady(sim);
    for (const side of sides) {
      side.port = await freePort();
      side.proc = startProcess(daemonArgs(dir, side.port, args.daemonFlags), side.label, side.root);
    }
    for (const side of sides) await daemonReady(side.port, sandboxes);
    await sleep(1500); // let CRI metadata arrive
    const scrape = (side: PairSide, gz: boolean): Promise<Fetched> =>
      get({
        host: '127.0.0.1',
        port: side.port,
        path: '/metrics',
        ...(gz ? { headers: { 'Accept-Encoding': 'gzip' } } : {}),
      });
    // Warm-up (JIT, first parses, the simulator's early growth of series), not measured.
    for (let i = 0; i < (args.quick ? WARMUP.quick : WARMUP.normal); i++)
      for (const side of sides) await scrape(side, i % 2 === 1);
    for (let i = 0; i < rounds; i++) {
      const gz = i % 2 === 1;
      const order = i % 4 < 2 ? sides : [...sides].reverse();
      for (const side of order) {
        const pid = side.proc!.pid!;
        const c0 = procCpuMs(pid);
        const r = await scrape(side, gz);
        if (r.status !== 200) throw new Error(`${side.label} daemon answered /metrics with HTTP ${r.status}`);
        (gz ? side.gzip : side.plain).push(procCpuMs(pid) - c0);
      }
    }
    const [other, self] = sides as [PairSide, PairSide];
    const all = (s: PairSide): number[] => [...s.plain, ...s.gzip];
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    let lower = 0;
    const a = all(other);
    const b = all(self);
    for (let i = 0; i < a.length; i++) if (b[i]! < a[i]!) lower++;
    const row = (s: PairSide): string =>
      `| ${s.label} | \`${s.root}\` | ${fmt(mean(all(s)), 1)} ms | ${fmt(pct(all(s), 50), 0)} ms | ` +
      `${fmt(mean(s.plain), 1)} ms | ${fmt(mean(s.gzip), 1)} ms | ${fmt(peakRssMb(s.proc!.pid!), 0)} MB |`;
    return (
      `Pair run: ${sandboxes} sandboxes, ${rounds} rounds (one scrape of each daemon per round, plain and gzip ` +
      `alternating)${args.daemonFlags.length > 0 ? `, daemon flags \`${args.daemonFlags.join(' ')}\`` : ''}. ` +
      `CPU per scrape from /proc (10 ms ticks).\n\n` +
      '| build | root | CPU per scrape, mean | median | plain mean | gzip mean | peak RSS |\n' +
      '|---|---|---|---|---|---|---|\n' +
      `${row(other)}\n${row(self)}\n\n` +
      `This checkout used less CPU than the other in ${lower} of ${a.length} scrapes ` +
      `(mean difference ${fmt(mean(b) - mean(a), 1)} ms per scrape).\n`
    );
  } finally {
    for (const side of sides) if (side.proc) await stopProcess(side.proc);
    await stopProcess(sim);
    fs.rmSync(dir, { recursive: true, force: true });
    nodeDirs.delete(dir);
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.against !== undefined) {
    const md = await runPair(args);
    process.stdout.write(md);
    if (args.outGiven) {
      fs.mkdirSync(path.dirname(args.out), { recursive: true });
      fs.writeFileSync(args.out, `# Pair run\n\n${md}`);
    }
    return;
  }
  const { sizes, out, quick, daemonFlags } = args;
  const scenarios: Scenario[] = sizes.map(n => ({
    name: 'healthy',
    sandboxes: n,
    scrapes: quick ? 5 : n >= 250 ? 10 : n >= 100 ? 20 : 30,
    warmup: quick ? WARMUP.quick : n >= 250 ? WARMUP.large : WARMUP.normal,
  }));
  if (sizes.includes(100)) {
    scenarios.push({
      name: 'shims only (no agent, host or container collectors)',
      sandboxes: 100,
      scrapes: quick ? 5 : 20,
      warmup: quick ? WARMUP.quick : WARMUP.normal,
      flags: ['--agent-metrics=never', '--collect-container-stats=false', '--collect-host=false'],
    });
    scenarios.push({
      name: 'faults: 5 hang, 1 garbage, 1 gone, 1 slow 2 s',
      sandboxes: 100,
      faults: '0:hang,1:hang,2:hang,3:hang,4:hang,5:garbage,6:gone,7:slow:2000',
      scrapes: quick ? 3 : 5,
      warmup: WARMUP.faults,
    });
  }
  // Extra daemon flags (e.g. --small-heap=false) apply to every scenario, after the scenario's own.
  for (const sc of scenarios) sc.flags = [...(sc.flags ?? []), ...daemonFlags];
  const rows: Row[] = [];
  for (const sc of scenarios) {
    process.stderr.write(`bench: ${sc.name}, ${sc.sandboxes} sandboxes, ${sc.scrapes} scrapes each way...\n`);
    const row = await runScenario(sc);
    rows.push(row);
    process.stderr.write(table([row]));
  }
  const cpus = os.cpus();
  const md =
    `# Benchmark results\n\n` +
    `Produced by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: ${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, ` +
    `Node ${process.version}. Simulator and daemon run as separate processes; the floor is every shim's /metrics ` +
    `fetched at once by the driver with the bodies discarded. CPU per scrape is the daemon's utime+stime over all ` +
    `plain and gzip scrapes divided by their number (back to back, no other request in that phase; in brackets ` +
    `plain and gzip apart), after warm-up scrapes (${WARMUP.normal}, ${WARMUP.large} at 250 sandboxes, ${WARMUP.faults} with faults; plain and gzip ` +
    `alternating) whose own CPU per scrape is the warm-up column: a fresh daemon's JIT is still compiling; /healthz p99 ` +
    `is measured afterwards by a separate process asking every 10 ms while more scrapes run; peak RSS is the ` +
    `daemon's VmHWM; the event-loop lag is the ` +
    `daemon's own \`kata_monitor_nodejs_eventloop_lag_p99_seconds\` read in the last plain scrape (the delay sampled every ` +
    `${EVENT_LOOP_SAMPLE_MS} ms since the scrape before, the sampling interval taken off); host collection is the host collector's own ` +
    `\`kata_monitor_host_collection_duration_seconds\` (wall time, in parallel with the shim scrapes). The simulator ` +
    `runs agents and light stand-in hypervisor/virtiofsd processes for every sandbox, so the default rows include ` +
    `the agent (health, details, per-container stats) and host collectors; the "shims only" row turns them off.` +
    (daemonFlags.length > 0 ? ` Every daemon also ran with \`${daemonFlags.join(' ')}\`.` : '') +
    `\n\n` +
    table(rows) +
    `\nGo kata-monitor 3.2.0 on the same kind of simulated node (reference peer-figures.md): 100 sandboxes p50 389 ms ` +
    `plain / 343 ms gzip (about 10 × the 38 ms floor), 553 ms CPU per scrape, 130 MB peak RSS; with faults 3,147 ms ` +
    `and the failed sandboxes vanish without a metric.\n`;
  process.stdout.write(table(rows));
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, md);
  process.stderr.write(`bench: wrote ${out}\n`);
}

main().catch(err => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
