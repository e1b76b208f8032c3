/**
 * How a `/debug/...` request is forwarded to a shim: the upstream path and its deadline. Pure.
 *
 * `profile` and `trace` run for `seconds` on the shim (Go defaults 30 and 1); `seconds` is capped at
 * MAX_PROFILE_SECONDS (the capped value is what the shim receives) and the request deadline is the
 * duration plus a margin. Every other debug path gets DEBUG_TIMEOUT_MS.
 */

export const DEBUG_TIMEOUT_MS = 10_000;
export const MAX_PROFILE_SECONDS = 300;
export const PROFILE_MARGIN_MS = 10_000;

export interface DebugPlan {
  /** Path and query sent to the shim. */
  upstreamPath: string;
  timeoutMs: number;
  /** The pprof HTML index, whose links are rewritten (pprof-rewrite.ts). */
  isIndex: boolean;
}

/** Names a `/debug/pprof/<name>` may have (Go runtime profile names and the fixed handlers). */
export const PPROF_NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** `pathname` e.g. `/debug/pprof/profile`; `search` the raw query string including `?` (or ''). */
export function planDebugRequest(pathname: string, search: string): DebugPlan {
  const params = new URLSearchParams(search.startsWith('?') ? search.slice(1) : search);
  const isIndex = pathname === '/debug/pprof/' || pathname === '/debug/pprof';
  const upstreamPathname = isIndex ? '/debug/pprof/' : pathname;
  const defaults: Record<string, number> = { '/debug/pprof/profile': 30, '/debug/pprof/trace': 1 };
  const defaultSeconds = defaults[pathname];
  if (defaultSeconds === undefined) {
    return { upstreamPath: upstreamPathname + search, timeoutMs: DEBUG_TIMEOUT_MS, isIndex };
  }
  let seconds = defaultSeconds;
  let query = search;
  const given = params.get('seconds');
  if (given !== null) {
    const n = Number(given);
    if (Number.isFinite(n) && n > 0) {
      seconds = Math.min(n, MAX_PROFILE_SECONDS);
      if (n > MAX_PROFILE_SECONDS) {
        params.set('seconds', String(MAX_PROFILE_SECONDS));
        query = '?' + params.toString();
      }
    }
  }
  return { upstreamPath: upstreamPathname + query, timeoutMs: seconds * 1000 + PROFILE_MARGIN_MS, isIndex };
}
