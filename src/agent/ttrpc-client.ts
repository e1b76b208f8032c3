/**
 * A unary ttrpc client over any Duplex (unix socket, hybrid-vsock socket after its handshake, a vsock bridge).
 * Stream ids are odd and increase by 2 from 1; many calls are multiplexed on one connection and answers are
 * matched by stream id in whatever order they come. Facts: kata-protocols.md §4.
 */
import type { Duplex } from 'node:stream';
import { KataMonitorError, getErrorMessage } from '../errors';
import { agentCodec, type AgentCodec } from './messages';
import { FrameSplitter, MessageType, TtrpcFrameError, encodeFrame } from './ttrpc-codec';

/** gRPC status codes used by ttrpc (§4.5). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** The server answered with a non-OK status; `grpcCode` is its gRPC status code. */
export class TtrpcStatusError extends KataMonitorError {
  readonly grpcCode: number;
  readonly grpcMessage: string;
  readonly method: string;
  constructor(method: string, grpcCode: number, grpcMessage: string) {
    super('AGENT_STATUS', `${method}: ttrpc status ${grpcCode}: ${grpcMessage}`);
    this.name = 'TtrpcStatusError';
    this.grpcCode = grpcCode;
    this.grpcMessage = grpcMessage;
    this.method = method;
  }
}

export interface TtrpcCallOptions {
  /** Per-call deadline in ms from now; the call fails locally with AGENT_TIMEOUT when it passes. */
  timeoutMs?: number;
  /** Absolute deadline (Date.now() based); the earlier of this and timeoutMs wins. */
  deadline?: number;
  /** Cancels the call locally (AGENT_TIMEOUT). */
  signal?: AbortSignal;
  metadata?: Record<string, string>;
}

interface Pending {
  method: string;
  resolve(payload: Buffer): void;
  reject(err: Error): void;
}

export interface TtrpcClientOptions {
  codec?: AgentCodec;
  /** A short name for errors (e.g. the agent URL). */
  name?: string;
}

export class TtrpcClient {
  private readonly stream: Duplex;
  private readonly codec: AgentCodec;
  private readonly name: string;
  private readonly splitter = new FrameSplitter();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedError: KataMonitorError | undefined;
  private readonly closeListeners: ((err: KataMonitorError) => void)[] = [];

  constructor(stream: Duplex, opts: TtrpcClientOptions = {}) {
    this.stream = stream;
    this.codec = opts.codec ?? agentCodec();
    this.name = opts.name ?? 'agent';
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', err =>
      this.fail(
        new KataMonitorError('AGENT_UNREACHABLE', `${this.name}: connection error: ${getErrorMessage(err)}`, {
          cause: err,
        }),
      ),
    );
    stream.on('end', () => this.onEnd());
    stream.on('close', () =>
      this.fail(new KataMonitorError('AGENT_UNREACHABLE', `${this.name}: connection closed`)),
    );
    stream.resume();
  }

  /** True once the connection broke or close() was called; a closed client fails every new call. */
  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** Calls in flight. */
  get inFlight(): number {
    return this.pending.size;
  }

  onClose(cb: (err: KataMonitorError) => void): void {
    if (this.closedError) cb(this.closedError);
    else this.closeListeners.push(cb);
  }

  /** One unary call; resolves with the response payload bytes. */
  call(service: string, method: string, payload: Uint8Array, opts: TtrpcCallOptions = {}): Promise<Buffer> {
    const full = `/${service}/${method}`;
    if (this.closedError) return Promise.reject(this.closedError);
    const now = Date.now();
    let deadline = opts.deadline ?? Infinity;
    if (opts.timeoutMs !== undefined) deadline = Math.min(deadline, now + opts.timeoutMs);
    if (opts.signal?.aborted || deadline <= now) {
      return Promise.reject(
        new KataMonitorError('AGENT_TIMEOUT', `${this.name}${full}: deadline already passed`),
      );
    }
    const streamId = this.nextId;
    if (streamId > 0xffffffff) {
      this.fail(new KataMonitorError('AGENT_PROTOCOL', `${this.name}: stream ids exhausted`));
      return Promise.reject(this.closedError!);
    }
    this.nextId += 2;
    const metadata = Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value }));
    let frame: Buffer;
    try {
      frame = encodeFrame(
        streamId,
        MessageType.Request,
        0,
        this.codec.encodeRequest({
          service,
          method,
          payload,
          timeout_nano: Number.isFinite(deadline) ? Math.max(1, deadline - now) * 1e6 : 0,
          metadata,
        }),
      );
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<Buffer>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        if (timer) clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        this.pending.delete(streamId);
      };
      const onAbort = (): void => {
        cleanup();
        reject(new KataMonitorError('AGENT_TIMEOUT', `${this.name}${full}: cancelled (deadline reached)`));
      };
      this.pending.set(streamId, {
        method: full,
        resolve: p => {
          cleanup();
          resolve(p);
        },
        reject: e => {
          cleanup();
          reject(e);
        },
      });
      if (Number.isFinite(deadline)) {
        timer = setTimeout(() => {
          cleanup();
          reject(
            new KataMonitorError(
              'AGENT_TIMEOUT',
              `${this.name}${full}: no answer within ${deadline - now} ms`,
            ),
          );
        }, deadline - now);
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.stream.write(frame);
    });
  }

  /** Close the connection; pending calls fail with AGENT_UNREACHABLE. */
  close(): void {
    this.fail(new KataMonitorError('AGENT_UNREACHABLE', `${this.name}: connection closed by the client`));
  }

  private onData(chunk: Buffer): void {
    if (this.closedError) return;
    let frames;
    try {
      frames = this.splitter.push(chunk);
    } catch (err) {
      const e = err as TtrpcFrameError;
      this.fail(new KataMonitorError('AGENT_PROTOCOL', `${this.name}: ${e.message}`, { cause: err }));
      return;
    }
    for (const f of frames) {
      if (f.type !== MessageType.Response) continue; // no streaming calls: Data frames are ignored
      const p = this.pending.get(f.streamId);
      if (!p) continue; // late answer to a call that already timed out
      let res;
      try {
        res = this.codec.decodeResponse(f.payload);
      } catch (err) {
        p.reject(
          new KataMonitorError('AGENT_PROTOCOL', `${this.name}${p.method}: undecodable response`, {
            cause: err,
          }),
        );
        continue;
      }
      if (res.status && res.status.code !== GrpcCode.OK) {
        p.reject(new TtrpcStatusError(p.method, res.status.code, res.status.message));
      } else {
        p.resolve(res.payload);
      }
    }
  }

  private onEnd(): void {
    let err: KataMonitorError;
    try {
      this.splitter.end();
      err = new KataMonitorError('AGENT_UNREACHABLE', `${this.name}: connection closed by the agent`);
    } catch (e) {
      err = new KataMonitorError('AGENT_PROTOCOL', `${this.name}: ${getErrorMessage(e)}`, { cause: e });
    }
    this.fail(err);
  }

  private fail(err: KataMonitorError): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of [...this.pending.values()]) p.reject(err);
    this.pending.clear();
    this.stream.destroy();
    for (const cb of this.closeListeners.splice(0)) cb(err);
  }
}
