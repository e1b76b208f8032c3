/**
 * Simulated `/proc/<pid>` statistics as Kata exports them (pure): the `*_threads`, `*_fds`, `*_proc_stat`,
 * `*_proc_status` and `*_io_stat` families, in the Go (bytes, 19 status items) or Rust (kB, 18 items)
 * vocabulary, plus the netdev vocabulary shared by hypervisor and guest.
 */
import { type Labels, type ScalarSeries, type SimFamily, type Val, Values } from './metrics-model';

/** `proc_status` items, Go procfs order (19). Rust procfs has the same without `vmpmd`. */
export const PROC_STATUS_ITEMS_GO = [
  'vmpeak',
  'vmsize',
  'vmlck',
  'vmpin',
  'vmhwm',
  'vmrss',
  'rssanon',
  'rssfile',
  'rssshmem',
  'vmdata',
  'vmstk',
  'vmexe',
  'vmlib',
  'vmpte',
  'vmpmd',
  'vmswap',
  'hugetlbpages',
  'voluntary_ctxt_switches',
  'nonvoluntary_ctxt_switches',
] as const;
export const PROC_STATUS_ITEMS_RUST = PROC_STATUS_ITEMS_GO.filter(i => i !== 'vmpmd');

export const IO_STAT_ITEMS_GO = [
  'rchar',
  'wchar',
  'syscr',
  'syscw',
  'readbytes',
  'writebytes',
  'cancelledwritebytes',
] as const;
export const IO_STAT_ITEMS_RUST = [
  'rchar',
  'wchar',
  'syscr',
  'syscw',
  'read_bytes',
  'write_bytes',
  'cancelled_write_bytes',
] as const;

export const PROC_STAT_ITEMS = ['utime', 'stime', 'cutime', 'cstime'] as const;

export const NETDEV_ITEMS = [
  'recv_bytes',
  'recv_packets',
  'recv_errs',
  'recv_drop',
  'recv_compressed',
  'recv_fifo',
  'recv_frame',
  'recv_multicast',
  'sent_bytes',
  'sent_packets',
  'sent_errs',
  'sent_drop',
  'sent_colls',
  'sent_carrier',
  'sent_compressed',
  'sent_fifo',
] as const;

/** Rough shape of a process. */
export interface ProcProfile {
  vszBytes: number;
  rssBytes: number;
  threads: number;
  fds: number;
  /** CPU clock ticks (USER_HZ) gained per simulator tick. */
  ticksPerTick: number;
  /** Bytes read/written per simulator tick. */
  ioPerTick: number;
}

export interface ProcFamilyNames {
  threads?: { name: string; help: string };
  fds?: { name: string; help: string };
  procStat: { name: string; help: string };
  procStatus: { name: string; help: string };
  ioStat: { name: string; help: string };
}

function items(pairs: Array<[string, Val]>): ScalarSeries[] {
  return pairs.map(([item, value]) => ({ labels: [['item', item]] as Labels, value }));
}

const page = (n: number): number => Math.round(n / 4096) * 4096;

