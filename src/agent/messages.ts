/**
 * Protobuf encode/decode of the ttrpc envelope and the agent messages we use (pure apart from loading the
 * .proto files once). The schema is written from field numbers in kata-protocols.md §3-§4 (proto/ttrpc,
 * proto/agent). Decoded messages are plain objects with numbers (uint64 → number; counters stay exact up to
 * 2^53, far beyond what a guest reaches).
 */
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { PROTO_DIR } from '../util/proto-path';

const PROTO_FILES = ['ttrpc/ttrpc.proto', 'agent/agent.proto', 'agent/health.proto'];

/** Load the ttrpc + agent schema from `protoDir` (default: the repository's proto/). */
export function loadAgentSchema(protoDir: string = PROTO_DIR): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => {
    // google/protobuf/* come from protobufjs' bundled common types.
    if (target.startsWith('google/protobuf/')) return target;
    return path.isAbsolute(target) ? target : path.join(protoDir, target);
  };
  root.loadSync(PROTO_FILES, { keepCase: true });
  root.resolveAll();
  return root;
}

let cached: AgentCodec | undefined;

/** The codec over the repository's proto/ directory, loaded on first use (an immutable schema). */
export function agentCodec(): AgentCodec {
  cached ??= new AgentCodec(loadAgentSchema());
  return cached;
}

const TO_OBJECT: protobuf.IConversionOptions = {
  longs: Number,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  arrays: true,
  objects: true,
};

export interface TtrpcRequestMessage {
  service: string;
  method: string;
  payload: Uint8Array;
  timeout_nano: number;
  metadata: { key: string; value: string }[];
}

export interface RpcStatus {
  code: number;
  message: string;
}

export interface TtrpcResponseMessage {
  status?: RpcStatus;
  payload: Buffer;
}

export interface MemoryData {
  usage: number;
  max_usage: number;
  failcnt: number;
  limit: number;
}

export interface BlkioStatsEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

export interface NetworkStats {
  name: string;
  rx_bytes: number;
  rx_packets: number;
  rx_errors: number;
  rx_dropped: number;
  tx_bytes: number;
  tx_packets: number;
  tx_errors: number;
  tx_dropped: number;
}

export interface StatsContainerResponse {
  cgroup_stats?: {
    cpu_stats?: {
      cpu_usage?: {
        total_usage: number;
        percpu_usage: number[];
        usage_in_kernelmode: number;
        usage_in_usermode: number;
      };
      throttling_data?: { periods: number; throttled_periods: number; throttled_time: number };
    };
    memory_stats?: {
      cache: number;
      usage?: MemoryData;
      swap_usage?: MemoryData;
      kernel_usage?: MemoryData;
      use_hierarchy: boolean;
      stats: Record<string, number>;
    };
    pids_stats?: { current: number; limit: number };
    blkio_stats?: {
      io_service_bytes_recursive: BlkioStatsEntry[];
      io_serviced_recursive: BlkioStatsEntry[];
      [k: string]: BlkioStatsEntry[];
    };
    hugetlb_stats: Record<string, { usage: number; max_usage: number; failcnt: number }>;
  };
  network_stats: NetworkStats[];
}

export interface AgentDetails {
  version: string;
  init_daemon: boolean;
  device_handlers: string[];
  storage_handlers: string[];
  supports_seccomp: boolean;
  extra_features: string[];
}

export interface GuestDetailsResponse {
  mem_block_size_bytes: number;
  agent_details?: AgentDetails;
  support_mem_hotplug_probe: boolean;
}

export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2 } as const;

/** Deep-partial input accepted by the encoders (the simulator builds these). */
export type DeepPartial<T> = T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

/** A decoded protobufjs message: fields on the instance, defaults on its prototype. */
type Decoded = Record<string, unknown>;

/** A uint64 as protobufjs decodes it (a number, or a Long when the `long` package is present) → number. */
function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v !== null && typeof v === 'object' && 'toNumber' in v) return (v as { toNumber(): number }).toNumber();
  return 0;
}

