/**
 * cgroup filesystem fixtures (v1 and v2) under a fake sysfs dir, for tests and the simulator (which cannot
 * write the real /sys). Layout, as the host collector reads it:
 * - v2: `<sysfs>/fs/cgroup/cgroup.controllers` (the marker), `<sysfs>/fs/cgroup/<path>/{cpu.stat,memory.current,memory.stat}`;
 * - v1: `<sysfs>/fs/cgroup/cpuacct/<path>/cpuacct.usage`, `<sysfs>/fs/cgroup/memory/<path>/{memory.usage_in_bytes,memory.stat}`.
 * Files are replaced atomically (write + rename) so a concurrent reader never sees half a file.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { parseProcStat, parseProcStatus, processCpuSeconds } from '../host/proc-parse';

export type CgroupVersion = 1 | 2;

export interface CgroupUsage {
  /** Total CPU time of the cgroup, seconds. */
  cpuSeconds: number;
  /** Memory usage (`memory.current` / `memory.usage_in_bytes`), bytes. */
  memoryBytes: number;
  /** Inactive file pages (`inactive_file` / `total_inactive_file`), bytes; default 0. */
  inactiveFileBytes?: number;
}

let tmpSeq = 0;

async function writeAtomic(file: string, text: string): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  // Unique per write: concurrent writers of the same file (many sandboxes laying out one root) must not
  // rename each other's temporary file away.
  const tmp = `${file}.${process.pid}.${++tmpSeq}.tmp`;
  await fsp.writeFile(tmp, text);
  await fsp.rename(tmp, file);
}

const rel = (cgroupPath: string): string => cgroupPath.replace(/^\/+/, '');

