/**
 * Pure readers of the PIDs and cgroup paths Kata records on disk:
 * - Go runtime `<sandboxDir>/persist.json`: `HypervisorState.Pid`, `HypervisorState.VirtiofsDaemonPid`,
 *   `HypervisorState.Type`, `SandboxCgroupPath`, `OverheadCgroupPath`;
 * - runtime-rs `<sandboxDir>/state.json`: `hypervisor.pid` (null at upstream HEAD), `hypervisor.virtiofs_daemon_pid`,
 *   `hypervisor.hypervisor_type`; no cgroup path is recorded.
 */
import { HostParseError } from './errors';
import type { Runtime } from '../types';

export interface RecordedState {
  hypervisorPid?: number;
  virtiofsdPid?: number;
  hypervisorType?: string;
  sandboxCgroupPath?: string;
  overheadCgroupPath?: string;
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/** A usable PID: a positive safe integer (Kata writes 0 when there is none). */
function pid(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function parseRecordedState(text: string, runtime: Runtime): RecordedState {
  const file = runtime === 'go' ? 'persist.json' : 'state.json';
  if (text.trim() === '') throw new HostParseError('HOST_PARSE_TRUNCATED', file, 'empty');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new HostParseError('HOST_PARSE_INVALID', file, `not JSON (${(err as Error).message})`);
  }
  const top = obj(doc);
  if (!top) throw new HostParseError('HOST_PARSE_INVALID', file, 'not a JSON object');
  const out: RecordedState = {};
  const set = <K extends keyof RecordedState>(k: K, v: RecordedState[K] | undefined): void => {
    if (v !== undefined) out[k] = v;
  };
  if (runtime === 'go') {
    const hs = obj(top.HypervisorState);
    set('hypervisorPid', pid(hs?.Pid));
    set('virtiofsdPid', pid(hs?.VirtiofsDaemonPid));
    set('hypervisorType', str(hs?.Type));
    set('sandboxCgroupPath', str(top.SandboxCgroupPath));
    set('overheadCgroupPath', str(top.OverheadCgroupPath));
  } else {
    const hs = obj(top.hypervisor);
    set('hypervisorPid', pid(hs?.pid));
    set('virtiofsdPid', pid(hs?.virtiofs_daemon_pid));
    set('hypervisorType', str(hs?.hypervisor_type));
  }
  return out;
}
