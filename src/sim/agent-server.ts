/**
 * A simulated Kata agent: a ttrpc server on a sandbox's agent socket. For `hvsock://` sandboxes it first
 * plays the hypervisor's hybrid-vsock muxer (`CONNECT <port>\n` → `OK <n>\n`); for `remote://` / `mock://`
 * it speaks ttrpc right away. Serves GetMetrics, StatsContainer, GetGuestDetails and Health/Check; faults
 * come from `sb.agentFault`, read on every request so they can change while the server runs.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { usableUnixPath } from '../util/unix-path';
import * as path from 'node:path';
import {
  agentCodec,
  type AgentCodec,
  type DeepPartial,
  type StatsContainerResponse,
} from '../agent/messages';
import { FrameSplitter, MessageType, TTRPC_MAX_PAYLOAD, encodeFrame } from '../agent/ttrpc-codec';
import { GrpcCode } from '../agent/ttrpc-client';
import type { GuestContainerStats } from './metrics-go';
import type { SimAgentHandle, SimSandbox } from './types';

/** Where the served data comes from (defaults: src/sim/metrics-go.ts). */
export interface AgentDataProviders {
  /** Prometheus text of the agent's and the guest's families for the tick-th GetMetrics call. */
  metrics(sb: SimSandbox, tick: number): string;
  /** StatsContainer answer for a known container, as a (deep partial) grpc.StatsContainerResponse object. */
  containerStats(
    sb: SimSandbox,
    containerId: string,
    tick: number,
  ): DeepPartial<StatsContainerResponse> | undefined;
  /** The tick a request is answered at (default: the number of GetMetrics calls answered before). */
  tick?(): number;
}

export interface SimAgentServer extends SimAgentHandle {
  readonly socketPath: string;
  /** Requests received for `Service/Method` (e.g. `grpc.AgentService/GetMetrics`), answered or not. */
  calls(method: string): number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Drop every open connection (the listener keeps running). */
  dropConnections(): void;
}

export const SIM_AGENT_VERSION = '3.2.0-sim';

/** ttrpc message names the agent policy speaks of (`<X>Request is blocked by policy`). */
const REQUEST_NAMES: Record<string, string> = {
  GetMetrics: 'GetMetricsRequest',
  StatsContainer: 'StatsContainerRequest',
  GetGuestDetails: 'GuestDetailsRequest',
  Check: 'CheckRequest',
  Version: 'CheckRequest',
};

/** Start the simulated agent of `sb` on `sb.agentSocketPath` (matches SimHooks.startAgent). */
export async function startAgentServer(sb: SimSandbox): Promise<SimAgentServer> {
  const m = await import('./metrics-go');
  return startAgentServerWith(sb, {
    metrics: (s, tick) => m.agentExposition(s, tick),
    containerStats: (s, id, tick) => {
      const st = m.guestContainerStats(s, id, tick);
      return st ? toStatsContainerResponse(st) : undefined;
    },
  });
}

/** The simulator's container numbers as a grpc.StatsContainerResponse object (the Rust agent never fills network_stats; we do, like the Go agent of old). */
export function toStatsContainerResponse(st: GuestContainerStats): DeepPartial<StatsContainerResponse> {
  return {
    cgroup_stats: {
      cpu_stats: {
        cpu_usage: {
          total_usage: st.cpuUsageNs,
          percpu_usage: st.percpuNs,
          usage_in_kernelmode: st.cpuKernelNs,
          usage_in_usermode: st.cpuUserNs,
        },
      },
      memory_stats: {
        cache: st.memoryCacheBytes,
        usage: { usage: st.memoryUsageBytes, max_usage: st.memoryMaxUsageBytes, limit: st.memoryLimitBytes },
        use_hierarchy: true,
      },
      pids_stats: { current: st.pids, limit: st.pidsLimit },
      blkio_stats: { io_service_bytes_recursive: st.blkio.map(b => ({ ...b })) },
    },
    network_stats: st.network.map(n => ({
      name: n.name,
      rx_bytes: n.rxBytes,
      rx_packets: n.rxPackets,
      rx_errors: n.rxErrors,
      rx_dropped: n.rxDropped,
      tx_bytes: n.txBytes,
      tx_packets: n.txPackets,
      tx_errors: n.txErrors,
      tx_dropped: n.txDropped,
    })),
  };
}