function sub(m: Decoded, field: string): Decoded | undefined {
  const v = m[field];
  return v !== null && typeof v === 'object' ? (v as Decoded) : undefined;
}

function list(m: Decoded, field: string): Decoded[] {
  const v = m[field];
  return Array.isArray(v) ? (v as Decoded[]) : [];
}

function memoryData(m: Decoded | undefined): MemoryData | undefined {
  if (!m) return undefined;
  return { usage: num(m.usage), max_usage: num(m.max_usage), failcnt: num(m.failcnt), limit: num(m.limit) };
}

const BLKIO_FIELDS = [
  'io_service_bytes_recursive',
  'io_serviced_recursive',
  'io_queued_recursive',
  'io_service_time_recursive',
  'io_wait_time_recursive',
  'io_merged_recursive',
  'io_time_recursive',
  'sectors_recursive',
] as const;

/**
 * A decoded grpc.StatsContainerResponse as the plain object `toObject({defaults, longs: Number})` would give,
 * built directly: the generic toObject was most of the agent collector's CPU (one call per container per
 * scrape). Unset sub-messages are undefined (toObject gives null); every consumer reads them with `?.`.
 */
function statsContainerResponse(m: Decoded): StatsContainerResponse {
  const out: StatsContainerResponse = {
    network_stats: list(m, 'network_stats').map(n => ({
      name: typeof n.name === 'string' ? n.name : '',
      rx_bytes: num(n.rx_bytes),
      rx_packets: num(n.rx_packets),
      rx_errors: num(n.rx_errors),
      rx_dropped: num(n.rx_dropped),
      tx_bytes: num(n.tx_bytes),
      tx_packets: num(n.tx_packets),
      tx_errors: num(n.tx_errors),
      tx_dropped: num(n.tx_dropped),
    })),
  };
  const cg = sub(m, 'cgroup_stats');
  if (!cg) return out;
  const hugetlb: Record<string, { usage: number; max_usage: number; failcnt: number }> = {};
  for (const [k, v] of Object.entries(sub(cg, 'hugetlb_stats') ?? {})) {
    const h = (v ?? {}) as Decoded;
    hugetlb[k] = { usage: num(h.usage), max_usage: num(h.max_usage), failcnt: num(h.failcnt) };
  }
  const cgroup: NonNullable<StatsContainerResponse['cgroup_stats']> = { hugetlb_stats: hugetlb };
  const cpu = sub(cg, 'cpu_stats');
  if (cpu) {
    const usage = sub(cpu, 'cpu_usage');
    const thr = sub(cpu, 'throttling_data');
    cgroup.cpu_stats = {};
    if (usage) {
      cgroup.cpu_stats.cpu_usage = {
        total_usage: num(usage.total_usage),
        percpu_usage: (Array.isArray(usage.percpu_usage) ? (usage.percpu_usage as unknown[]) : []).map(num),
        usage_in_kernelmode: num(usage.usage_in_kernelmode),
        usage_in_usermode: num(usage.usage_in_usermode),
      };
    }
    if (thr) {
      cgroup.cpu_stats.throttling_data = {
        periods: num(thr.periods),
        throttled_periods: num(thr.throttled_periods),
        throttled_time: num(thr.throttled_time),
      };
    }
  }
  const mem = sub(cg, 'memory_stats');
  if (mem) {
    const stats: Record<string, number> = {};
    for (const [k, v] of Object.entries(sub(mem, 'stats') ?? {})) stats[k] = num(v);
    cgroup.memory_stats = {
      cache: num(mem.cache),
      use_hierarchy: mem.use_hierarchy === true,
      stats,
    };
    const usage = memoryData(sub(mem, 'usage'));
    const swap = memoryData(sub(mem, 'swap_usage'));
    const kernel = memoryData(sub(mem, 'kernel_usage'));
    if (usage) cgroup.memory_stats.usage = usage;
    if (swap) cgroup.memory_stats.swap_usage = swap;
    if (kernel) cgroup.memory_stats.kernel_usage = kernel;
  }
  const pids = sub(cg, 'pids_stats');
  if (pids) cgroup.pids_stats = { current: num(pids.current), limit: num(pids.limit) };
  const blkio = sub(cg, 'blkio_stats');
  if (blkio) {
    const b = { io_service_bytes_recursive: [], io_serviced_recursive: [] } as NonNullable<
      NonNullable<StatsContainerResponse['cgroup_stats']>['blkio_stats']
    >;
    for (const f of BLKIO_FIELDS) {
      b[f] = list(blkio, f).map(e => ({
        major: num(e.major),
        minor: num(e.minor),
        op: typeof e.op === 'string' ? e.op : '',
        value: num(e.value),
      }));
    }
    cgroup.blkio_stats = b;
  }
  out.cgroup_stats = cgroup;
  return out;
}

