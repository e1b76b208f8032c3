/**
 * Where the host collector looks (pure path composition; roots injected from `--path.procfs`,
 * `--path.sysfs`, `--path.run`).
 */
import * as path from 'node:path';
import type { Runtime } from '../types';

export interface HostPaths {
  /** procfs mount, default `/proc`. */
  procfs: string;
  /** sysfs mount, default `/sys` (cgroups under `<sysfs>/fs/cgroup`). */
  sysfs: string;
  /** run dir, default `/run` (`<run>/vc/vm`, `<run>/containerd`). */
  runDir: string;
}

export const DEFAULT_HOST_PATHS: Readonly<HostPaths> = Object.freeze({
  procfs: '/proc',
  sysfs: '/sys',
  runDir: '/run',
});

/** The normalised `<procfs>/` prefix per procfs root (a handful of distinct values per process). */
const procRoots = new Map<string, string>();

/**
 * `<procfs>/<pid>/<name>`, the same string as `path.join(procfs, String(pid), name)` (pid is an integer and
 * name a plain file name, so only the root needs normalising, once per root).
 */
export const procFile = (procfs: string, pid: number, name: string): string => {
  let root = procRoots.get(procfs);
  if (root === undefined) {
    root = path.join(procfs, 'x').slice(0, -1);
    if (procRoots.size < 64) procRoots.set(procfs, root);
  }
  return root + pid + '/' + name;
};

/** `<sandboxDir>/persist.json` (Go runtime) or `<sandboxDir>/state.json` (runtime-rs). */
export const recordedStateFile = (sandboxDir: string, runtime: Runtime): string =>
  path.join(sandboxDir, runtime === 'go' ? 'persist.json' : 'state.json');

/** QEMU's `-pidfile` in the Go runtime's VM store: `<run>/vc/vm/<id>/pid`. */
export const vmPidFile = (runDir: string, id: string): string => path.join(runDir, 'vc', 'vm', id, 'pid');

/** containerd's shim v2 task dir, holding one directory per namespace. */
export const containerdTaskDir = (runDir: string): string =>
  path.join(runDir, 'containerd', 'io.containerd.runtime.v2.task');

/** `<run>/containerd/io.containerd.runtime.v2.task/<ns>/<id>/shim.pid`. */
export const bundleShimPidFile = (runDir: string, ns: string, id: string): string =>
  path.join(containerdTaskDir(runDir), ns, id, 'shim.pid');

/** cgroup v2 is mounted unified when this file exists. */
export const cgroupV2Marker = (sysfs: string): string =>
  path.join(sysfs, 'fs', 'cgroup', 'cgroup.controllers');
