/**
 * HTTP/1.1 over a shim's unix management socket (`<root>/<id>/shim-monitor.sock`).
 * One request per connection (as Kata's own client does), a hard deadline per request, a body cap,
 * and the status code checked: a 404 or 500 from a shim is an error, never data.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import { HttpResponseError, HttpResponseReader, type BodyStore, type HttpResponse } from './http-response';
import { usableUnixPath, type UsableUnixPath } from '../util/unix-path';
import { KataMonitorError, errnoCode, getErrorMessage, type ErrorCode } from '../errors';
import type { ScrapeErrorReason } from '../types';

export const SHIM_SOCKET_NAME = 'shim-monitor.sock';

export class ShimError extends KataMonitorError {
  readonly reason: ScrapeErrorReason;
  readonly status?: number;
  constructor(
    code: ErrorCode,
    reason: ScrapeErrorReason,
    message: string,
    opts?: { cause?: unknown; status?: number },
  ) {
    super(code, message, opts);
    this.name = 'ShimError';
    this.reason = reason;
    if (opts?.status !== undefined) this.status = opts.status;
  }
}

export interface ShimRequestOptions {
  /** Whole-request deadline (connect + headers + body), milliseconds. */
  timeoutMs: number;
  /** Largest body accepted, bytes. Larger bodies fail with reason `too_large`. */
  maxBytes: number;
  /** Aborts the request early (e.g. the scrape's own deadline). */
  signal?: AbortSignal;
  method?: string;
  /**
   * Read into `store.scratch` and copy the body into Buffers from the store (no per-read allocation); the
   * first one of at least `sizeHint` bytes. Without it, the body is assembled from the socket's own reads.
   */
  store?: BodyStore & { scratch: Buffer };
  sizeHint?: number;
}

export interface ShimResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: Buffer;
}

/** Map a connect/transport error to a shim error with a scrape reason. */
export function classifyTransportError(err: unknown, socketPath: string): ShimError {
  const code = errnoCode(err);
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new ShimError('SHIM_GONE', 'gone', `shim socket ${socketPath} does not exist`, { cause: err });
  }
  if (code === 'ECONNREFUSED' || code === 'EACCES' || code === 'EPERM') {
    return new ShimError(
      'SHIM_REFUSED',
      'refused',
      `shim socket ${socketPath} refused the connection (${code})`,
      {
        cause: err,
      },
    );
  }
  if (code === 'ECONNRESET' || code === 'EPIPE' || getErrorMessage(err) === 'aborted') {
    return new ShimError(
      'SHIM_PROTOCOL',
      'parse',
      `shim at ${socketPath} closed the connection mid-response`,
      {
        cause: err,
      },
    );
  }
  return new ShimError('SHIM_PROTOCOL', 'parse', `shim at ${socketPath}: ${getErrorMessage(err)}`, {
    cause: err,
  });
}

/**
 * GET `path` from the shim listening on `socketPath`. Resolves only for a 2xx answer whose whole body
 * arrived within the deadline and under the cap; otherwise rejects with a ShimError.
 *
 * Spoken directly on the socket (one request, `Connection: close`) with our own response reader: this is
 * the hot path of every scrape, and node:http's client machinery costs more than the reading itself.
 */
export function shimRequest(
  socketPath: string,
  path: string,
  opts: ShimRequestOptions,
): Promise<ShimResponse> {
  return new Promise<ShimResponse>((resolve, reject) => {
    const usable = usableOrReject(socketPath, reject);
    if (usable) new ShimCall(socketPath, path, opts, usable, resolve, reject);
  });
}

const WRITE_REQUEST = (method: string, path: string): string =>
  `${method} ${path} HTTP/1.1\r\nHost: shim\r\nUser-Agent: kata-monitor\r\nConnection: close\r\n\r\n`;

/**
 * One request of shimRequest. Its event handlers are prototype methods bound per request, not closures made
 * per request: V8 keeps the optimized code of a closure site only while a closure of that site is alive, so
 * closures made per request were compiled again in every scrape after a full GC (util/map-limit.ts). The
 * abort listener is the call itself (handleEvent).
 */
class ShimCall {
  private readonly reader: HttpResponseReader;
  private readonly sock: net.Socket;
  private readonly timer: NodeJS.Timeout;
  private settled = false;
  private readonly onData: (chunk: Buffer) => void;
  private readonly complete: () => void;

  constructor(
    private readonly socketPath: string,
    private readonly path: string,
    private readonly opts: ShimRequestOptions,
    private readonly usable: UsableUnixPath,
    private readonly resolve: (r: ShimResponse) => void,
    private readonly reject: (e: ShimError) => void,
  ) {
    const method = opts.method ?? 'GET';
    this.reader = new HttpResponseReader(opts.maxBytes, method === 'HEAD', opts.store, opts.sizeHint);
    this.onData = this.data.bind(this);
    this.complete = this.end.bind(this);
    const scratch = opts.store?.scratch;
    this.sock = scratch
      ? net.createConnection({
          path: usable.path,
          onread: { buffer: scratch, callback: this.onRead.bind(this) },
        })
      : net.createConnection({ path: usable.path });
    this.timer = setTimeout(onTimeout, opts.timeoutMs, this);
    if (opts.signal) {
      if (opts.signal.aborted) {
        this.handleEvent();
        return;
      }
      opts.signal.addEventListener('abort', this, { once: true });
    }
    this.sock.once('connect', this.connected.bind(this));
    if (!scratch) this.sock.on('data', this.onData);
    this.sock.once('end', this.complete);
    this.sock.once('error', this.failed.bind(this));
    this.sock.once('close', this.closed.bind(this));
  }

