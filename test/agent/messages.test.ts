/**
 * The direct StatsContainerResponse decoder gives what the generic protobufjs toObject gives (the reference),
 * except that unset sub-messages are undefined instead of null.
 */
import { agentCodec, type StatsContainerResponse } from '../../src/agent/messages';
import { STATS_RESPONSE } from './helpers';

/** The reference decode with nulls dropped, so both shapes compare field by field. */
function reference(bytes: Buffer): unknown {
  const obj = agentCodec().decode<StatsContainerResponse>('grpc.StatsContainerResponse', bytes);
  return JSON.parse(JSON.stringify(obj, (_k, v: unknown) => (v === null ? undefined : v)));
}

describe('decodeStatsContainerResponse', () => {
  it.each([
    ['every field set', STATS_RESPONSE],
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
    const r = c.decodeStatsContainerResponse(c.encode('grpc.StatsContainerResponse', STATS_RESPONSE));
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
    const bytes = c.encode('grpc.StatsContainerResponse', STATS_RESPONSE);
    const cut = bytes.subarray(0, bytes.length - 3);
    expect(() => c.decode('grpc.StatsContainerResponse', cut)).toThrow();
    expect(() => c.decodeStatsContainerResponse(cut)).toThrow();
  });
});