/** Same as startAgentServer with explicit data providers. */
export async function startAgentServerWith(
  sb: SimSandbox,
  data: AgentDataProviders,
  codec: AgentCodec = agentCodec(),
): Promise<SimAgentServer> {
  const socketPath = sb.agentSocketPath;
  if (!socketPath)
    throw new Error(`sandbox ${sb.id}: no agent socket path (vsock:// agents cannot be simulated)`);
  const hybrid = sb.agentUrl.startsWith('hvsock://');
  fs.mkdirSync(path.dirname(socketPath), { recursive: true });
  fs.rmSync(socketPath, { force: true });

  const counts = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let metricsTick = 0;
  let muxPort = 1073741824;

  const respond = (
    sock: net.Socket,
    streamId: number,
    status: { code: number; message: string } | null,
    payload?: Uint8Array,
  ): void => {
    const body = codec.encodeResponse({ ...(status ? { status } : {}), ...(payload ? { payload } : {}) });
    if (!sock.destroyed) sock.write(encodeFrame(streamId, MessageType.Response, 0, body));
  };

  const handle = (sock: net.Socket, streamId: number, payload: Buffer): void => {
    let req;
    try {
      req = codec.decodeRequest(payload);
    } catch {
      respond(sock, streamId, { code: GrpcCode.INVALID_ARGUMENT, message: 'undecodable ttrpc request' });
      return;
    }
    const full = `${req.service}/${req.method}`;
    counts.set(full, (counts.get(full) ?? 0) + 1);
    const fault = sb.agentFault;
    switch (fault?.kind) {
      case 'hang':
        return;
      case 'deny':
        respond(sock, streamId, {
          code: GrpcCode.PERMISSION_DENIED,
          message: `${REQUEST_NAMES[req.method] ?? req.method + 'Request'} is blocked by policy: denied by the simulated policy`,
        });
        return;
      case 'unimplemented':
        respond(sock, streamId, { code: GrpcCode.UNIMPLEMENTED, message: `${req.method} method` });
        return;
      case 'badframe': {
        // A header with a message type ttrpc does not have.
        const bad = Buffer.from([0, 0, 0, 2, 0, 0, 0, 0, 0x7f, 0, 0xde, 0xad]);
        bad.writeUInt32BE(streamId, 4);
        sock.write(bad);
        return;
      }
      case 'oversize': {
        const h = Buffer.alloc(10);
        h.writeUInt32BE(TTRPC_MAX_PAYLOAD + 1, 0);
        h.writeUInt32BE(streamId, 4);
        h.writeUInt8(MessageType.Response, 8);
        sock.write(h);
        return;
      }
      default:
        break;
    }
    try {
      if (req.service === 'grpc.AgentService') {
        switch (req.method) {
          case 'GetMetrics': {
            const text = data.metrics(sb, data.tick ? data.tick() : metricsTick++);
            respond(sock, streamId, null, codec.encode('grpc.Metrics', { metrics: text }));
            return;
          }
          case 'StatsContainer': {
            const { container_id: id } = codec.decode<{ container_id: string }>(
              'grpc.StatsContainerRequest',
              req.payload,
            );
            const stats = sb.containers.includes(id)
              ? data.containerStats(sb, id, data.tick ? data.tick() : metricsTick)
              : undefined;
            if (!stats) {
              respond(sock, streamId, { code: GrpcCode.NOT_FOUND, message: `container ${id} not found` });
              return;
            }
            respond(sock, streamId, null, codec.encode('grpc.StatsContainerResponse', stats));
            return;
          }
          case 'GetGuestDetails': {
            respond(
              sock,
              streamId,
              null,
              codec.encode('grpc.GuestDetailsResponse', {
                mem_block_size_bytes: 128 * 1024 * 1024,
                agent_details: {
                  version: SIM_AGENT_VERSION,
                  init_daemon: true,
                  storage_handlers: ['blk', '9p', 'virtio-fs', 'ephemeral', 'local'],
                  supports_seccomp: true,
                },
              }),
            );
            return;
          }
          default:
            respond(sock, streamId, { code: GrpcCode.UNIMPLEMENTED, message: `${req.method} method` });
            return;
        }
      }
      if (req.service === 'grpc.Health') {
        if (req.method === 'Check') {
          respond(sock, streamId, null, codec.encode('grpc.HealthCheckResponse', { status: 1 }));
          return;
        }
        if (req.method === 'Version') {
          respond(
            sock,
            streamId,
            null,
            codec.encode('grpc.VersionCheckResponse', {
              grpc_version: '0.9.0',
              agent_version: SIM_AGENT_VERSION,
            }),
          );
          return;
        }
        respond(sock, streamId, { code: GrpcCode.UNIMPLEMENTED, message: `${req.method} method` });
        return;
      }
      respond(sock, streamId, {
        code: GrpcCode.INVALID_ARGUMENT,
        message: `${req.service} service does not exist`,
      });
    } catch (err) {
      respond(sock, streamId, { code: GrpcCode.INTERNAL, message: String(err) });
    }
  };

  const speakTtrpc = (sock: net.Socket, first?: Buffer): void => {
    const splitter = new FrameSplitter();
    const onChunk = (chunk: Buffer): void => {
      let frames;
      try {
        frames = splitter.push(chunk);
      } catch {
        sock.destroy();
        return;
      }
      for (const f of frames) {
        if (f.type === MessageType.Request) handle(sock, f.streamId, f.payload);
      }
    };
    sock.on('data', onChunk);
    if (first && first.length > 0) onChunk(first);
  };

  const server = net.createServer(sock => {
    accepted++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    if (!hybrid) {
      speakTtrpc(sock);
      return;
    }
    let line = Buffer.alloc(0);
    const onLine = (chunk: Buffer): void => {
      line = Buffer.concat([line, chunk]);
      const nl = line.indexOf(0x0a);
      if (nl < 0) {
        if (line.length > 256) sock.destroy();
        return;
      }
      sock.removeListener('data', onLine);
      const text = line.subarray(0, nl).toString('latin1').trim();
      const m = /^connect\s+(\d+)$/i.exec(text);
      if (!m) {
        sock.destroy();
        return;
      }
      sock.write(`OK ${muxPort++}\n`);
      speakTtrpc(sock, line.subarray(nl + 1));
    };
    sock.on('data', onLine);
  });

  const bindPath = usableUnixPath(socketPath);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(bindPath.path, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
  } finally {
    bindPath.release();
  }

  return {
    socketPath,
    calls: method => counts.get(method.replace(/^\//, '')) ?? 0,
    get connections() {
      return accepted;
    },
    dropConnections: () => {
      for (const s of sockets) s.destroy();
    },
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>(resolve => server.close(() => resolve()));
      fs.rmSync(socketPath, { force: true });
    },
  };
}
