/**
 * Hypervisor type and agent URL from a sandbox's on-disk state. Pure twins of the readers in
 * sandbox-watcher.ts (reference §6.1, §6.3).
 */

export interface OnDiskState {
  hypervisor?: string;
  agentUrl?: string;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/** Go runtime `persist.json`: `HypervisorState.Type`, `AgentState.URL`. Undefined when not JSON (e.g. half-written). */
export function parsePersistJson(text: string): OnDiskState | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  const root = obj(doc);
  if (!root) return undefined;
  const out: OnDiskState = {};
  const hv = str(obj(root.HypervisorState)?.Type) ?? str(obj(root.Config)?.HypervisorType);
  const url = str(obj(root.AgentState)?.URL);
  if (hv) out.hypervisor = hv;
  if (url) out.agentUrl = url;
  return out;
}

/** runtime-rs `state.json`: `hypervisor.hypervisor_type`. */
export function parseStateJson(text: string): OnDiskState | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  const root = obj(doc);
  if (!root) return undefined;
  const out: OnDiskState = {};
  const hv = str(obj(root.hypervisor)?.hypervisor_type);
  if (hv) out.hypervisor = hv;
  return out;
}
