import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  createHostCollector,
  F,
  type HostCollector,
  type HostCollectorOptions,
} from '../../src/host/host-collector';
import { createLogger, silentLogger } from '../../src/log';
import { writeCgroupUsage } from '../../src/sim/cgroup-fixtures';
import { rmrf, tmpDir } from '../helpers/util';
import {
  ctxFor,
  goSandbox,
  rsSandbox,
  samples,
  sandboxSel,
  statLine,
  writeProc,
  writeShimPid,
  writeUptime,
} from './fixture-tree';

const GiB = 2 ** 30;
const FACTS = { cpus: 4, memoryBytes: 16 * GiB };
const ID = 'a'.repeat(64);
const ID2 = 'b'.repeat(64);

let base: string;
let procfs: string;
let sysfs: string;
let runDir: string;
let sbsRoot: string;
let collectors: HostCollector[];

beforeEach(() => {
  base = tmpDir('kmh-');
  procfs = path.join(base, 'proc');
  sysfs = path.join(base, 'sys');
  runDir = path.join(base, 'run');
  sbsRoot = path.join(runDir, 'vc', 'sbs');
  fs.mkdirSync(procfs, { recursive: true });
  writeUptime(procfs, 10_000);
  collectors = [];
});

afterEach(async () => {
  await Promise.all(collectors.map(c => c.close()));
  rmrf(base);
});

function collector(extra: Partial<HostCollectorOptions> = {}): HostCollector {
  const c = createHostCollector({ logger: silentLogger, procfs, sysfs, runDir, hostFacts: FACTS, ...extra });
  collectors.push(c);
  return c;
}

async function collectText(c: HostCollector, sbs: Parameters<typeof ctxFor>[0]): Promise<string> {
  const chunks = await c.collect(ctxFor(sbs));
  expect(chunks).toHaveLength(1);
  expect(chunks[0]!.sandbox).toBeUndefined();
  return chunks[0]!.text.toString();
}

const persistGo = (over: object = {}): object => ({
  State: 'running',
  SandboxContainer: ID,
  SandboxCgroupPath: `/kubepods/besteffort/pod1/${ID}`,
  OverheadCgroupPath: `/kata_overhead/${ID}`,
  HypervisorState: { Type: 'qemu', Pid: 200, VirtiofsDaemonPid: 300 },
  ...over,
});

