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

export const procFile = (procfs: string, pid: number, name: string): string =>
  path.join(procfs, String(pid), name);

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
