/**
 * Who to ask CRI about, and when. Pure: times are plain numbers (ms, Date.now() based), no timers.
 *
 * - A sandbox just discovered is due at once. When it is the only one due and was never asked about,
 *   a `PodSandboxStatus` for it is cheapest; otherwise one `ListPodSandbox` answers for everyone due.
 * - When CRI answers but does not know a sandbox (not created through CRI, or not READY yet), that
 *   sandbox backs off: 1 s, 2 s, 4 s … capped at 60 s. It is never dropped for it.
 * - When CRI itself fails (down, deadline), nobody's backoff grows; instead all queries pause for
 *   1 s, 2 s, 4 s, capped at 5 s, so labels arrive within seconds of CRI coming back.
 */

export interface PendingState {
  /** How many times CRI answered without knowing this sandbox. */
  attempts: number;
  /** Not to be asked about before this time (ms). */
  nextAt: number;
}

export const UNKNOWN_BACKOFF_BASE_MS = 1000;
export const UNKNOWN_BACKOFF_CAP_MS = 60_000;
export const ERROR_BACKOFF_BASE_MS = 1000;
export const ERROR_BACKOFF_CAP_MS = 5000;

/** Delay after CRI's `attempts`-th answer that did not include the sandbox (attempts ≥ 1). */
export function unknownDelayMs(attempts: number): number {
  return Math.min(UNKNOWN_BACKOFF_CAP_MS, UNKNOWN_BACKOFF_BASE_MS * 2 ** Math.max(0, attempts - 1));
}

/** Pause after `failures` consecutive CRI call failures (failures ≥ 1). */
export function errorDelayMs(failures: number): number {
  return Math.min(ERROR_BACKOFF_CAP_MS, ERROR_BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1));
}

export type QueryPlan =
  { kind: 'idle'; wakeAt?: number } | { kind: 'status'; id: string } | { kind: 'list'; ids: string[] };

/** What to do now. `pausedUntil`: CRI error pause end (0 = none). */
export function planQuery(
  pending: ReadonlyMap<string, PendingState>,
  now: number,
  pausedUntil = 0,
): QueryPlan {
  if (pending.size === 0) return { kind: 'idle' };
  if (now < pausedUntil) return { kind: 'idle', wakeAt: pausedUntil };
  const due: string[] = [];
  let wakeAt = Infinity;
  for (const [id, st] of pending) {
    if (st.nextAt <= now) due.push(id);
    else wakeAt = Math.min(wakeAt, st.nextAt);
  }
  if (due.length === 0) return { kind: 'idle', wakeAt };
  const only = due[0] as string;
  if (due.length === 1 && pending.get(only)?.attempts === 0) return { kind: 'status', id: only };
  return { kind: 'list', ids: due.sort() };
}

/**
 * The pending set after CRI answered. `asked`: ids the query was about; `known`: ids CRI returned
 * (a list may return ids that were pending but not due: they resolve too). Returns the new map and the
 * ids resolved.
 */
export function applyAnswer(
  pending: ReadonlyMap<string, PendingState>,
  asked: readonly string[],
  known: ReadonlySet<string>,
  now: number,
): { pending: Map<string, PendingState>; resolved: string[] } {
  const next = new Map(pending);
  const resolved: string[] = [];
  for (const id of pending.keys()) {
    if (known.has(id)) {
      next.delete(id);
      resolved.push(id);
    }
  }
  for (const id of asked) {
    const st = next.get(id);
    if (!st) continue;
    const attempts = st.attempts + 1;
    next.set(id, { attempts, nextAt: now + unknownDelayMs(attempts) });
  }
  return { pending: next, resolved };
}