export class AgentCodec {
  readonly root: protobuf.Root;
  private readonly types = new Map<string, protobuf.Type>();

  constructor(root: protobuf.Root) {
    this.root = root;
  }

  type(name: string): protobuf.Type {
    let t = this.types.get(name);
    if (!t) {
      t = this.root.lookupType(name);
      this.types.set(name, t);
    }
    return t;
  }

  encode(typeName: string, value: object): Buffer {
    const t = this.type(typeName);
    return Buffer.from(t.encode(t.fromObject(value as Record<string, unknown>)).finish());
  }

  /** Decode; protobufjs errors (truncated/invalid wire data) propagate to the caller. */
  decode<T>(typeName: string, bytes: Uint8Array): T {
    const t = this.type(typeName);
    return t.toObject(t.decode(bytes), TO_OBJECT) as T;
  }

  /** grpc.StatsContainerResponse (see statsContainerResponse); protobufjs wire errors propagate. */
  decodeStatsContainerResponse(bytes: Uint8Array): StatsContainerResponse {
    return statsContainerResponse(
      this.type('grpc.StatsContainerResponse').decode(bytes) as unknown as Decoded,
    );
  }

  /**
   * The envelope of every call: encoded straight from the plain object (no fromObject copy; the fields are
   * already of their wire types) into a Buffer view of the writer's bytes (no second copy). Same bytes as
   * `encode('ttrpc.Request', req)`.
   */
  encodeRequest(req: Partial<TtrpcRequestMessage> & { service: string; method: string }): Buffer {
    const u = this.type('ttrpc.Request').encode(req).finish();
    return Buffer.from(u.buffer, u.byteOffset, u.length);
  }

  /** grpc.StatsContainerRequest for one container id (the per-container call of every scrape). */
  encodeStatsContainerRequest(containerId: string): Buffer {
    const u = this.type('grpc.StatsContainerRequest').encode({ container_id: containerId }).finish();
    return Buffer.from(u.buffer, u.byteOffset, u.length);
  }

  /** An empty request message (GetMetrics, GetGuestDetails, Check ask for nothing): zero bytes. */
  readonly emptyRequest: Buffer = Buffer.alloc(0);
  decodeRequest(bytes: Uint8Array): TtrpcRequestMessage {
    return this.decode<TtrpcRequestMessage>('ttrpc.Request', bytes);
  }
  encodeResponse(res: { status?: RpcStatus; payload?: Uint8Array }): Buffer {
    return this.encode('ttrpc.Response', res);
  }
  decodeResponse(bytes: Uint8Array): TtrpcResponseMessage {
    const t = this.type('ttrpc.Response');
    const msg = t.decode(bytes) as unknown as {
      status?: { code?: number; message?: string };
      payload?: Uint8Array;
    };
    const out: TtrpcResponseMessage = {
      // A view, not a copy: the frame's bytes belong to this response alone (FrameSplitter hands out owned buffers).
      payload: Buffer.isBuffer(msg.payload)
        ? msg.payload
        : msg.payload
          ? Buffer.from(msg.payload)
          : Buffer.alloc(0),
    };
    if (msg.status) out.status = { code: msg.status.code ?? 0, message: msg.status.message ?? '' };
    return out;
  }
}