/** The five process families for one process. `rust` = kB and Rust item spellings. */
export function procFamilies(
  v: Values,
  key: string,
  p: ProcProfile,
  names: ProcFamilyNames,
  flavour: 'go' | 'rust',
): SimFamily[] {
  const rss = v.gauge(`${key}/rss`, p.rssBytes * 0.9, p.rssBytes * 1.1);
  const vsz = v.fixed(`${key}/vsz`, p.vszBytes * 0.95, p.vszBytes * 1.05);
  const status: Record<string, Val> = {
    vmpeak: page(vsz * 1.04),
    vmsize: page(vsz),
    vmlck: 0,
    vmpin: 0,
    vmhwm: t => page(rss(t) * 1.12),
    vmrss: t => page(rss(t)),
    rssanon: t => page(rss(t) * 0.72),
    rssfile: t => page(rss(t) * 0.27),
    rssshmem: t => page(rss(t) * 0.01),
    vmdata: page(vsz * 0.38),
    vmstk: 135168,
    vmexe: page(v.fixed(`${key}/exe`, 4e6, 4e7)),
    vmlib: page(v.fixed(`${key}/lib`, 2e6, 9e6)),
    vmpte: page(v.fixed(`${key}/pte`, 1e5, 9e5)),
    vmpmd: 12288,
    vmswap: 0,
    hugetlbpages: 0,
    voluntary_ctxt_switches: v.counter(`${key}/vcs`, 5e4, 40),
    nonvoluntary_ctxt_switches: v.counter(`${key}/nvcs`, 2e3, 3),
  };
  const statusItems = flavour === 'go' ? PROC_STATUS_ITEMS_GO : PROC_STATUS_ITEMS_RUST;
  const perKb = (item: string, val: Val): Val => {
    if (flavour !== 'rust' || item === 'voluntary_ctxt_switches' || item === 'nonvoluntary_ctxt_switches')
      return val;
    return typeof val === 'number' ? Math.floor(val / 1024) : t => Math.floor(val(t) / 1024);
  };
  const utime = v.counter(`${key}/utime`, 3000, p.ticksPerTick * 0.7);
  const stime = v.counter(`${key}/stime`, 1500, p.ticksPerTick * 0.3);
  const rchar = v.counter(`${key}/rchar`, 5e7, p.ioPerTick);
  const wchar = v.counter(`${key}/wchar`, 2e7, p.ioPerTick * 0.6);
  const io: Val[] = [
    rchar,
    wchar,
    v.counter(`${key}/syscr`, 2e5, p.ioPerTick / 2000),
    v.counter(`${key}/syscw`, 1e5, p.ioPerTick / 3000),
    t => Math.floor(rchar(t) / 50 / 4096) * 4096,
    t => Math.floor(wchar(t) / 10 / 4096) * 4096,
    0,
  ];
  const ioItems = flavour === 'go' ? IO_STAT_ITEMS_GO : IO_STAT_ITEMS_RUST;
  const out: SimFamily[] = [];
  if (names.threads) {
    out.push({
      name: names.threads.name,
      help: names.threads.help,
      type: 'gauge',
      series: [{ labels: [], value: v.gauge(`${key}/threads`, p.threads, p.threads + 2) }],
    });
  }
  if (names.fds) {
    out.push({
      name: names.fds.name,
      help: names.fds.help,
      type: 'gauge',
      series: [{ labels: [], value: v.gauge(`${key}/fds`, p.fds, p.fds + 3) }],
    });
  }
  out.push(
    {
      name: names.procStat.name,
      help: names.procStat.help,
      type: 'gauge',
      series: items([
        ['utime', utime],
        ['stime', stime],
        ['cutime', 0],
        ['cstime', 0],
      ]),
    },
    {
      name: names.procStatus.name,
      help: names.procStatus.help,
      type: 'gauge',
      series: items(statusItems.map(i => [i, perKb(i, status[i] ?? 0)])),
    },
    {
      name: names.ioStat.name,
      help: names.ioStat.help,
      type: 'gauge',
      series: items(ioItems.map((i, n) => [i, io[n] ?? 0])),
    },
  );
  return out;
}

/** Values of one network interface's `/proc/net/dev` items; `rate` ≈ bytes per tick received. */
export function netdevValues(v: Values, key: string, iface: string, rate: number): Record<string, Val> {
  const rxBytes = v.counter(`${key}/${iface}/rxb`, rate * 500, rate);
  const txBytes = v.counter(`${key}/${iface}/txb`, rate * 300, rate * 0.6);
  return {
    recv_bytes: rxBytes,
    recv_packets: t => Math.floor(rxBytes(t) / 780),
    recv_errs: 0,
    recv_drop: iface === 'lo' ? 0 : v.fixed(`${key}/${iface}/rxd`, 0, 4),
    recv_compressed: 0,
    recv_fifo: 0,
    recv_frame: 0,
    recv_multicast: 0,
    sent_bytes: txBytes,
    sent_packets: t => Math.floor(txBytes(t) / 610),
    sent_errs: 0,
    sent_drop: 0,
    sent_colls: 0,
    sent_carrier: 0,
    sent_compressed: 0,
    sent_fifo: 0,
  };
}

/** `interface`,`item` series for one network interface; `rate` ≈ bytes per tick received. */
export function netdevSeries(v: Values, key: string, iface: string, rate: number): ScalarSeries[] {
  const vals = netdevValues(v, key, iface, rate);
  return NETDEV_ITEMS.map(item => ({
    labels: [
      ['interface', iface],
      ['item', item],
    ] as Labels,
    value: vals[item] ?? 0,
  }));
}
