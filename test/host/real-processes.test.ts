/**
 * The host collector against the real /proc of stand-in processes started by the simulator hooks.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHostCollector, F, type HostCollector } from '../../src/host/host-collector';
import { silentLogger } from '../../src/log';
import { startCgroupMirror, type CgroupMirror } from '../../src/sim/cgroup-fixtures';
import type { SimProcesses, SimSandbox } from '../../src/sim/types';
import { simShimPidFile, spawnStandIn, startVmProcesses, type StandIn } from '../../src/sim/vm-process';
import { rmrf, tmpDir, waitFor } from '../helpers/util';
import { ctxFor, samples, sandboxSel } from './fixture-tree';
import type { SandboxInfo } from '../../src/types';

const MiB = 2 ** 20;

let nodeDir: string;
let procs: SimProcesses[];
let standIns: StandIn[];
let collectors: HostCollector[];
let mirrors: CgroupMirror[];

beforeEach(() => {
  nodeDir = tmpDir('kmr-');
  procs = [];
  standIns = [];
  collectors = [];
  mirrors = [];
});

afterEach(async () => {
  await Promise.all(mirrors.map(m => m.stop()));
  await Promise.all(collectors.map(c => c.close()));
  await Promise.all(procs.map(p => p.stop()));
  await Promise.all(standIns.map(s => s.stop()));
  rmrf(nodeDir);
});

function simSandbox(id: string, runtime: 'go' | 'rs', hypervisor: string): SimSandbox {
  const sandboxDir = runtime === 'go' ? path.join(nodeDir, 'vc', 'sbs', id) : path.join(nodeDir, 'kata', id);
  fs.mkdirSync(sandboxDir, { recursive: true });
  return {
    id,
    index: 0,
    runtime,
    hypervisor,
    sandboxDir,
    shimSocketPath: path.join(sandboxDir, 'shim-monitor.sock'),
    agentUrl: 'vsock://3:1024',
    containers: [id],
    vcpus: 1,
    pod: { name: 'p', namespace: 'default', uid: 'u1', labels: {}, runtimeHandler: 'kata' },
    pprof: false,
    seed: 1,
  };
}

function info(sb: SimSandbox): SandboxInfo {
  return {
    id: sb.id,
    runtime: sb.runtime,
    root: path.dirname(sb.sandboxDir),
    dir: sb.sandboxDir,
    hypervisor: sb.hypervisor,
  };
}

/** What the simulated node does with the PIDs it gets back: write persist.json. */
function writePersist(sb: SimSandbox, p: SimProcesses): void {
  fs.writeFileSync(
    path.join(sb.sandboxDir, 'persist.json'),
    JSON.stringify({
      SandboxContainer: sb.id,
      SandboxCgroupPath: p.sandboxCgroupPath,
      OverheadCgroupPath: p.overheadCgroupPath,
      HypervisorState: { Type: sb.hypervisor, Pid: p.hypervisorPid, VirtiofsDaemonPid: p.virtiofsdPid ?? 0 },
    }),
  );
}

function collector(sysfs = path.join(nodeDir, 'sys')): HostCollector {
  const c = createHostCollector({ logger: silentLogger, runDir: nodeDir, sysfs, cmdlineScanIntervalMs: 0 });
  collectors.push(c);
  return c;
}

async function values(c: HostCollector, sbs: SandboxInfo[]): Promise<Map<string, number>> {
  const chunks = await c.collect(ctxFor(sbs));
  return samples(chunks[0]!.text);
}

