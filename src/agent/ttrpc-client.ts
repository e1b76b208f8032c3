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
  /** Absolute deadline (Date.now() based), Infinity for none. */
  deadline: number;
  /** What the caller granted, ms (for the timeout message). */
  grantedMs: number;
  signal: AbortSignal | undefined;
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
  /**
   * One timer per connection, armed for the earliest pending deadline (not one per call): a scrape's calls
   * share their deadline, so it is armed about once per collection instead of once per call.
   */
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  /**
   * The abort signal this connection listens to: kept from call to call while callers pass the same one (a
   * collection's), moved when another comes, removed on close. Not one add/remove per call.
   */
  private boundSignal: AbortSignal | undefined;
  private readonly onSignalAbort = (): void => this.abortSignalled();

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
    const metadata = opts.metadata
      ? Object.entries(opts.metadata).map(([key, value]) => ({ key, value }))
      : [];
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
    const signal = opts.signal;
    const p = new Promise<Buffer>((resolve, reject) => {
      this.pending.set(streamId, {
        method: full,
        resolve,
        reject,
        deadline,
        grantedMs: deadline - now,
        signal,
      });
    });
    if (Number.isFinite(deadline)) this.armTimer(deadline, now);
    if (signal && signal !== this.boundSignal) this.bindSignal(signal);
    this.stream.write(frame);
    return p;
  }

  private armTimer(deadline: number, now: number): void {
    if (this.timer && this.timerAt <= deadline) {
      this.timer.ref();
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = deadline;
    this.timer = setTimeout(() => this.onTimer(), Math.max(1, deadline - now));
  }

  /** Fail every call whose deadline passed; re-arm for the next one. */
  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const [id, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(id);
        p.reject(
          new KataMonitorError(
            'AGENT_TIMEOUT',
            `${this.name}${p.method}: no answer within ${p.grantedMs} ms`,
          ),
        );
      } else if (p.deadline < next) {
        next = p.deadline;
      }
    }
    if (Number.isFinite(next)) this.armTimer(next, now);
  }

  /** Nothing pending: the timer must not keep the process alive (it stays armed for the next call). */
  private settle(streamId: number): Pending | undefined {
    const p = this.pending.get(streamId);
    if (!p) return undefined;
    this.pending.delete(streamId);
    if (this.pending.size === 0) this.timer?.unref();
    return p;
  }

  private bindSignal(signal: AbortSignal): void {
    this.boundSignal?.removeEventListener('abort', this.onSignalAbort);
    this.boundSignal = signal;
    signal.addEventListener('abort', this.onSignalAbort, { once: true });
  }

  /** The bound signal aborted: fail the calls made with it. */
  private abortSignalled(): void {
    const signal = this.boundSignal;
    this.boundSignal = undefined;
    for (const [id, p] of this.pending) {
      if (p.signal !== signal) continue;
      this.pending.delete(id);
      p.reject(
        new KataMonitorError('AGENT_TIMEOUT', `${this.name}${p.method}: cancelled (deadline reached)`),
      );
    }
    if (this.pending.size === 0) this.timer?.unref();
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
      const p = this.settle(f.streamId);
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
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    this.boundSignal?.removeEventListener('abort', this.onSignalAbort);
    this.boundSignal = undefined;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(err);
    this.stream.destroy();
    for (const cb of this.closeListeners.splice(0)) cb(err);
  }
}
