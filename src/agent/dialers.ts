/**
 * Open a byte stream to a Kata agent, by address scheme (kata-protocols.md §5):
 *   hvsock  unix socket + `CONNECT <port>\n` → a line containing `OK` (with a handshake timeout)
 *   remote, mock  plain unix socket
 *   vsock   AF_VSOCK through the optional native addon (native/vsock); without it: VSOCK_UNAVAILABLE
 * The returned Duplex is paused (call resume() or attach a reader that does) and ready for ttrpc.
 */
import * as net from 'node:net';
import { usableUnixPath, type UsableUnixPath } from '../util/unix-path';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import { KataMonitorError, errnoCode, getErrorMessage } from '../errors';
import { formatAgentUrl, type AgentAddress } from './agent-url';

export interface DialOptions {
  /** Whole dial deadline (connect + handshake), ms. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Injected vsock implementation (tests, or a different addon location). */
  vsock?: VsockBinding | null;
}

/** Longest handshake answer line we accept. */
const MAX_HANDSHAKE_LINE = 512;

function unreachable(addr: AgentAddress, err: unknown): KataMonitorError {
  const code = errnoCode(err);
  return new KataMonitorError(
    'AGENT_UNREACHABLE',
    `agent ${formatAgentUrl(addr)} unreachable${code ? ` (${code})` : ''}: ${getErrorMessage(err)}`,
    { cause: err },
  );
}

/** Dial the agent at `addr`. Rejects with AGENT_UNREACHABLE, AGENT_TIMEOUT, AGENT_PROTOCOL or VSOCK_UNAVAILABLE. */
export function dialAgent(addr: AgentAddress, opts: DialOptions): Promise<Duplex> {
  switch (addr.scheme) {
    case 'hvsock':
      return dialUnix(addr, addr.path, opts, `CONNECT ${addr.port}\n`);
    case 'remote':
    case 'mock':
      return dialUnix(addr, addr.path, opts, undefined);
    case 'vsock':
      return dialVsock(addr, opts);
  }
}

/**
 * Connect to a unix socket; with `handshake`, send it and wait for one line containing `OK`. Bytes received
 * after that line are put back into the socket for the ttrpc reader.
 */
function dialUnix(
  addr: AgentAddress,
  socketPath: string,
  opts: DialOptions,
  handshake: string | undefined,
): Promise<Duplex> {
  return new Promise<Duplex>((resolve, reject) => {
    // Paths over the sun_path limit are reached through their directory's descriptor (src/util/unix-path.ts).
    let usable: UsableUnixPath;
    try {
      usable = usableUnixPath(socketPath);
    } catch (err) {
      reject(unreachable(addr, err as Error));
      return;
    }
    const sock = net.createConnection({ path: usable.path });
    sock.once('connect', usable.release);
    sock.once('close', usable.release);
    let settled = false;
    let line = Buffer.alloc(0);
    const finish = (err: KataMonitorError | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      sock.removeListener('data', onData);
      sock.removeListener('error', onError);
      sock.removeListener('end', onEnd);
      sock.removeListener('connect', onConnect);
      if (err) {
        sock.destroy();
        reject(err);
        return;
      }
      sock.pause();
      resolve(sock);
    };
    const onAbort = (): void =>
      finish(
        new KataMonitorError('AGENT_TIMEOUT', `dial ${formatAgentUrl(addr)} cancelled: deadline reached`),
      );
    const timer = setTimeout(
      () =>
        finish(
          new KataMonitorError(
            'AGENT_TIMEOUT',
            handshake && sock.readyState === 'open'
              ? `agent ${formatAgentUrl(addr)}: no handshake answer within ${opts.timeoutMs} ms`
              : `agent ${formatAgentUrl(addr)}: connect did not complete within ${opts.timeoutMs} ms`,
          ),
        ),
      opts.timeoutMs,
    );
    const onError = (err: Error): void => finish(unreachable(addr, err));
    const onEnd = (): void =>
      finish(
        new KataMonitorError(
          'AGENT_UNREACHABLE',
          `agent ${formatAgentUrl(addr)}: connection closed during the hybrid vsock handshake`,
        ),
      );
    const onData = (chunk: Buffer): void => {
      line = Buffer.concat([line, chunk]);
      const nl = line.indexOf(0x0a);
      if (nl < 0) {
        if (line.length > MAX_HANDSHAKE_LINE) {
          finish(
            new KataMonitorError(
              'AGENT_PROTOCOL',
              `agent ${formatAgentUrl(addr)}: handshake answer longer than ${MAX_HANDSHAKE_LINE} bytes`,
            ),
          );
        }
        return;
      }
      const text = line.subarray(0, nl).toString('latin1').trim();
      const rest = line.subarray(nl + 1);
      if (!/OK/.test(text)) {
        finish(
          new KataMonitorError(
            'AGENT_UNREACHABLE',
            `agent ${formatAgentUrl(addr)}: hybrid vsock handshake refused: ${JSON.stringify(text.slice(0, 100))}`,
          ),
        );
        return;
      }
      // Stop the flowing mode before handing the socket over, then put back what followed the line.
      sock.pause();
      finish(null);
      if (rest.length > 0) sock.unshift(rest);
    };
    const onConnect = (): void => {
      if (!handshake) {
        finish(null);
        return;
      }
      sock.on('data', onData);
      sock.on('end', onEnd);
      sock.write(handshake);
    };
    sock.on('error', onError);
    sock.on('connect', onConnect);
    if (opts.signal) {
      if (opts.signal.aborted) {
        onAbort();
        return;
      }
      opts.signal.addEventListener('abort', onAbort, { once: true });
    }
  });
}

