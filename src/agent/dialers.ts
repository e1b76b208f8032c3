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
 * What a dial waits for on a fresh socket before handing it over: the bytes received so far either complete
 * the preamble (the bytes after it are returned), prove it wrong (an error), or are not enough yet.
 */
interface Preamble {
  read(received: Buffer): Buffer | KataMonitorError | undefined;
  /** Longest preamble accepted before giving up. */
  maxBytes: number;
  tooLong: string;
  /** Why the peer closing before the preamble is an error. */
  closed: string;
}

/**
 * The common lifecycle of a dial: a deadline, the caller's abort signal, socket errors, and (with a preamble)
 * reading until it is complete; then the socket is handed over paused, with the bytes that followed the
 * preamble put back for the ttrpc reader. `start` runs once the socket may be used: at once, or on
 * `connect` when `waitConnect` is set; it returns the preamble to wait for, or undefined to hand over.
 */
function handOver(
  sock: net.Socket,
  addr: AgentAddress,
  opts: DialOptions,
  deadlineMs: number,
  timeoutMessage: () => string,
  waitConnect: boolean,
  start: () => Preamble | undefined,
): Promise<Duplex> {
  return new Promise<Duplex>((resolve, reject) => {
    let settled = false;
    let received: Buffer = Buffer.alloc(0);
    let preamble: Preamble | undefined;
    const finish = (err: KataMonitorError | null, rest?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      sock.removeListener('data', onData);
      sock.removeListener('error', onError);
      sock.removeListener('end', onEnd);
      sock.removeListener('connect', begin);
      if (err) {
        sock.destroy();
        reject(err);
        return;
      }
      // Stop the flowing mode before handing the socket over, then put back what followed the preamble.
      sock.pause();
      resolve(sock);
      if (rest && rest.length > 0) sock.unshift(rest);
    };
    const onAbort = (): void =>
      finish(
        new KataMonitorError('AGENT_TIMEOUT', `dial ${formatAgentUrl(addr)} cancelled: deadline reached`),
      );
    const timer = setTimeout(
      () => finish(new KataMonitorError('AGENT_TIMEOUT', timeoutMessage())),
      deadlineMs,
    );
    const onError = (err: Error): void => finish(unreachable(addr, err));
    const onEnd = (): void =>
      finish(
        new KataMonitorError(
          'AGENT_UNREACHABLE',
          `agent ${formatAgentUrl(addr)}: ${preamble?.closed ?? 'closed'}`,
        ),
      );
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const r = preamble!.read(received);
      if (r instanceof KataMonitorError) finish(r);
      else if (r !== undefined) finish(null, r);
      else if (received.length > preamble!.maxBytes)
        finish(new KataMonitorError('AGENT_PROTOCOL', `agent ${formatAgentUrl(addr)}: ${preamble!.tooLong}`));
    };
    const begin = (): void => {
      preamble = start();
      if (!preamble) {
        finish(null);
        return;
      }
      sock.on('data', onData);
      sock.on('end', onEnd);
    };
    sock.on('error', onError);
    if (opts.signal) {
      if (opts.signal.aborted) {
        onAbort();
        return;
      }
      opts.signal.addEventListener('abort', onAbort, { once: true });
    }
    if (waitConnect) sock.on('connect', begin);
    else begin();
  });
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
  // Paths over the sun_path limit are reached through their directory's descriptor (src/util/unix-path.ts).
  let usable: UsableUnixPath;
  try {
    usable = usableUnixPath(socketPath);
  } catch (err) {
    return Promise.reject(unreachable(addr, err as Error));
  }
  const sock = net.createConnection({ path: usable.path });
  sock.once('connect', usable.release);
  sock.once('close', usable.release);
  const url = formatAgentUrl(addr);
  return handOver(
    sock,
    addr,
    opts,
    opts.timeoutMs,
    () =>
      handshake && sock.readyState === 'open'
        ? `agent ${url}: no handshake answer within ${opts.timeoutMs} ms`
        : `agent ${url}: connect did not complete within ${opts.timeoutMs} ms`,
    true,
    () => {
      if (!handshake) return undefined;
      sock.write(handshake);
      return {
        maxBytes: MAX_HANDSHAKE_LINE,
        tooLong: `handshake answer longer than ${MAX_HANDSHAKE_LINE} bytes`,
        closed: 'connection closed during the hybrid vsock handshake',
        read: received => {
          const nl = received.indexOf(0x0a);
          if (nl < 0) return undefined;
          const text = received.subarray(0, nl).toString('latin1').trim();
          if (!/OK/.test(text)) {
            return new KataMonitorError(
              'AGENT_UNREACHABLE',
              `agent ${url}: hybrid vsock handshake refused: ${JSON.stringify(text.slice(0, 100))}`,
            );
          }
          return received.subarray(nl + 1);
        },
      };
    },
  );
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

/** Where the addon is built by `node-gyp rebuild` (or native/build.sh), relative to src/agent or dist/agent. */
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
  const url = formatAgentUrl(addr);
  // The helper thread enforces timeoutMs on connect; this is a backstop.
  return handOver(
    sock,
    addr,
    opts,
    opts.timeoutMs + 100,
    () => `agent ${url}: connect did not complete within ${opts.timeoutMs} ms`,
    false,
    () => ({
      maxBytes: 4,
      tooLong: 'bad vsock bridge header',
      closed: 'vsock bridge closed',
      read: received => {
        if (received.length < 4) return undefined;
        const errno = received.readUInt32BE(0);
        if (errno === 0) return received.subarray(4);
        const name = ERRNO_NAMES[errno] ?? `errno ${errno}`;
        if (errno === 110)
          return new KataMonitorError('AGENT_TIMEOUT', `agent ${url}: connect timed out (${name})`);
        if (VSOCK_HOST_UNSUPPORTED.has(name)) return vsockUnavailable(addr, `connect failed: ${name}`);
        return new KataMonitorError(
          'AGENT_UNREACHABLE',
          `agent ${url} unreachable (${name}): vsock connect failed`,
        );
      },
    }),
  );
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
