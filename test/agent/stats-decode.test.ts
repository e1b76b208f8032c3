/**
 * The lean StatsContainerResponse decoder gives, for the fields it reads, exactly what the protobufjs decoder
 * gives (the reference), on real encoded messages: every field set, missing messages, maps, unknown fields of
 * every wire type (a newer agent), packed and unpacked repeated scalars, repeated and duplicated messages,
 * values at and beyond 2^53, invalid UTF-8, random messages; malformed bytes are rejected.
 */
import * as protobuf from 'protobufjs';
import { agentCodec, loadAgentSchema } from '../../src/agent/messages';
import { decodeLeanContainerStats, type LeanContainerStats } from '../../src/agent/stats-decode';
import { isKataMonitorError } from '../../src/errors';
import { STATS_RESPONSE, statsEntry } from './helpers';

type Obj = Record<string, unknown>;

/** The reference: protobufjs decode, projected onto the lean shape. */
function reference(bytes: Uint8Array): LeanContainerStats {
  const t = agentCodec().type('grpc.StatsContainerResponse');
  const m = t.toObject(t.decode(bytes), { longs: Number, arrays: true }) as Obj;
  const cg = m.cgroup_stats as Obj | undefined;
  const usage = (cg?.cpu_stats as Obj | undefined)?.cpu_usage as Obj | undefined;
  const mem = (cg?.memory_stats as Obj | undefined)?.usage as Obj | undefined;
  const pids = cg?.pids_stats as Obj | undefined;
  const blkio = cg?.blkio_stats as Obj | undefined;
  const n = (v: unknown): number => (typeof v === 'number' ? v : 0);
  return {
    cpuTotalNs: usage ? n(usage.total_usage) : undefined,
    memory: mem ? { usage: n(mem.usage), limit: n(mem.limit) } : undefined,
    pids: pids ? n(pids.current) : undefined,
    blkioServiceBytes: ((blkio?.io_service_bytes_recursive as Obj[] | undefined) ?? []).map(e => ({
      op: (e.op as string | undefined) ?? '',
      value: n(e.value),
    })),
    network: ((m.network_stats as Obj[] | undefined) ?? []).map(x => ({
      name: (x.name as string | undefined) ?? '',
      rx_bytes: n(x.rx_bytes),
      tx_bytes: n(x.tx_bytes),
    })),
  };
}

function expectSame(bytes: Uint8Array): LeanContainerStats {
  const lean = decodeLeanContainerStats(bytes);
  expect(lean).toEqual(reference(bytes));
  return lean;
}

const encode = (value: object): Buffer => agentCodec().encode('grpc.StatsContainerResponse', value);
/** The shared full response, with more of what the lean decoder must skip. */
const FULL = {
  ...STATS_RESPONSE,
  cgroup_stats: {
    ...STATS_RESPONSE.cgroup_stats,
    memory_stats: {
      ...STATS_RESPONSE.cgroup_stats.memory_stats,
      usage: { ...STATS_RESPONSE.cgroup_stats.memory_stats.usage, failcnt: 3 },
      kernel_usage: { usage: 5, max_usage: 6, failcnt: 7, limit: 8 },
      stats: { ...STATS_RESPONSE.cgroup_stats.memory_stats.stats, total_inactive_file: 12345 },
    },
    pids_stats: { current: 4, limit: 100 },
    blkio_stats: { ...STATS_RESPONSE.cgroup_stats.blkio_stats, io_queued_recursive: [statsEntry('Read', 1)] },
    hugetlb_stats: {
      ...STATS_RESPONSE.cgroup_stats.hugetlb_stats,
      '1GB': { usage: 0, max_usage: 0, failcnt: 0 },
    },
  },
};