// ---------------------------------------------------------------------------------------------------------
// vsock

/**
 * What the native addon (native/vsock) provides. `connect` creates an AF_VSOCK socket, connects it on a
 * helper thread and relays it through one end of a unix socketpair whose other end's fd is returned; the
 * first 4 bytes read from that fd are the connect result (big-endian errno, 0 = connected), then the stream.
 */
export interface VsockBinding {
  /** Throws (with an errno code) when AF_VSOCK sockets cannot be created on this host. */
  probe(): void;
  connect(cid: number, port: number, timeoutMs: number): number;
}

/** Where the addon is built by `node-gyp rebuild` (or native/vsock/build.sh), relative to src/agent or dist/agent. */
export const VSOCK_ADDON_PATH = path.resolve(
  __dirname,
  '..',
  '..',
  'native',
  'vsock',
  'build',
  'Release',
  'vsock.node',
);

export type VsockLoad = { ok: true; binding: VsockBinding } | { ok: false; reason: string };

/** Try to load the addon; never throws. */
export function loadVsockBinding(addonPath: string = VSOCK_ADDON_PATH): VsockLoad {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(addonPath) as Partial<VsockBinding>;
    if (typeof mod.connect !== 'function' || typeof mod.probe !== 'function') {
      return { ok: false, reason: `${addonPath} does not export connect/probe` };
    }
    return { ok: true, binding: mod as VsockBinding };
  } catch (err) {
    return { ok: false, reason: getErrorMessage(err).split('\n')[0] ?? 'load failed' };
  }
}

let defaultLoad: VsockLoad | undefined;

function vsockBinding(opts: DialOptions): VsockLoad {
  if (opts.vsock === null) return { ok: false, reason: 'disabled' };
  if (opts.vsock) return { ok: true, binding: opts.vsock };
  defaultLoad ??= loadVsockBinding();
  return defaultLoad;
}

function vsockUnavailable(addr: AgentAddress, why: string, cause?: unknown): KataMonitorError {
  return new KataMonitorError(
    'VSOCK_UNAVAILABLE',
    `${formatAgentUrl(addr)} needs the AF_VSOCK addon (native/vsock) and a host with vsock support: ${why}`,
    { cause },
  );
}

