/** Shared fixtures for the agent tests: SimSandbox objects and tiny raw servers on unix sockets. */
import * as net from 'node:net';
import * as path from 'node:path';
import type { SimSandbox } from '../../src/sim/types';
import { usableUnixPath } from '../../src/util/unix-path';

export function hexId(n: number): string {
  return n.toString(16).padStart(2, '0').repeat(32);
}

/** A SimSandbox whose agent listens on `<dir>/clh.sock` (hybrid vsock) or `<dir>/agent.sock` (remote). */
export function simSandbox(
  dir: string,
  index: number,
  opts: { hybrid?: boolean; runtime?: 'go' | 'rs'; sandboxDir?: string } = {},
): SimSandbox {
  const id = hexId(index + 1);
  const hybrid = opts.hybrid ?? true;
  const sock = path.join(dir, hybrid ? `a${index}.hv` : `a${index}.rs`);
  const sandboxDir = opts.sandboxDir ?? path.join(dir, 'sbs', id);
  return {
    id,
    index,
    runtime: opts.runtime ?? 'go',
    hypervisor: hybrid ? 'clh' : 'remote',
    sandboxDir,
    shimSocketPath: path.join(sandboxDir, 'shim-monitor.sock'),
    agentUrl: hybrid ? `hvsock://${sock}:1024` : `remote://${sock}`,
    agentSocketPath: sock,
    containers: [id, hexId(100 + index)],
    vcpus: 2,
    pod: {
      name: `pod-${index}`,
      namespace: 'default',
      uid: `uid-${index}`,
      labels: {},
      runtimeHandler: 'kata',
    },
    pprof: false,
    seed: 1000 + index,
  };
}

/** A raw unix-socket server: `onConn` gets every accepted socket. Stopped with close(). */
export async function rawServer(
  socketPath: string,
  onConn: (s: net.Socket) => void,
): Promise<{ close(): Promise<void>; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer(s => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onConn(s);
  });
  const bind = usableUnixPath(socketPath);
  await new Promise<void>(r => server.listen(bind.path, r));
  bind.release();
  return {
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>(r => server.close(() => r()));
    },
  };
}

/** A blkio entry of a StatsContainerResponse. */
export const statsEntry = (op: string, value: number) => ({ major: 254, minor: 0, op, value });

/** A StatsContainerResponse (as protobufjs objects) with every message the collector reads. */
export const STATS_RESPONSE = {
  cgroup_stats: {
    cpu_stats: {
      cpu_usage: {
        total_usage: 616309121789, // above 2^32: a Long on the wire side
        percpu_usage: [131814561697, 484494560092],
        usage_in_kernelmode: 116867166310,
        usage_in_usermode: 499441955479,
      },
      throttling_data: { periods: 10, throttled_periods: 2, throttled_time: 5_000_000_000 },
    },
    memory_stats: {
      cache: 94797824,
      usage: { usage: 104521728, max_usage: 125423616, failcnt: 0, limit: 536870912 },
      swap_usage: { usage: 1, max_usage: 2, failcnt: 3, limit: 4 },
      use_hierarchy: true,
      stats: { rss: 4096, cache: 8192 },
    },
    pids_stats: { current: 4, limit: 0 },
    blkio_stats: {
      io_service_bytes_recursive: [
        statsEntry('Read', 5305277),
        statsEntry('Write', 1506085),
        statsEntry('Total', 6811362),
      ],
      io_serviced_recursive: [statsEntry('Read', 7)],
      sectors_recursive: [statsEntry('', 9)],
    },
    hugetlb_stats: { '2MB': { usage: 2097152, max_usage: 4194304, failcnt: 1 } },
  },
  network_stats: [
    {
      name: 'eth0',
      rx_bytes: 5877857,
      rx_packets: 7535,
      rx_errors: 0,
      rx_dropped: 1,
      tx_bytes: 3382025,
      tx_packets: 5544,
      tx_errors: 0,
      tx_dropped: 0,
    },
    { name: 'eth1', rx_bytes: 2 ** 40 },
  ],
};
