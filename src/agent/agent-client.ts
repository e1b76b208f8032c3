/**
 * Typed calls to one Kata agent (one sandbox). The connection is dialled on first use, reused across scrapes
 * and re-dialled when it breaks. Calls are queued: at most one is in flight per agent, so a scrape never
 * piles load onto a guest.
 */
import { KataMonitorError } from '../errors';
import { formatAgentUrl, parseAgentUrl, type AgentAddress } from './agent-url';
import { dialAgent, type VsockBinding } from './dialers';
import {
  agentCodec,
  type AgentCodec,
  type GuestDetailsResponse,
  type StatsContainerResponse,
} from './messages';
import { decodeLeanContainerStats, type LeanContainerStats } from './stats-decode';
import { TtrpcClient } from './ttrpc-client';

export const AGENT_SERVICE = 'grpc.AgentService';
export const HEALTH_SERVICE = 'grpc.Health';

export interface AgentCallOptions {
  /** Absolute deadline (Date.now() based). */
  deadline?: number;
  signal?: AbortSignal;
}

export interface AgentClientOptions {
  /** Agent URL (`hvsock://`, `vsock://`, `remote://`, `mock://`) or a parsed address. */
  url: string | AgentAddress;
  /** Connect + handshake deadline, ms (default 2000). */
  dialTimeoutMs?: number;
  /** Per-call deadline when the caller gives none shorter, ms (default 5000). */
  callTimeoutMs?: number;
  /** vsock implementation override; null disables vsock. */
  vsock?: VsockBinding | null;
  codec?: AgentCodec;
}

export class AgentClient {
  readonly address: AgentAddress;
  private readonly dialTimeoutMs: number;
  private readonly callTimeoutMs: number;
  private readonly vsock: VsockBinding | null | undefined;
  private readonly codec: AgentCodec;
  private conn: TtrpcClient | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  /** Calls queued or in flight; 0 means `tail` has settled. */
  private active = 0;
  private readonly onSettled = (): void => {
    this.active--;
  };
  private closed = false;
  /** Number of successful dials (tests, debugging). */
  dials = 0;

  constructor(opts: AgentClientOptions) {
    this.address = typeof opts.url === 'string' ? parseAgentUrl(opts.url) : opts.url;
    this.dialTimeoutMs = opts.dialTimeoutMs ?? 2000;
    this.callTimeoutMs = opts.callTimeoutMs ?? 5000;
    this.vsock = opts.vsock;
    this.codec = opts.codec ?? agentCodec();
  }

  /** `grpc.AgentService/GetMetrics`: the guest's Prometheus text. */
  async getMetrics(opts: AgentCallOptions = {}): Promise<string> {
    const payload = await this.call(AGENT_SERVICE, 'GetMetrics', this.codec.emptyRequest, opts);
    return this.codec.decode<{ metrics: string }>('grpc.Metrics', payload).metrics;
  }

  /** `grpc.AgentService/StatsContainer` for one container id. */
  async statsContainer(containerId: string, opts: AgentCallOptions = {}): Promise<StatsContainerResponse> {
    const payload = await this.call(
      AGENT_SERVICE,
      'StatsContainer',
      this.codec.encodeStatsContainerRequest(containerId),
      opts,
    );
    return this.codec.decodeStatsContainerResponse(payload);
  }

  /**
   * `grpc.AgentService/StatsContainer` for one container id, decoded to the exported subset only
   * (stats-decode.ts): what the collector calls on every scrape.
   */
  containerStats(containerId: string, opts: AgentCallOptions = {}): Promise<LeanContainerStats> {
    return this.call(
      AGENT_SERVICE,
      'StatsContainer',
      this.codec.encodeStatsContainerRequest(containerId),
      opts,
    ).then(decodeLeanContainerStats);
  }

  /** `grpc.AgentService/GetGuestDetails` (asks for nothing optional). */
  async guestDetails(opts: AgentCallOptions = {}): Promise<GuestDetailsResponse> {
    const payload = await this.call(AGENT_SERVICE, 'GetGuestDetails', this.codec.emptyRequest, opts);
    return this.codec.decode<GuestDetailsResponse>('grpc.GuestDetailsResponse', payload);
  }

  /** `grpc.Health/Check`: the ServingStatus number (1 = SERVING). */
  async check(opts: AgentCallOptions = {}): Promise<number> {
    const payload = await this.call(HEALTH_SERVICE, 'Check', this.codec.emptyRequest, opts);
    return this.codec.decode<{ status: number }>('grpc.HealthCheckResponse', payload).status;
  }

  /** A raw unary call, queued behind the agent's other calls. */
  call(service: string, method: string, payload: Uint8Array, opts: AgentCallOptions = {}): Promise<Buffer> {
    let p: Promise<Buffer>;
    const conn = this.conn;
    if (this.active === 0 && conn && !conn.closed && !this.closed) {
      // Fast path: nothing queued and the connection is open, so the call goes out now (no queue hop, no
      // async frames); what runCall checks first is checked here.
      const now = Date.now();
      const deadline = Math.min(opts.deadline ?? Infinity, now + this.callTimeoutMs);
      if (opts.signal?.aborted || deadline <= now) return Promise.reject(this.tooLate(service, method));
      p = conn.call(service, method, payload, { deadline, signal: opts.signal });
    } else {
      const run = (): Promise<Buffer> => this.runCall(service, method, payload, opts);
      p = this.tail.then(run, run);
    }
    this.active++;
    this.tail = p.then(this.onSettled, this.onSettled);
    return p;
  }

  private tooLate(service: string, method: string): KataMonitorError {
    return new KataMonitorError('AGENT_TIMEOUT', `/${service}/${method}: deadline reached before the call`);
  }

  /** Close the connection; later calls fail. */
  async close(): Promise<void> {
    this.closed = true;
    this.conn?.close();
    this.conn = undefined;
    await this.tail;
  }

  private async runCall(
    service: string,
    method: string,
    payload: Uint8Array,
    opts: AgentCallOptions,
  ): Promise<Buffer> {
    if (this.closed) throw new KataMonitorError('AGENT_UNREACHABLE', 'agent client closed');
    const deadline = Math.min(opts.deadline ?? Infinity, Date.now() + this.callTimeoutMs);
    if (opts.signal?.aborted || deadline <= Date.now()) throw this.tooLate(service, method);
    const conn = await this.connection(deadline, opts.signal);
    return conn.call(service, method, payload, { deadline, signal: opts.signal });
  }

  private async connection(deadline: number, signal: AbortSignal | undefined): Promise<TtrpcClient> {
    if (this.conn && !this.conn.closed) return this.conn;
    this.conn = undefined;
    const timeoutMs = Math.max(1, Math.min(this.dialTimeoutMs, deadline - Date.now()));
    const stream = await dialAgent(this.address, { timeoutMs, signal, vsock: this.vsock });
    if (this.closed) {
      stream.destroy();
      throw new KataMonitorError('AGENT_UNREACHABLE', 'agent client closed');
    }
    this.dials++;
    this.conn = new TtrpcClient(stream, { codec: this.codec, name: formatAgentUrl(this.address) });
    return this.conn;
  }
}
