/**
 * The hooks a simulated node runs with from the CLI, the demo and the benchmark: an agent per sandbox on its
 * (hybrid) vsock socket, stand-in hypervisor/virtiofsd processes, and a cgroup v2 fixture tree under
 * `<dir>/sys` that follows the stand-ins' real CPU and memory use.
 */
import * as path from 'node:path';
import { startAgentServer } from './agent-server';
import { layoutCgroupRoot, removeCgroup, startCgroupMirror } from './cgroup-fixtures';
import type { SimHooks, SimProcesses } from './types';
import { startVmProcesses } from './vm-process';

export interface DefaultHooksOptions {
  /** The node directory (the simulator's stand-in for /run). */
  dir: string;
  /** Agents on every sandbox's agent socket (default true). */
  agents?: boolean;
  /** Stand-in processes: `light` (default, /bin/sh), `node` (controllable), `none`. */
  processes?: 'light' | 'node' | 'none';
}

/** Where the simulated node's cgroup fixture tree lives (pass it to the daemon as --path.sysfs). */
export function simSysfs(dir: string): string {
  return path.join(dir, 'sys');
}

export function defaultSimHooks(opts: DefaultHooksOptions): SimHooks {
  const hooks: SimHooks = {};
  if (opts.agents !== false) hooks.startAgent = sb => startAgentServer(sb);
  const kind = opts.processes ?? 'light';
  if (kind !== 'none') {
    const sysfs = simSysfs(opts.dir);
    let rootReady: Promise<void> | undefined;
    hooks.startProcesses = async (sb, nodeDir): Promise<SimProcesses> => {
      const procs = await startVmProcesses(sb, nodeDir, { kind });
      const cgroupPath = procs.sandboxCgroupPath;
      if (!cgroupPath) return procs;
      rootReady ??= layoutCgroupRoot(sysfs, 2);
      await rootReady;
      // As with sandbox_cgroup_only=false: the VM in the sandbox cgroup, the helpers in the overhead one.
      const own = (p: number | undefined): number[] => (p !== undefined && p !== process.pid ? [p] : []);
      const groups: Array<[string, number[]]> = [[cgroupPath, own(procs.hypervisorPid)]];
      if (procs.overheadCgroupPath) groups.push([procs.overheadCgroupPath, own(procs.virtiofsdPid)]);
      const mirrors = groups.map(([p, members]) =>
        startCgroupMirror({ sysfs, version: 2, cgroupPath: p, pids: () => members, intervalMs: 2000 }),
      );
      await Promise.all(mirrors.map(m => m.refresh()));
      return {
        ...procs,
        stop: async () => {
          await Promise.all(mirrors.map(m => m.stop()));
          await Promise.all(groups.map(([p]) => removeCgroup(sysfs, 2, p).catch(() => undefined)));
          await procs.stop();
        },
      };
    };
  }
  return hooks;
}