describe('host collector on fixture trees', () => {
  it.each([1, 2] as const)(
    'reports processes and pod cgroups (cgroup v%d) with exact values',
    async version => {
      const sb = goSandbox(sbsRoot, ID, persistGo());
      writeShimPid(runDir, 'k8s.io', ID, 100);
      writeProc(procfs, 100, {
        comm: 'containerd-shim',
        utime: 150,
        stime: 50,
        threads: 9,
        rssKb: 30_000,
        fds: 12,
        io: { read: 4096, write: 8192 },
      });
      writeProc(procfs, 200, {
        comm: 'qemu-system-x86',
        utime: 1000,
        stime: 250,
        threads: 5,
        rssKb: 500_000,
        vmSizeKb: 3_000_000,
        fds: 40,
      });
      writeProc(procfs, 300, { comm: 'virtiofsd', utime: 10, stime: 20, threads: 3, rssKb: 8_000, fds: 7 });
      await writeCgroupUsage(sysfs, version, `/kubepods/besteffort/pod1/${ID}`, {
        cpuSeconds: 12.5,
        memoryBytes: 600e6,
        inactiveFileBytes: 100e6,
      });
      await writeCgroupUsage(sysfs, version, `/kata_overhead/${ID}`, {
        cpuSeconds: 2.5,
        memoryBytes: 50e6,
        inactiveFileBytes: 0,
      });
      const c = collector({
        guestUsage: id => (id === ID ? { cpuSeconds: 9, memoryBytes: 400e6 } : undefined),
      });

      const text = await collectText(c, [sb]);
      const s = samples(text);
      const sel = (component: string): string => sandboxSel(sb, { component });
      expect(s.get(F.procCpu + sel('shim'))).toBe(2);
      expect(s.get(F.procCpu + sel('hypervisor'))).toBe(12.5);
      expect(s.get(F.procCpu + sel('virtiofsd'))).toBeCloseTo(0.3, 10);
      expect(s.get(F.procRss + sel('hypervisor'))).toBe(500_000 * 1024);
      expect(s.get(F.procVsz + sel('hypervisor'))).toBe(3_000_000 * 1024);
      expect(s.get(F.procThreads + sel('shim'))).toBe(9);
      expect(s.get(F.procFds + sel('hypervisor'))).toBe(40);
      expect(s.get(F.procIoRead + sel('shim'))).toBe(4096);
      expect(s.get(F.procIoWrite + sel('shim'))).toBe(8192);
      expect(s.get(F.podCpu + sandboxSel(sb))).toBe(15);
      expect(s.get(F.podMem + sandboxSel(sb))).toBe(550e6);
      expect(s.get(F.podOvhCpu + sandboxSel(sb))).toBe(6);
      expect(s.get(F.podOvhMem + sandboxSel(sb))).toBe(150e6);
      expect(s.get(F.hostCpus)).toBe(4);
      expect(s.get(F.hostMemory)).toBe(16 * GiB);
      expect(text).toContain(`# TYPE ${F.procCpu} counter`);
      expect(text).toContain(`# TYPE ${F.podMem} gauge`);
      // no read errors on a complete tree
      expect([...s.keys()].filter(k => k.startsWith(F.readErrors))).toEqual([]);
      // the collector reports its own duration, a non-negative number of seconds
      expect(s.get(F.duration)).toBeGreaterThanOrEqual(0);
    },
  );

  it('falls back to the QEMU pid file and finds the bundle shim.pid in any namespace', async () => {
    const sb = goSandbox(sbsRoot, ID, persistGo({ HypervisorState: { Type: 'qemu', Pid: 0 } }));
    fs.mkdirSync(path.join(runDir, 'vc', 'vm', ID), { recursive: true });
    fs.writeFileSync(path.join(runDir, 'vc', 'vm', ID, 'pid'), '201\n');
    writeShimPid(runDir, 'moby', ID, 101);
    writeProc(procfs, 101, { utime: 1 });
    writeProc(procfs, 201, { utime: 7 });
    const s = samples(await collectText(collector(), [sb]));
    expect(s.get(F.procCpu + sandboxSel(sb, { component: 'shim' }))).toBe(0.01);
    expect(s.get(F.procCpu + sandboxSel(sb, { component: 'hypervisor' }))).toBe(0.07);
    expect(s.has(F.procCpu + sandboxSel(sb, { component: 'virtiofsd' }))).toBe(false);
  });

  it('finds processes by a throttled cmdline scan when no file names them', async () => {
    const sb = goSandbox(sbsRoot, ID); // no persist.json at all
    writeProc(procfs, 400, {
      utime: 4,
      cmdline: ['/usr/bin/containerd-shim-kata-v2', '-namespace', 'k8s.io', '-id', ID],
    });
    writeProc(procfs, 401, { utime: 5, cmdline: ['/usr/bin/qemu-system-x86_64', '-name', `sandbox-${ID}`] });
    writeProc(procfs, 402, {
      utime: 6,
      cmdline: ['/usr/libexec/virtiofsd', `--socket-path=/run/vc/vm/${ID}/vhost-fs.sock`],
    });
    writeProc(procfs, 403, { utime: 7, cmdline: ['bash'] });
    const c = collector({ cmdlineScanIntervalMs: 3_600_000 });
    let s = samples(await collectText(c, [sb]));
    expect(s.get(F.procCpu + sandboxSel(sb, { component: 'shim' }))).toBe(0.04);
    expect(s.get(F.procCpu + sandboxSel(sb, { component: 'hypervisor' }))).toBe(0.05);
    expect(s.get(F.procCpu + sandboxSel(sb, { component: 'virtiofsd' }))).toBe(0.06);

    // A second sandbox appears right after: the next scan is not due yet, so its processes stay unknown...
    const sb2 = goSandbox(sbsRoot, ID2);
    writeProc(procfs, 500, { utime: 8, cmdline: ['qemu-system-x86_64', '-name', `sandbox-${ID2}`] });
    s = samples(await collectText(c, [sb, sb2]));
    expect(s.has(F.procCpu + sandboxSel(sb2, { component: 'hypervisor' }))).toBe(false);
    // ...while the first sandbox's cached PIDs keep working.
    expect(s.get(F.procCpu + sandboxSel(sb, { component: 'hypervisor' }))).toBe(0.05);

    // With no throttle the next collection scans again and finds it.
    const eager = collector({ cmdlineScanIntervalMs: 0 });
    s = samples(await collectText(eager, [sb, sb2]));
    expect(s.get(F.procCpu + sandboxSel(sb2, { component: 'hypervisor' }))).toBe(0.08);
  });

  it('skips io and counts it when /proc/<pid>/io is unreadable or missing; other series stay', async () => {
    const sb = goSandbox(sbsRoot, ID, persistGo());
    writeShimPid(runDir, 'k8s.io', ID, 100);
    writeProc(procfs, 100, { io: 'dir' });
    writeProc(procfs, 200, { io: 'missing' });
    writeProc(procfs, 300, {});
    const s = samples(await collectText(collector(), [sb]));
    expect(s.has(F.procIoRead + sandboxSel(sb, { component: 'shim' }))).toBe(false);
    expect(s.has(F.procIoWrite + sandboxSel(sb, { component: 'hypervisor' }))).toBe(false);
    expect(s.get(F.procIoRead + sandboxSel(sb, { component: 'virtiofsd' }))).toBe(0);
    expect(s.get(F.procRss + sandboxSel(sb, { component: 'shim' }))).toBe(1024 * 1024);
    expect(s.get(`${F.readErrors}{file="io",reason="unreadable"}`)).toBe(1);
    expect(s.get(`${F.readErrors}{file="io",reason="gone"}`)).toBe(1);
  });

  it('ignores a truncated stat and a process that exits between stat and status, and says so', async () => {
    const sb = goSandbox(sbsRoot, ID, persistGo());
    writeShimPid(runDir, 'k8s.io', ID, 100);
    writeProc(procfs, 100, { statText: statLine(100, {}).slice(0, 40) });
    writeProc(procfs, 200, { noStatus: true });
    writeProc(procfs, 300, { utime: 3 });
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: l => lines.push(l) });
    const s = samples(await collectText(collector({ logger }), [sb]));
    expect([...s.keys()].filter(k => k.startsWith(F.procCpu))).toEqual([
      F.procCpu + sandboxSel(sb, { component: 'virtiofsd' }),
    ]);
    expect(s.get(`${F.readErrors}{file="stat",reason="parse"}`)).toBe(1);
    expect(s.get(`${F.readErrors}{file="status",reason="gone"}`)).toBe(1);
    expect(lines.some(l => l.includes('process status unreadable'))).toBe(true);
  });

  it('drops a PID reused by another process and does not take it back from the stale persist.json', async () => {
    const sb = goSandbox(sbsRoot, ID, persistGo());
    writeProc(procfs, 200, { utime: 100, start: 5000 });
    const lines: string[] = [];
    const c = collector({ logger: createLogger({ level: 'warn', write: l => lines.push(l) }) });
    let s = samples(await collectText(c, [sb]));
    expect(s.get(F.procCpu + sandboxSel(sb, { component: 'hypervisor' }))).toBe(1);

    // The hypervisor died; an unrelated process got PID 200 (later start time).
    writeProc(procfs, 200, { utime: 3, start: 9000, comm: 'bash' });
    s = samples(await collectText(c, [sb]));
    expect(s.has(F.procCpu + sandboxSel(sb, { component: 'hypervisor' }))).toBe(false);
    expect(s.get(`${F.pidReused}{component="hypervisor"}`)).toBe(1);
    expect(lines.some(l => l.includes('PID reused'))).toBe(true);

    s = samples(await collectText(c, [sb]));
    expect(s.has(F.procCpu + sandboxSel(sb, { component: 'hypervisor' }))).toBe(false);
    expect(s.get(`${F.pidReused}{component="hypervisor"}`)).toBe(1);
  });

  it('drops out-of-bounds values and counts them in invalid_samples_total', async () => {
    const sb = goSandbox(sbsRoot, ID, persistGo());
    // 1e6 CPU seconds for a process alive 10 s on 4 CPUs: impossible.
    writeUptime(procfs, 100);
    writeProc(procfs, 200, { utime: 1e8, start: 9000 });
    // 1.8e19 bytes of memory (upstream bug #8035).
    writeProc(procfs, 300, { rssKb: 1.8e16 });
    await writeCgroupUsage(sysfs, 2, `/kubepods/besteffort/pod1/${ID}`, {
      cpuSeconds: 10,
      memoryBytes: 1.8e19,
    });
    await writeCgroupUsage(sysfs, 2, `/kata_overhead/${ID}`, { cpuSeconds: 1, memoryBytes: 0 });
    const c = collector({ guestUsage: () => ({ cpuSeconds: NaN, memoryBytes: 0 }) });
    let s = samples(await collectText(c, [sb]));
    expect(s.has(F.procCpu + sandboxSel(sb, { component: 'hypervisor' }))).toBe(false);
    expect(s.has(F.procRss + sandboxSel(sb, { component: 'virtiofsd' }))).toBe(false);
    expect(s.has(F.podMem + sandboxSel(sb))).toBe(false);
    expect(s.get(F.podCpu + sandboxSel(sb))).toBe(11);
    expect(s.get(`${F.invalid}{family="${F.procCpu}"}`)).toBe(1);
    expect(s.get(`${F.invalid}{family="${F.procRss}"}`)).toBe(1);
    expect(s.get(`${F.invalid}{family="${F.podMem}"}`)).toBe(1);
    expect(s.get(`${F.invalid}{family="${F.podOvhCpu}"}`)).toBe(1);

    // The pod cgroup gains a million CPU seconds between two collections: faster than 4 CPUs allow.
    await writeCgroupUsage(sysfs, 2, `/kubepods/besteffort/pod1/${ID}`, {
      cpuSeconds: 1e6,
      memoryBytes: 1e6,
    });
    s = samples(await collectText(c, [sb]));
    expect(s.has(F.podCpu + sandboxSel(sb))).toBe(false);
    expect(s.get(`${F.invalid}{family="${F.podCpu}"}`)).toBe(1);
    expect(s.get(F.podMem + sandboxSel(sb))).toBe(1e6);
  });

  it('can hand invalid samples to a shared counter instead of writing the family itself', async () => {
    const sb = goSandbox(sbsRoot, ID, persistGo());
    writeProc(procfs, 300, { rssKb: 1.8e16 });
    const seen: string[] = [];
    const text = await collectText(collector({ onInvalidSample: f => seen.push(f) }), [sb]);
    expect(seen).toEqual([F.procRss]);
    expect(text).not.toContain(F.invalid);
  });

  it('runtime-rs Dragonball: no separate hypervisor, no cgroup recorded', async () => {
    const root = path.join(runDir, 'kata');
    const sb = rsSandbox(
      root,
      ID,
      { hypervisor: { hypervisor_type: 'dragonball', pid: null, virtiofs_daemon_pid: 300 } },
      'dragonball',
    );
    writeShimPid(runDir, 'k8s.io', ID, 100);
    writeProc(procfs, 100, { utime: 1 });
    writeProc(procfs, 300, { utime: 2 });
    // Even a cmdline naming the sandbox must not add a hypervisor for Dragonball.
    writeProc(procfs, 401, { cmdline: ['qemu-system-x86_64', '-name', `sandbox-${ID}`] });
    await writeCgroupUsage(sysfs, 2, `/kubepods/${ID}`, { cpuSeconds: 1, memoryBytes: 1 });
    const s = samples(await collectText(collector({ cmdlineScanIntervalMs: 0 }), [sb]));
    const cpuKeys = [...s.keys()].filter(k => k.startsWith(F.procCpu));
    expect(cpuKeys).toEqual([
      F.procCpu + sandboxSel(sb, { component: 'shim' }),
      F.procCpu + sandboxSel(sb, { component: 'virtiofsd' }),
    ]);
    expect([...s.keys()].some(k => k.startsWith('kata_monitor_pod_'))).toBe(false);
  });

  it('reports a shared PID once (remote hypervisor = shim), and survives garbage persist.json', async () => {
    const sb = goSandbox(sbsRoot, ID, persistGo({ HypervisorState: { Type: 'remote', Pid: 100 } }));
    writeShimPid(runDir, 'k8s.io', ID, 100);
    writeProc(procfs, 100, { utime: 1 });
    const c = collector();
    let s = samples(await collectText(c, [sb]));
    expect([...s.keys()].filter(k => k.startsWith(F.procCpu))).toEqual([
      F.procCpu + sandboxSel(sb, { component: 'shim' }),
    ]);

    fs.writeFileSync(path.join(sb.dir, 'persist.json'), '{"HypervisorState": {');
    s = samples(await collectText(c, [sb]));
    expect(s.get(`${F.readErrors}{file="persist.json",reason="parse"}`)).toBe(1);
    expect(s.get(F.procCpu + sandboxSel(sb, { component: 'shim' }))).toBe(0.01);
  });

  it('returns quickly with no sandboxes when the collection is already aborted', async () => {
    const sb = goSandbox(sbsRoot, ID, persistGo());
    writeProc(procfs, 200, {});
    const ac = new AbortController();
    ac.abort();
    const c = collector();
    const chunks = await c.collect(ctxFor([sb], ac.signal));
    const s = samples(chunks[0]!.text);
    expect([...s.keys()].some(k => k.includes(ID))).toBe(false);
    expect(s.get(F.hostCpus)).toBe(4);
  });

  it('asks systeminformation for host facts when none are given', async () => {
    const c = collector({ hostFacts: undefined });
    const s = samples(await collectText(c, []));
    expect(s.get(F.hostCpus)).toBe(os.cpus().length);
    expect(s.get(F.hostMemory)).toBe(os.totalmem());
  });

  it('returns nothing after close()', async () => {
    const c = collector();
    await c.close();
    expect(await c.collect(ctxFor([]))).toEqual([]);
  });
});