const isAlive = (pid: number): boolean => {
  try {
    // A zombie still has /proc/<pid>; its state is Z.
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

describe('startVmProcesses', () => {
  it('starts Kata-looking hypervisor and virtiofsd processes and the files Kata writes', async () => {
    const id = 'c'.repeat(64);
    const sb = simSandbox(id, 'go', 'qemu');
    const p = await startVmProcesses(sb, nodeDir);
    procs.push(p);
    expect(p.shimPid).toBe(process.pid);
    expect(p.virtiofsdPid).toBeDefined();
    const hvArgs = fs.readFileSync(`/proc/${p.hypervisorPid}/cmdline`, 'utf8').split('\0');
    expect(hvArgs[0]).toBe('qemu-system-x86_64');
    expect(hvArgs).toContain(`sandbox-${id}`);
    const fsArgs = fs.readFileSync(`/proc/${p.virtiofsdPid!}/cmdline`, 'utf8').split('\0');
    expect(fsArgs[0]).toBe('virtiofsd');
    expect(fs.readFileSync(path.join(nodeDir, 'vc', 'vm', id, 'pid'), 'utf8').trim()).toBe(
      String(p.hypervisorPid),
    );
    expect(fs.readFileSync(simShimPidFile(nodeDir, id), 'utf8')).toBe(String(process.pid));
    expect(p.sandboxCgroupPath).toBe(`/kubepods/besteffort/podu1/${id}`);

    const pids = [p.hypervisorPid, p.virtiofsdPid!];
    await p.stop();
    procs = [];
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    expect(fs.existsSync(path.join(nodeDir, 'vc', 'vm', id, 'pid'))).toBe(false);
    expect(fs.existsSync(simShimPidFile(nodeDir, id))).toBe(false);
  });

  it('runs no hypervisor process for runtime-rs Dragonball and no virtiofsd for Firecracker', async () => {
    const db = await startVmProcesses(simSandbox('d'.repeat(64), 'rs', 'dragonball'), nodeDir);
    procs.push(db);
    expect(db.hypervisorPid).toBe(process.pid);
    expect(db.burnCpu).toBeUndefined();
    expect(db.sandboxCgroupPath).toBeUndefined();
    const fc = await startVmProcesses(simSandbox('e'.repeat(64), 'go', 'firecracker'), nodeDir);
    procs.push(fc);
    expect(fc.virtiofsdPid).toBeUndefined();
    expect(fs.readFileSync(`/proc/${fc.hypervisorPid}/cmdline`, 'utf8').split('\0')[0]).toBe('firecracker');
  });

  it('stand-ins exit by themselves when their IPC channel closes', async () => {
    const s = await spawnStandIn('qemu-system-x86_64', ['-name', 'sandbox-x']);
    standIns.push(s);
    const exited = new Promise(r => s.child.once('exit', r));
    s.child.disconnect();
    await exited;
    expect(isAlive(s.pid)).toBe(false);
  });
});

describe('host collector on real processes', () => {
  it('sees CPU seconds grow while the hypervisor burns CPU, and resident memory grow when it allocates', async () => {
    const sb = simSandbox('f'.repeat(64), 'go', 'qemu');
    const p = await startVmProcesses(sb, nodeDir);
    procs.push(p);
    writePersist(sb, p);
    const c = collector();
    const s0 = await values(c, [info(sb)]);
    const hv = sandboxSel(info(sb), { component: 'hypervisor' });
    for (const component of ['shim', 'hypervisor', 'virtiofsd']) {
      expect(s0.get(F.procCpu + sandboxSel(info(sb), { component }))).toBeGreaterThanOrEqual(0);
      expect(s0.get(F.procThreads + sandboxSel(info(sb), { component }))).toBeGreaterThanOrEqual(1);
      expect(s0.get(F.procFds + sandboxSel(info(sb), { component }))).toBeGreaterThanOrEqual(3);
    }
    // Root (CI) can read other processes' io; our own children are ours anyway.
    expect(s0.get(F.procIoRead + hv)).toBeGreaterThanOrEqual(0);
    const cpu0 = s0.get(F.procCpu + hv)!;
    const rss0 = s0.get(F.procRss + hv)!;

    p.burnCpu!(800);
    await waitFor(
      async () => (await values(c, [info(sb)])).get(F.procCpu + hv)! >= cpu0 + 0.3,
      20_000,
      100,
      'CPU growth',
    );
    p.burnCpu!(0);

    p.holdMemory!(200 * MiB);
    await waitFor(
      async () => (await values(c, [info(sb)])).get(F.procRss + hv)! >= rss0 + 150 * MiB,
      20_000,
      100,
      'RSS growth',
    );
  });

  it('finds the stand-ins by scanning the real /proc when nothing names them', async () => {
    const sb = simSandbox('9'.repeat(64), 'rs', 'clh'); // runtime-rs CLH: no pid file, nothing recorded
    const p = await startVmProcesses(sb, nodeDir);
    procs.push(p);
    fs.rmSync(simShimPidFile(nodeDir, sb.id)); // and no bundle either
    const s = await values(collector(), [info(sb)]);
    expect(s.has(F.procCpu + sandboxSel(info(sb), { component: 'hypervisor' }))).toBe(true);
    expect(s.has(F.procCpu + sandboxSel(info(sb), { component: 'virtiofsd' }))).toBe(true);
    expect(s.has(F.procCpu + sandboxSel(info(sb), { component: 'shim' }))).toBe(false);
  });

  it('drops a process that exits between collections without failing', async () => {
    const sb = simSandbox('8'.repeat(64), 'go', 'qemu');
    const p = await startVmProcesses(sb, nodeDir);
    procs.push(p);
    writePersist(sb, p);
    const c = collector();
    const hv = F.procCpu + sandboxSel(info(sb), { component: 'hypervisor' });
    expect((await values(c, [info(sb)])).has(hv)).toBe(true);
    await p.stop();
    procs = [];
    const s = await values(c, [info(sb)]);
    expect(s.has(hv)).toBe(false);
    expect(s.get(`${F.readErrors}{file="stat",reason="gone"}`)).toBeGreaterThanOrEqual(1);
  });

  it.each([1, 2] as const)(
    'pod CPU from a cgroup v%d fixture mirroring the stand-ins grows with burnCpu',
    async version => {
      const sb = simSandbox('7'.repeat(64), 'go', 'qemu');
      const p = await startVmProcesses(sb, nodeDir);
      procs.push(p);
      writePersist(sb, { ...p, overheadCgroupPath: '' });
      const sysfs = path.join(nodeDir, 'sys');
      const m = startCgroupMirror({
        sysfs,
        version,
        cgroupPath: p.sandboxCgroupPath!,
        pids: () => [p.hypervisorPid, p.virtiofsdPid!],
        intervalMs: 50,
      });
      mirrors.push(m);
      await m.refresh();
      const c = collector(sysfs);
      const sel = sandboxSel(info(sb));
      const s0 = await values(c, [info(sb)]);
      const cpu0 = s0.get(F.podCpu + sel)!;
      expect(s0.get(F.podMem + sel)).toBeGreaterThan(0);
      p.burnCpu!(800);
      await waitFor(
        async () => (await values(c, [info(sb)])).get(F.podCpu + sel)! >= cpu0 + 0.3,
        20_000,
        100,
        'pod CPU growth',
      );
    },
  );
});
