/**
 * The fault spec of `kata-sim --faults` (pure): comma-separated `TARGET:KIND[:ARG]` entries, TARGET being a
 * sandbox index (decimal) or a sandbox id prefix (hex with at least one letter), KIND a shim fault or
 * `agent:<kind>` for an agent fault. Example: `0:hang,3:slow:2000,5:garbage,7:agent:deny`.
 */
import { KataMonitorError } from '../errors';
import type { AgentFault, ShimFault } from './types';

export type FaultTarget = { index: number } | { idPrefix: string };

export type FaultSpecEntry =
  | { target: FaultTarget; shim: ShimFault; agent?: undefined }
  | { target: FaultTarget; agent: AgentFault; shim?: undefined };

const SIMPLE_SHIM = [
  'hang',
  'garbage',
  'http500',
  'gone',
  'disconnect',
  'conflict',
  'huge',
  'prelabelled',
] as const;
const AGENT_KINDS = ['hang', 'deny', 'unimplemented', 'badframe', 'oversize'] as const;

function bad(entry: string, why: string): KataMonitorError {
  return new KataMonitorError(
    'CONFIG_INVALID',
    `invalid --faults entry "${entry}": ${why} (expected TARGET:KIND[:ARG], e.g. 0:hang,3:slow:2000,7:agent:deny)`,
  );
}

/** Parse one fault kind (without target): `slow:2000`, `garbage`, `agent:deny`. */
export function parseFaultKind(text: string, entry = text): { shim: ShimFault } | { agent: AgentFault } {
  const parts = text.split(':');
  const kind = parts[0] ?? '';
  if (kind === 'agent') {
    const ak = parts[1] ?? '';
    if (parts.length !== 2 || !(AGENT_KINDS as readonly string[]).includes(ak)) {
      throw bad(
        entry,
        `unknown agent fault "${parts.slice(1).join(':')}" (one of ${AGENT_KINDS.join(', ')})`,
      );
    }
    return { agent: { kind: ak } as AgentFault };
  }
  if (kind === 'slow') {
    const ms = parts[1];
    if (parts.length !== 2 || ms === undefined || !/^\d+$/.test(ms) || Number(ms) <= 0) {
      throw bad(entry, 'slow needs a positive number of milliseconds, e.g. slow:2000');
    }
    return { shim: { kind: 'slow', ms: Number(ms) } };
  }
  if ((SIMPLE_SHIM as readonly string[]).includes(kind)) {
    if (parts.length !== 1) throw bad(entry, `fault "${kind}" takes no argument`);
    return { shim: { kind } as ShimFault };
  }
  throw bad(entry, `unknown fault "${kind}" (one of slow:MS, ${SIMPLE_SHIM.join(', ')}, agent:KIND)`);
}

/** Parse a whole spec; the empty string means no faults. */
export function parseFaultSpec(spec: string): FaultSpecEntry[] {
  const out: FaultSpecEntry[] = [];
  for (const raw of spec.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const colon = entry.indexOf(':');
    if (colon <= 0) throw bad(entry, 'missing TARGET: before the fault');
    const t = entry.slice(0, colon).toLowerCase();
    let target: FaultTarget;
    if (/^\d+$/.test(t)) target = { index: Number(t) };
    else if (/^[0-9a-f]+$/.test(t) && t.length <= 64) target = { idPrefix: t };
    else throw bad(entry, `target "${t}" is neither a sandbox index nor a hex id prefix`);
    const kind = parseFaultKind(entry.slice(colon + 1), entry);
    out.push('shim' in kind ? { target, shim: kind.shim } : { target, agent: kind.agent });
  }
  return out;
}

/** Does this entry apply to the sandbox with this index and id? */
export function faultMatches(target: FaultTarget, index: number, id: string): boolean {
  return 'index' in target ? target.index === index : id.startsWith(target.idPrefix);
}

/** Back to spec text (for summaries). */
export function formatFault(f: ShimFault | AgentFault, agent = false): string {
  const base = f.kind === 'slow' && 'ms' in f ? `slow:${f.ms}` : f.kind;
  return agent ? `agent:${base}` : base;
}
