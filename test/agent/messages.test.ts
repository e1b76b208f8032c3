/**
 * The direct StatsContainerResponse decoder gives what the generic protobufjs toObject gives (the reference),
 * except that unset sub-messages are undefined instead of null.
 */
import { agentCodec, type StatsContainerResponse } from '../../src/agent/messages';

/** The reference decode with nulls dropped, so both shapes compare field by field. */
function reference(bytes: Buffer): unknown {
  const obj = agentCodec().decode<StatsContainerResponse>('grpc.StatsContainerResponse', bytes);
  return JSON.parse(JSON.stringify(obj, (_k, v: unknown) => (v === null ? undefined : v)));
}

const entry = (op: string, value: number) => ({ major: 254, minor: 0, op, value });

const FULL = {
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
      io_service_bytes_recursive: [entry('Read', 5305277), entry('Write', 1506085), entry('Total', 6811362)],
      io_serviced_recursive: [entry('Read', 7)],
      sectors_recursive: [entry('', 9)],
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

describe('decodeStatsContainerResponse', () => {
  it.each([
    ['every field set', FULL],
    ['an empty message', {}],
    ['cgroup stats without sub-messages', { cgroup_stats: {} }],
    ['cpu usage only', { cgroup_stats: { cpu_stats: { cpu_usage: { total_usage: 5 } } } }],
  ])('matches the generic decode for %s', (_name, value) => {
    const c = agentCodec();
    const bytes = c.encode('grpc.StatsContainerResponse', value);
    const fast = c.decodeStatsContainerResponse(bytes);
    expect(JSON.parse(JSON.stringify(fast))).toEqual(reference(bytes));
  });

  it('gives exact numbers above 2^32 and fills defaults of set messages', () => {
    const c = agentCodec();
    const r = c.decodeStatsContainerResponse(c.encode('grpc.StatsContainerResponse', FULL));
    expect(r.cgroup_stats?.cpu_stats?.cpu_usage?.total_usage).toBe(616309121789);
    expect(r.network_stats[1]).toEqual({
      name: 'eth1',
      rx_bytes: 2 ** 40,
      rx_packets: 0,
      rx_errors: 0,
      rx_dropped: 0,
      tx_bytes: 0,
      tx_packets: 0,
      tx_errors: 0,
      tx_dropped: 0,
    });
    expect(r.cgroup_stats?.blkio_stats?.io_queued_recursive).toEqual([]);
    expect(r.cgroup_stats?.memory_stats?.kernel_usage).toBeUndefined();
  });

  it('rejects truncated wire data like the generic decode', () => {
    const c = agentCodec();
    const bytes = c.encode('grpc.StatsContainerResponse', FULL);
    const cut = bytes.subarray(0, bytes.length - 3);
    expect(() => c.decode('grpc.StatsContainerResponse', cut)).toThrow();
    expect(() => c.decodeStatsContainerResponse(cut)).toThrow();
  });
});