/** The hierarchy root for a version: v2 gets the `cgroup.controllers` marker, v1 the controller dirs. */
export async function layoutCgroupRoot(sysfs: string, version: CgroupVersion): Promise<void> {
  const base = path.join(sysfs, 'fs', 'cgroup');
  if (version === 2) {
    await writeAtomic(path.join(base, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n');
  } else {
    await fsp.mkdir(path.join(base, 'cpuacct'), { recursive: true });
    await fsp.mkdir(path.join(base, 'memory'), { recursive: true });
  }
}

/** memory.stat text with the fields a kubelet-like reader needs, plus a few realistic neighbours. */
function memoryStatText(version: CgroupVersion, usage: CgroupUsage): string {
  const inactive = Math.round(usage.inactiveFileBytes ?? 0);
  const anon = Math.max(0, Math.round(usage.memoryBytes) - inactive);
  if (version === 2) {
    return [
      `anon ${anon}`,
      `file ${inactive}`,
      'kernel 0',
      `active_anon ${anon}`,
      'inactive_anon 0',
      'active_file 0',
      `inactive_file ${inactive}`,
      'unevictable 0',
      '',
    ].join('\n');
  }
  return [
    `cache ${inactive}`,
    `rss ${anon}`,
    `inactive_file ${inactive}`,
    'active_file 0',
    `total_cache ${inactive}`,
    `total_rss ${anon}`,
    'total_inactive_anon 0',
    `total_active_anon ${anon}`,
    `total_inactive_file ${inactive}`,
    'total_active_file 0',
    '',
  ].join('\n');
}

/** Write (or rewrite) the usage files of one cgroup; also lays out the root. */
export async function writeCgroupUsage(
  sysfs: string,
  version: CgroupVersion,
  cgroupPath: string,
  usage: CgroupUsage,
): Promise<void> {
  await layoutCgroupRoot(sysfs, version);
  const base = path.join(sysfs, 'fs', 'cgroup');
  const stat = memoryStatText(version, usage);
  if (version === 2) {
    const dir = path.join(base, rel(cgroupPath));
    const usec = Math.round(usage.cpuSeconds * 1e6);
    await writeAtomic(
      path.join(dir, 'cpu.stat'),
      `usage_usec ${usec}\nuser_usec ${Math.round(usec * 0.7)}\nsystem_usec ${usec - Math.round(usec * 0.7)}\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n`,
    );
    await writeAtomic(path.join(dir, 'memory.current'), `${Math.round(usage.memoryBytes)}\n`);
    await writeAtomic(path.join(dir, 'memory.stat'), stat);
  } else {
    await writeAtomic(
      path.join(base, 'cpuacct', rel(cgroupPath), 'cpuacct.usage'),
      `${Math.round(usage.cpuSeconds * 1e9)}\n`,
    );
    const mem = path.join(base, 'memory', rel(cgroupPath));
    await writeAtomic(path.join(mem, 'memory.usage_in_bytes'), `${Math.round(usage.memoryBytes)}\n`);
    await writeAtomic(path.join(mem, 'memory.stat'), stat);
  }
}

/** Remove one cgroup's fixture dirs (sandbox destroyed). */
export async function removeCgroup(sysfs: string, version: CgroupVersion, cgroupPath: string): Promise<void> {
  const base = path.join(sysfs, 'fs', 'cgroup');
  const dirs =
    version === 2
      ? [path.join(base, rel(cgroupPath))]
      : [path.join(base, 'cpuacct', rel(cgroupPath)), path.join(base, 'memory', rel(cgroupPath))];
  await Promise.all(dirs.map(d => fsp.rm(d, { recursive: true, force: true })));
}

export interface CgroupMirrorOptions {
  sysfs: string;
  version: CgroupVersion;
  cgroupPath: string;
  /** The processes whose real usage the cgroup should show (read from `<procfs>/<pid>/{stat,status}`). */
  pids: () => readonly number[];
  procfs?: string;
  /** USER_HZ, default 100. */
  clockTicks?: number;
  /** Refresh period, default 1000 ms. */
  intervalMs?: number;
}

export interface CgroupMirror {
  /** Rewrite the files now from the current process usage. */
  refresh(): Promise<CgroupUsage>;
  stop(): Promise<void>;
}

/** Sum of utime+stime (seconds) and VmRSS (bytes) of the given processes; exited ones count 0. */
export async function processUsage(
  pids: readonly number[],
  procfs = '/proc',
  clockTicks = 100,
): Promise<CgroupUsage> {
  let cpuSeconds = 0;
  let memoryBytes = 0;
  await Promise.all(
    pids.map(async pid => {
      try {
        const [stat, status] = await Promise.all([
          fsp.readFile(path.join(procfs, String(pid), 'stat'), 'utf8'),
          fsp.readFile(path.join(procfs, String(pid), 'status'), 'utf8'),
        ]);
        cpuSeconds += processCpuSeconds(parseProcStat(stat), clockTicks);
        memoryBytes += parseProcStatus(status).residentBytes ?? 0;
      } catch {
        /* exited (or a zombie mid-exit): contributes nothing */
      }
    }),
  );
  return { cpuSeconds, memoryBytes };
}

/**
 * Keep a fixture cgroup in step with real processes, so the simulator's pod series move when its stand-ins
 * burn CPU or hold memory. CPU never goes backwards (a real cgroup keeps the time of exited members).
 */
export function startCgroupMirror(opts: CgroupMirrorOptions): CgroupMirror {
  let floorCpu = 0;
  let pending: Promise<CgroupUsage> | undefined;
  const refresh = (): Promise<CgroupUsage> => {
    pending ??= (async () => {
      const u = await processUsage(opts.pids(), opts.procfs, opts.clockTicks);
      floorCpu = Math.max(floorCpu, u.cpuSeconds);
      const usage = { ...u, cpuSeconds: floorCpu };
      await writeCgroupUsage(opts.sysfs, opts.version, opts.cgroupPath, usage);
      return usage;
    })().finally(() => {
      pending = undefined;
    });
    return pending;
  };
  const timer = setInterval(() => void refresh().catch(() => undefined), opts.intervalMs ?? 1000);
  timer.unref();
  return {
    refresh,
    async stop() {
      clearInterval(timer);
      await pending?.catch(() => undefined);
    },
  };
}