  /** The scrape's signal aborted (EventListener interface: the call itself is the listener). */
  handleEvent(): void {
    this.finish(
      new ShimError(
        'SHIM_TIMEOUT',
        'timeout',
        `request to ${this.socketPath}${this.path} cancelled: scrape deadline reached`,
      ),
    );
  }

  timedOut(): void {
    this.finish(
      new ShimError(
        'SHIM_TIMEOUT',
        'timeout',
        `shim at ${this.socketPath} did not answer ${this.path} within ${this.opts.timeoutMs} ms`,
      ),
    );
  }

  private onRead(n: number, buf: Uint8Array): boolean {
    this.onData(Buffer.from(buf.buffer, buf.byteOffset, n));
    return true;
  }

  private data(chunk: Buffer): void {
    if (this.settled) return;
    try {
      if (this.reader.push(chunk)) this.complete();
    } catch (err) {
      this.finish(readerError(err, this.socketPath, this.path, this.opts.maxBytes));
    }
  }

  private connected(): void {
    this.usable.release();
    this.sock.write(WRITE_REQUEST(this.opts.method ?? 'GET', this.path));
  }

  private failed(err: Error): void {
    this.finish(classifyTransportError(err, this.socketPath));
  }

  private closed(): void {
    if (!this.settled) this.complete();
  }

  private end(): void {
    let r: HttpResponse;
    try {
      r = this.reader.end();
    } catch (err) {
      this.finish(readerError(err, this.socketPath, this.path, this.opts.maxBytes));
      return;
    }
    if (r.status < 200 || r.status > 299) {
      const text = r.body.toString('utf8', 0, Math.min(r.body.length, 200)).trim();
      this.finish(
        new ShimError(
          'SHIM_HTTP_STATUS',
          'http_status',
          `shim answered ${this.path} with HTTP ${r.status}: ${text}`,
          {
            status: r.status,
          },
        ),
      );
      return;
    }
    this.finish(null, { status: r.status, headers: r.headers, body: r.body });
  }

  private finish(err: ShimError | null, res?: ShimResponse): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.opts.signal?.removeEventListener('abort', this);
    this.usable.release();
    this.sock.destroy();
    if (err) {
      this.reader.discard();
      this.reject(err);
    } else if (res) this.resolve(res);
  }
}

function onTimeout(call: ShimCall): void {
  call.timedOut();
}

/** A connectable form of the socket path, or undefined after rejecting with the classified error. */
function usableOrReject(socketPath: string, reject: (err: ShimError) => void): UsableUnixPath | undefined {
  try {
    return usableUnixPath(socketPath);
  } catch (err) {
    reject(classifyTransportError(err, socketPath));
    return undefined;
  }
}

function readerError(err: unknown, socketPath: string, path: string, maxBytes: number): ShimError {
  if (err instanceof HttpResponseError) {
    if (err.kind === 'too_large') return tooLarge(socketPath, path, maxBytes);
    if (err.kind === 'truncated') {
      return new ShimError('SHIM_PROTOCOL', 'parse', `shim at ${socketPath} ${err.message} (${path})`, {
        cause: err,
      });
    }
    return new ShimError(
      'SHIM_PROTOCOL',
      'parse',
      `shim at ${socketPath} sent a malformed HTTP response: ${err.message}`,
      {
        cause: err,
      },
    );
  }
  return classifyTransportError(err, socketPath);
}

function tooLarge(socketPath: string, path: string, maxBytes: number): ShimError {
  return new ShimError(
    'SHIM_TOO_LARGE',
    'too_large',
    `shim at ${socketPath} sent more than ${maxBytes} bytes for ${path}`,
  );
}

/**
 * Open a streaming GET to the shim (for the /debug proxy). Resolves with the shim's response once its
 * headers arrive; the caller pipes the body and owns destroying it. `timeoutMs` covers the whole exchange.
 */
export function shimStream(
  socketPath: string,
  path: string,
  opts: { timeoutMs: number; headers?: http.OutgoingHttpHeaders },
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const usable = usableOrReject(socketPath, reject);
    if (!usable) return;
    const req = http.request({
      socketPath: usable.path,
      path,
      method: 'GET',
      agent: false,
      headers: { ...opts.headers, Connection: 'close', Host: 'shim' },
    });
    req.once('socket', sock => sock.once('connect', usable.release));
    req.once('close', usable.release);
    const timer = setTimeout(() => {
      const err = new ShimError(
        'SHIM_TIMEOUT',
        'timeout',
        `shim at ${socketPath} did not finish ${path} within ${opts.timeoutMs} ms`,
      );
      req.destroy(err);
      reject(err);
    }, opts.timeoutMs);
    req.on('error', err => {
      clearTimeout(timer);
      reject(err instanceof ShimError ? err : classifyTransportError(err, socketPath));
    });
    req.on('response', res => {
      res.on('close', () => clearTimeout(timer));
      resolve(res);
    });
    req.end();
  });
}