describe('decodeLeanContainerStats', () => {
  it.each([
    ['every field set', FULL],
    ['an empty message', {}],
    ['cgroup stats without sub-messages', { cgroup_stats: {} }],
    ['empty cpu / memory / pids / blkio messages', { cgroup_stats: { cpu_stats: {}, memory_stats: {} } }],
    ['cpu usage with zero total', { cgroup_stats: { cpu_stats: { cpu_usage: { percpu_usage: [1, 2] } } } }],
    ['memory usage without limit', { cgroup_stats: { memory_stats: { usage: { usage: 7 } } } }],
    ['pids without current', { cgroup_stats: { pids_stats: { limit: 9 } } }],
    [
      'maps only',
      { cgroup_stats: { memory_stats: { stats: { a: 1 } }, hugetlb_stats: { x: { usage: 1 } } } },
    ],
    ['network only', { network_stats: [{ name: 'lo' }, {}, { tx_bytes: 3 }] }],
    [
      'blkio other lists only',
      { cgroup_stats: { blkio_stats: { io_merged_recursive: [statsEntry('Read', 1)] } } },
    ],
  ])('matches protobufjs for %s', (_name, value) => {
    expectSame(encode(value));
  });

  it('reads the exported fields of a full message', () => {
    expect(expectSame(encode(FULL))).toEqual({
      cpuTotalNs: 616309121789,
      memory: { usage: 104521728, limit: 536870912 },
      pids: 4,
      blkioServiceBytes: [
        { op: 'Read', value: 5305277 },
        { op: 'Write', value: 1506085 },
        { op: 'Total', value: 6811362 },
      ],
      network: [
        { name: 'eth0', rx_bytes: 5877857, tx_bytes: 3382025 },
        { name: 'eth1', rx_bytes: 2 ** 40, tx_bytes: 0 },
      ],
    });
  });

  it('converts uint64 beyond 2^53 the way protobufjs does', () => {
    const w = protobuf.Writer.create();
    // cgroup_stats { pids_stats { current = 2^64-1 } } and network_stats { rx_bytes = 2^53 + 1 }
    const pids = protobuf.Writer.create().uint32(8).uint64('18446744073709551615').finish();
    const cg = protobuf.Writer.create()
      .uint32((3 << 3) | 2)
      .bytes(pids)
      .finish();
    const net = protobuf.Writer.create().uint32(16).uint64('9007199254740993').finish();
    w.uint32((1 << 3) | 2)
      .bytes(cg)
      .uint32((2 << 3) | 2)
      .bytes(net);
    const lean = expectSame(w.finish());
    expect(lean.pids).toBe(2 ** 64);
  });

  it('skips unknown fields of every wire type at every level (a newer agent)', () => {
    const root = loadAgentSchema();
    const extra = [
      ['x_fixed64', 'fixed64'],
      ['x_fixed32', 'fixed32'],
      ['x_string', 'string'],
      ['x_sint64', 'sint64'],
      ['x_double', 'double'],
    ] as const;
    const types = [
      'grpc.StatsContainerResponse',
      'grpc.CgroupStats',
      'grpc.CpuStats',
      'grpc.CpuUsage',
      'grpc.MemoryStats',
      'grpc.MemoryData',
      'grpc.PidsStats',
      'grpc.BlkioStats',
      'grpc.BlkioStatsEntry',
      'grpc.NetworkStats',
    ];
    const extraValues: Obj = {};
    extra.forEach(([name, type], i) => {
      for (const tn of types) root.lookupType(tn).add(new protobuf.Field(name, 100 + i, type));
      extraValues[name] = type === 'string' ? 'newer agent' : type === 'sint64' ? -5 : 3;
    });
    for (const tn of types) {
      const f = new protobuf.Field('x_packed', 200, 'uint64', 'repeated');
      root.lookupType(tn).add(f);
    }
    extraValues.x_packed = [1, 2 ** 40, 3];
    const withExtra = (o: Obj): Obj => {
      const out: Obj = { ...extraValues };
      for (const [k, v] of Object.entries(o)) {
        if (Array.isArray(v)) out[k] = v.map(e => (typeof e === 'object' ? withExtra(e as Obj) : e));
        else if (v !== null && typeof v === 'object' && k !== 'stats' && k !== 'hugetlb_stats')
          out[k] = withExtra(v as Obj);
        else out[k] = v;
      }
      return out;
    };
    const t = root.lookupType('grpc.StatsContainerResponse');
    const bytes = t.encode(t.fromObject(withExtra(FULL))).finish();
    expect(bytes.length).toBeGreaterThan(encode(FULL).length + 200);
    expect(expectSame(bytes)).toEqual(decodeLeanContainerStats(encode(FULL)));
  });

  it('skips an unknown group field and unpacked repeated scalars', () => {
    const group = protobuf.Writer.create()
      .uint32((50 << 3) | 3)
      .uint32((1 << 3) | 0)
      .uint32(7)
      .uint32((2 << 3) | 2)
      .string('inside')
      .uint32((50 << 3) | 4)
      .finish();
    // cpu_usage with percpu_usage unpacked (one tag per value) and total_usage after it.
    const usage = protobuf.Writer.create();
    for (const v of [11, 12, 13]) usage.uint32((2 << 3) | 0).uint64(v);
    usage.uint32((1 << 3) | 0).uint64(99);
    const cpu = protobuf.Writer.create()
      .uint32((1 << 3) | 2)
      .bytes(usage.finish())
      .finish();
    const cg = protobuf.Writer.create()
      .uint32((1 << 3) | 2)
      .bytes(cpu)
      .finish();
    const msg = Buffer.concat([
      group,
      protobuf.Writer.create()
        .uint32((1 << 3) | 2)
        .bytes(cg)
        .finish(),
    ]);
    expect(expectSame(msg).cpuTotalNs).toBe(99);
  });

  it('merges a repeated sub-message like protobufjs and accumulates repeated entries', () => {
    const a = encode({
      cgroup_stats: {
        cpu_stats: { cpu_usage: { total_usage: 1 } },
        pids_stats: { current: 5 },
        blkio_stats: { io_service_bytes_recursive: [statsEntry('Read', 1)] },
      },
      network_stats: [{ name: 'a', rx_bytes: 1 }],
    });
    const b = encode({
      cgroup_stats: { memory_stats: { usage: { usage: 2, limit: 3 } } },
      network_stats: [{ name: 'b', tx_bytes: 2 }],
    });
    const c = encode({ cgroup_stats: { cpu_stats: {} } });
    expectSame(Buffer.concat([a, b]));
    expectSame(Buffer.concat([b, a]));
    expectSame(Buffer.concat([a, c]));
    // Two cpu_stats inside one cgroup_stats: the second (empty) keeps what the first set.
    const cpu1 = encode({ cgroup_stats: { cpu_stats: { cpu_usage: { total_usage: 4 } } } });
    const inner = (buf: Buffer): Buffer => buf.subarray(2); // strip the cgroup_stats tag + 1-byte length
    const cg = Buffer.concat([inner(cpu1), Buffer.from([(1 << 3) | 2, 0])]);
    const msg = Buffer.concat([Buffer.from([(1 << 3) | 2, cg.length]), cg]);
    expect(expectSame(msg).cpuTotalNs).toBe(4);
    // A later explicit zero clears an earlier value.
    const pids = (v: number): Uint8Array => {
      const p = protobuf.Writer.create().uint32(8).uint64(v).finish();
      const c = protobuf.Writer.create()
        .uint32((3 << 3) | 2)
        .bytes(p)
        .finish();
      return protobuf.Writer.create()
        .uint32((1 << 3) | 2)
        .bytes(c)
        .finish();
    };
    expect(expectSame(Buffer.concat([pids(7), pids(0)])).pids).toBe(0);
    expect(expectSame(Buffer.concat([pids(0), pids(7)])).pids).toBe(7);
  });

  it('rejects invalid UTF-8 like protobufjs and decodes valid multi-byte text alike', () => {
    const net = protobuf.Writer.create()
      .uint32((1 << 3) | 2)
      .bytes(Buffer.from([0x65, 0xff, 0xc3, 0x74, 0xe2, 0x82]))
      .finish();
    const msg = protobuf.Writer.create()
      .uint32((2 << 3) | 2)
      .bytes(net)
      .finish();
    expect(() => reference(msg)).toThrow();
    expect(() => decodeLeanContainerStats(msg)).toThrow(/UTF-8/);
    expectSame(encode({ network_stats: [{ name: 'ünï €😀 \uFFFD' }] }));
  });

  it('accepts a Uint8Array that is not a Buffer', () => {
    const b = encode(FULL);
    const u = new Uint8Array(b.length + 4);
    u.set(b, 4);
    expect(decodeLeanContainerStats(u.subarray(4))).toEqual(reference(b));
  });

  it('matches protobufjs on random messages', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const big = (): number => [0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 + 5, 2 ** 52 + rnd(1000)][rnd(8)]!;
    const maybe = <T>(f: () => T): T | undefined => (rnd(3) === 0 ? undefined : f());
    const ops = ['Read', 'Write', 'Sync', 'Async', 'Total', 'Discard', ''];
    let prev: Buffer | undefined;
    for (let i = 0; i < 300; i++) {
      const value = {
        cgroup_stats: maybe(() => ({
          cpu_stats: maybe(() => ({
            cpu_usage: maybe(() => ({
              total_usage: big(),
              percpu_usage: Array.from({ length: rnd(4) }, big),
            })),
            throttling_data: maybe(() => ({ periods: big() })),
          })),
          memory_stats: maybe(() => ({
            cache: big(),
            usage: maybe(() => ({ usage: big(), max_usage: big(), limit: big() })),
            swap_usage: maybe(() => ({ usage: big() })),
            stats: Object.fromEntries(Array.from({ length: rnd(4) }, (_, k) => [`k${k}`, big()])),
          })),
          pids_stats: maybe(() => ({ current: big(), limit: big() })),
          blkio_stats: maybe(() => ({
            io_service_bytes_recursive: Array.from({ length: rnd(5) }, () => statsEntry(ops[rnd(7)]!, big())),
            io_serviced_recursive: Array.from({ length: rnd(3) }, () => statsEntry(ops[rnd(7)]!, big())),
          })),
          hugetlb_stats: Object.fromEntries(
            Array.from({ length: rnd(3) }, (_, k) => [`h${k}`, { usage: big() }]),
          ),
        })),
        network_stats: Array.from({ length: rnd(3) }, (_, k) => ({
          name: `eth${k}`,
          rx_bytes: big(),
          rx_packets: big(),
          tx_bytes: big(),
        })),
      };
      const bytes = encode(value);
      expectSame(bytes);
      // Two messages back to back decode as one merged message.
      if (prev) expectSame(Buffer.concat([prev, bytes]));
      prev = bytes;
    }
  });

  it.each([
    ['truncated', (b: Buffer) => b.subarray(0, b.length - 3)],
    ['truncated inside a varint', (b: Buffer) => Buffer.concat([b, Buffer.from([0x08, 0xff])])],
    ['a length beyond the message', (b: Buffer) => Buffer.concat([b, Buffer.from([0x12, 0x7f, 0x00])])],
    ['a truncated fixed64', (b: Buffer) => Buffer.concat([b, Buffer.from([(9 << 3) | 1, 1, 2])])],
    ['wire type 7', (b: Buffer) => Buffer.concat([b, Buffer.from([(9 << 3) | 7])])],
  ])('rejects %s wire data like protobufjs', (_name, mangle) => {
    const bad = mangle(encode(FULL));
    expect(() => reference(bad)).toThrow();
    let err: unknown;
    try {
      decodeLeanContainerStats(bad);
    } catch (e) {
      err = e;
    }
    expect(isKataMonitorError(err) && err.code).toBe('AGENT_PROTOCOL');
  });
});
