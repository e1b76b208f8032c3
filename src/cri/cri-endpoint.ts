/**
 * CRI endpoint parsing and default probing. Pure: the existence check is passed in.
 *
 * Upstream bugs avoided (reference §7.3, §7.5): `tcp://` endpoints work, and a unix path always becomes a
 * full `unix://` gRPC target (grpc-go 3.21–3.31 resolved bare paths through DNS and lost every label).
 */

export interface CriEndpoint {
  /** The target handed to grpc-js: `unix:///abs/path` or `host:port`. */
  readonly target: string;
  /** How we show it (logs, `kata_monitor_build_info{cri_endpoint}`): `unix:///p` or `tcp://h:p`. */
  readonly display: string;
  /** Filesystem path of a unix endpoint. */
  readonly socketPath?: string;
  /** Given as a bare path (works, but deprecated like upstream). */
  readonly deprecated: boolean;
}

export type ParsedEndpoint = { ok: true; endpoint: CriEndpoint } | { ok: false; error: string };

const ACCEPTED = 'want unix:///PATH, unix:/PATH, /PATH or tcp://HOST:PORT';

function unixEndpoint(p: string, deprecated: boolean): ParsedEndpoint {
  if (!p.startsWith('/')) return { ok: false, error: `"${p}" is not an absolute path; ${ACCEPTED}` };
  return { ok: true, endpoint: { target: `unix://${p}`, display: `unix://${p}`, socketPath: p, deprecated } };
}

export function parseCriEndpoint(text: string): ParsedEndpoint {
  const ep = text.trim();
  if (ep.startsWith('unix://')) return unixEndpoint(ep.slice('unix://'.length), false);
  if (ep.startsWith('unix:')) return unixEndpoint(ep.slice('unix:'.length), false);
  if (ep.startsWith('/')) return unixEndpoint(ep, true);
  const tcp = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})\/?$/.exec(ep);
  if (tcp) {
    const port = Number(tcp[2]);
    if (port < 1 || port > 65535) return { ok: false, error: `port ${port} out of range; ${ACCEPTED}` };
    const hostPort = `${tcp[1]}:${port}`;
    return { ok: true, endpoint: { target: hostPort, display: `tcp://${hostPort}`, deprecated: false } };
  }
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(ep);
  if (scheme) return { ok: false, error: `protocol "${scheme[1]}" not supported; ${ACCEPTED}` };
  return { ok: false, error: ACCEPTED };
}

/** Well-known CRI sockets probed in order when no endpoint is given: containerd, k3s, k0s, microk8s, CRI-O. */
export const WELL_KNOWN_CRI_SOCKETS: readonly string[] = [
  '/run/containerd/containerd.sock',
  '/run/k3s/containerd/containerd.sock',
  '/run/k0s/containerd.sock',
  '/var/snap/microk8s/common/run/containerd.sock',
  '/var/run/crio/crio.sock',
];

export interface ResolvedEndpoint {
  endpoint: CriEndpoint;
  /** `flag`: given; `probe`: first existing well-known socket; `fallback`: none existed, containerd assumed. */
  source: 'flag' | 'probe' | 'fallback';
}

/** The endpoint to use: the given one, else the first existing well-known socket, else containerd's. */
export function resolveCriEndpoint(
  given: CriEndpoint | undefined,
  exists: (p: string) => boolean,
  candidates: readonly string[] = WELL_KNOWN_CRI_SOCKETS,
): ResolvedEndpoint {
  if (given) return { endpoint: given, source: 'flag' };
  for (const p of candidates) {
    if (exists(p)) return { endpoint: toEndpoint(p), source: 'probe' };
  }
  return { endpoint: toEndpoint(candidates[0] ?? '/run/containerd/containerd.sock'), source: 'fallback' };
}

function toEndpoint(p: string): CriEndpoint {
  return { target: `unix://${p}`, display: `unix://${p}`, socketPath: p, deprecated: false };
}