const VSOCK_HOST_UNSUPPORTED = new Set([
  'EAFNOSUPPORT',
  'EPROTONOSUPPORT',
  'ESOCKTNOSUPPORT',
  'EPERM',
  'EACCES',
]);

async function dialVsock(
  addr: Extract<AgentAddress, { scheme: 'vsock' }>,
  opts: DialOptions,
): Promise<Duplex> {
  const load = vsockBinding(opts);
  if (!load.ok) throw vsockUnavailable(addr, load.reason);
  let fd: number;
  try {
    fd = load.binding.connect(addr.cid, addr.port, opts.timeoutMs);
  } catch (err) {
    const code = errnoCode(err);
    if (code && VSOCK_HOST_UNSUPPORTED.has(code))
      throw vsockUnavailable(addr, `socket(AF_VSOCK) failed: ${code}`, err);
    throw unreachable(addr, err);
  }
  const sock = new net.Socket({ fd, readable: true, writable: true });
  return new Promise<Duplex>((resolve, reject) => {
    let head = Buffer.alloc(0);
    let settled = false;
    const finish = (err: KataMonitorError | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      sock.removeListener('data', onData);
      sock.removeListener('error', onError);
      sock.removeListener('end', onEnd);
      if (err) {
        sock.destroy();
        reject(err);
      } else {
        sock.pause();
        resolve(sock);
      }
    };
    const onAbort = (): void =>
      finish(
        new KataMonitorError('AGENT_TIMEOUT', `dial ${formatAgentUrl(addr)} cancelled: deadline reached`),
      );
    // The helper thread enforces timeoutMs on connect; this is a backstop.
    const timer = setTimeout(
      () =>
        finish(
          new KataMonitorError(
            'AGENT_TIMEOUT',
            `agent ${formatAgentUrl(addr)}: connect did not complete within ${opts.timeoutMs} ms`,
          ),
        ),
      opts.timeoutMs + 100,
    );
    const onError = (err: Error): void => finish(unreachable(addr, err));
    const onEnd = (): void =>
      finish(new KataMonitorError('AGENT_UNREACHABLE', `agent ${formatAgentUrl(addr)}: vsock bridge closed`));
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      if (head.length < 4) return;
      const errno = head.readUInt32BE(0);
      const rest = head.subarray(4);
      if (errno !== 0) {
        const name = ERRNO_NAMES[errno] ?? `errno ${errno}`;
        if (errno === 110) {
          finish(
            new KataMonitorError(
              'AGENT_TIMEOUT',
              `agent ${formatAgentUrl(addr)}: connect timed out (${name})`,
            ),
          );
        } else if (VSOCK_HOST_UNSUPPORTED.has(name)) {
          finish(vsockUnavailable(addr, `connect failed: ${name}`));
        } else {
          finish(
            new KataMonitorError(
              'AGENT_UNREACHABLE',
              `agent ${formatAgentUrl(addr)} unreachable (${name}): vsock connect failed`,
            ),
          );
        }
        return;
      }
      sock.pause();
      finish(null);
      if (rest.length > 0) sock.unshift(rest);
    };
    sock.on('data', onData);
    sock.on('error', onError);
    sock.on('end', onEnd);
    if (opts.signal) {
      if (opts.signal.aborted) {
        onAbort();
        return;
      }
      opts.signal.addEventListener('abort', onAbort, { once: true });
    }
  });
}

/** Linux errno numbers the vsock bridge may report. */
const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  13: 'EACCES',
  19: 'ENODEV',
  22: 'EINVAL',
  93: 'EPROTONOSUPPORT',
  94: 'ESOCKTNOSUPPORT',
  97: 'EAFNOSUPPORT',
  99: 'EADDRNOTAVAIL',
  101: 'ENETUNREACH',
  104: 'ECONNRESET',
  110: 'ETIMEDOUT',
  111: 'ECONNREFUSED',
  113: 'EHOSTUNREACH',
};
