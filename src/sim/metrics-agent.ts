/**
 * The Rust kata-agent's registry (`kata_agent_*` + `kata_guest_*`), simulated (pure). The simulated agent serves
 * `agentExposition()` over ttrpc GetMetrics; the simulated shims embed the same families in their bodies, and
 * `guestContainerStats()` gives StatsContainer numbers consistent with them.
 */
import {
  type BodyTemplate,
  type EncoderStyle,
  type Fn,
  type Labels,
  type ScalarSeries,
  type SimFamily,
  type Val,
  TICK,
  Values,
  at,
  compileRegistry,
} from './metrics-model';
import { NETDEV_ITEMS, netdevSeries, netdevValues, procFamilies } from './procfs-model';
import type { SimSandbox } from './types';

/** The sandbox fields the metric generators read. */
export type MetricsSandbox = Pick<
  SimSandbox,
  'id' | 'seed' | 'vcpus' | 'containers' | 'hypervisor' | 'runtime'
>;

export const CPU_TIME_ITEMS = [
  'user',
  'nice',
  'system',
  'idle',
  'iowait',
  'irq',
  'softirq',
  'steal',
  'guest',
  'guest_nice',
] as const;

export const DISKSTAT_ITEMS = [
  'reads',
  'merged',
  'sectors_read',
  'time_reading',
  'writes',
  'writes_merged',
  'sectors_written',
  'time_writing',
  'in_progress',
  'time_in_progress',
  'weighted_time_in_progress',
  'discards',
  'discards_merged',
  'sectors_discarded',
  'time_discarding',
  'flushes',
  'time_flushing',
] as const;

export const MEMINFO_ITEMS = [
  'mem_total',
  'mem_free',
  'mem_available',
  'buffers',
  'cached',
  'swap_cached',
  'active',
  'inactive',
  'active_anon',
  'inactive_anon',
  'active_file',
  'inactive_file',
  'unevictable',
  'mlocked',
  'high_total',
  'high_free',
  'low_total',
  'low_free',
  'mmap_copy',
  'swap_total',
  'swap_free',
  'dirty',
  'writeback',
  'anon_pages',
  'mapped',
  'shmem',
  'slab',
  's_reclaimable',
  's_unreclaim',
  'kernel_stack',
  'page_tables',
  'quicklists',
  'nfs_unstable',
  'bounce',
  'writeback_tmp',
  'commit_limit',
  'committed_as',
  'vmalloc_total',
  'vmalloc_used',
  'vmalloc_chunk',
  'hardware_corrupted',
  'anon_hugepages',
  'shmem_hugepages',
  'shmem_pmd_mapped',
  'cma_total',
  'cma_free',
  'hugepages_total',
  'hugepages_free',
  'hugepages_rsvd',
  'hugepages_surp',
  'hugepagesize',
  'direct_map_4k',
  'direct_map_4M',
  'direct_map_2M',
  'direct_map_1G',
  'hugetlb',
  'per_cpu',
  'k_reclaimable',
] as const;

/** Keys of a 6.x guest kernel's `/proc/vmstat` (the agent exports every one). */
export const VMSTAT_KEYS = (
  'nr_free_pages nr_zone_inactive_anon nr_zone_active_anon nr_zone_inactive_file nr_zone_active_file ' +
  'nr_zone_unevictable nr_zone_write_pending nr_mlock nr_bounce nr_zspages nr_free_cma numa_hit numa_miss ' +
  'numa_foreign numa_interleave numa_local numa_other nr_inactive_anon nr_active_anon nr_inactive_file ' +
  'nr_active_file nr_unevictable nr_slab_reclaimable nr_slab_unreclaimable nr_isolated_anon nr_isolated_file ' +
  'workingset_nodes workingset_refault_anon workingset_refault_file workingset_activate_anon ' +
  'workingset_activate_file workingset_restore_anon workingset_restore_file workingset_nodereclaim ' +
  'nr_anon_pages nr_mapped nr_file_pages nr_dirty nr_writeback nr_writeback_temp nr_shmem nr_shmem_hugepages ' +
  'nr_shmem_pmdmapped nr_file_hugepages nr_file_pmdmapped nr_anon_transparent_hugepages nr_vmscan_write ' +
  'nr_vmscan_immediate_reclaim nr_dirtied nr_written nr_throttled_written nr_kernel_misc_reclaimable ' +
  'nr_foll_pin_acquired nr_foll_pin_released nr_kernel_stack nr_page_table_pages nr_sec_page_table_pages ' +
  'nr_swapcached pgpromote_success pgpromote_candidate nr_dirty_threshold nr_dirty_background_threshold ' +
  'pgpgin pgpgout pswpin pswpout pgalloc_dma pgalloc_dma32 pgalloc_normal pgalloc_movable allocstall_dma ' +
  'allocstall_dma32 allocstall_normal allocstall_movable pgskip_dma pgskip_dma32 pgskip_normal pgskip_movable ' +
  'pgfree pgactivate pgdeactivate pglazyfree pgfault pgmajfault pglazyfreed pgrefill pgreuse pgsteal_kswapd ' +
  'pgsteal_direct pgsteal_khugepaged pgdemote_kswapd pgdemote_direct pgdemote_khugepaged pgscan_kswapd ' +
  'pgscan_direct pgscan_khugepaged pgscan_direct_throttle pgscan_anon pgscan_file pgsteal_anon pgsteal_file ' +
  'zone_reclaim_failed pginodesteal slabs_scanned kswapd_inodesteal kswapd_low_wmark_hit_quickly ' +
  'kswapd_high_wmark_hit_quickly pageoutrun pgrotated drop_pagecache drop_slab oom_kill numa_pte_updates ' +
  'numa_huge_pte_updates numa_hint_faults numa_hint_faults_local numa_pages_migrated pgmigrate_success ' +
  'pgmigrate_fail thp_migration_success thp_migration_fail thp_migration_split compact_migrate_scanned ' +
  'compact_free_scanned compact_isolated compact_stall compact_fail compact_success compact_daemon_wake ' +
  'compact_daemon_migrate_scanned compact_daemon_free_scanned htlb_buddy_alloc_success htlb_buddy_alloc_fail ' +
  'cma_alloc_success cma_alloc_fail unevictable_pgs_culled unevictable_pgs_scanned unevictable_pgs_rescued ' +
  'unevictable_pgs_mlocked unevictable_pgs_munlocked unevictable_pgs_cleared unevictable_pgs_stranded ' +
  'thp_fault_alloc thp_fault_fallback thp_fault_fallback_charge thp_collapse_alloc thp_collapse_alloc_failed ' +
  'thp_file_alloc thp_file_fallback thp_file_fallback_charge thp_file_mapped thp_split_page ' +
  'thp_split_page_failed thp_deferred_split_page thp_split_pmd thp_scan_exceed_none_pte ' +
  'thp_scan_exceed_swap_pte thp_scan_exceed_share_pte thp_split_pud thp_zero_page_alloc ' +
  'thp_zero_page_alloc_failed thp_swpout thp_swpout_fallback balloon_inflate balloon_deflate balloon_migrate ' +
  'swap_ra swap_ra_hit ksm_swpin_copy cow_ksm zswpin zswpout direct_map_level2_splits direct_map_level3_splits'
).split(' ');

/** Guest memory of a default Kata VM (`default_memory = 2048` MiB). */
export const GUEST_MEM_BYTES = 2048 * 1024 * 1024;

/** Guest block devices listed in /proc/diskstats, with major:minor. */
export const GUEST_DISKS: ReadonlyArray<{ name: string; major: number; minor: number }> = [
  { name: 'pmem0', major: 259, minor: 0 },
  { name: 'vda', major: 254, minor: 0 },
];

/** Share of the guest's CPU and memory used by container `i` (the pause container uses almost nothing). */
function containerShare(v: Values, sb: MetricsSandbox, i: number): { cpu: number; mem: number } {
  if (i === 0) return { cpu: 0.002, mem: 0.004 };
  const n = Math.max(1, sb.containers.length - 1);
  return {
    cpu: (0.8 / n) * (0.6 + 0.4 * v.fixed(`share/cpu/${i}`, 0, 1, false)),
    mem: (0.85 / n) * (0.6 + 0.4 * v.fixed(`share/mem/${i}`, 0, 1, false)),
  };
}

const CPU_RATES: Record<string, number> = {
  user: 260,
  system: 90,
  idle: 600,
  iowait: 6,
  irq: 0,
  softirq: 4,
  steal: 3,
};

/** Cumulative guest CPU milliseconds per vCPU for `item`. */
function cpuMs(v: Values, cpu: number, item: string): Val {
  const r = CPU_RATES[item];
  if (r === undefined) return 0;
  const c = v.counter(`cpu/${cpu}/${item}`, r * 600, r);
  return t => c(t) * 10;
}

const kb = (n: number): number => Math.floor(n / 1024) * 1024;

/** Guest memory (bytes, whole kB): anonymous memory moves, the rest is fixed for the sandbox's life. */
interface GuestMemory {
  total: number;
  free: Fn;
  available: Fn;
  cached: number;
  buffers: number;
  anon: Fn;
  slab: number;
}

function guestMemory(v: Values): GuestMemory {
  const total = GUEST_MEM_BYTES - 56 * 1024 * 1024; // kernel reserves some
  const anon = v.gauge('mem/anon', total * 0.18, total * 0.26);
  const cached = v.fixed('mem/cached', total * 0.1, total * 0.2);
  const buffers = v.fixed('mem/buffers', 2e6, 9e6);
  const slab = v.fixed('mem/slab', 3e7, 6e7);
  const free = (t: number): number => total - anon(t) - cached - buffers - slab;
  return {
    total: kb(total),
    free: t => kb(free(t)),
    available: t => kb(free(t) + cached * 0.9),
    cached: kb(cached),
    buffers: kb(buffers),
    anon: t => kb(anon(t)),
    slab: kb(slab),
  };
}

function item(name: string, value: Val): ScalarSeries {
  return { labels: [['item', name]], value };
}

/** Everything the agent's numbers derive from, built once per sandbox. */
interface AgentModel {
  v: Values;
  families: SimFamily[];
  cpu: Map<string, Val>; // `${cpu}/${item}`
  mem: GuestMemory;
  eth0: Record<string, Val>;
  vdaReads: Fn;
  vdaWrites: Fn;
  templates: Map<string, BodyTemplate>;
}

const VMSTAT_COUNTERS = new Set([
  'pgfault',
  'pgalloc_normal',
  'pgfree',
  'numa_hit',
  'numa_local',
  'pgpgin',
  'pgpgout',
  'pgactivate',
  'nr_dirtied',
  'nr_written',
]);

function buildAgentModel(sb: MetricsSandbox): AgentModel {
  const v = new Values(sb.seed ^ 0x5a5a5a5a);
  const fams: SimFamily[] = [];

  // kata_agent_*: the agent process itself
  const rss = v.gauge('agent/rss', 2.6e6, 3.4e6);
  const vm = v.fixed('agent/vm', 3.6e7, 4.4e7);
  const agentTime = v.counter('agent/time', 30, 2);
  fams.push(
    {
      name: 'kata_agent_scrape_count',
      help: 'Metrics scrape count',
      type: 'counter',
      series: [{ labels: [], value: TICK }],
    },
    {
      name: 'kata_agent_threads',
      help: 'Agent process threads',
      type: 'gauge',
      series: [{ labels: [], value: v.fixed('agent/thr', 5, 9) }],
    },
    {
      name: 'kata_agent_total_time',
      help: 'Agent process total time',
      type: 'gauge',
      series: [{ labels: [], value: t => agentTime(t) / 100 }],
    },
    {
      name: 'kata_agent_total_vm',
      help: 'Agent process total VM size',
      type: 'gauge',
      series: [{ labels: [], value: Math.round(vm / 4096) * 4096 }],
    },
    {
      name: 'kata_agent_total_rss',
      help: 'Agent process total RSS size',
      type: 'gauge',
      series: [{ labels: [], value: t => Math.round(rss(t) / 4096) * 4096 }],
    },
    ...procFamilies(
      v,
      'agent',
      { vszBytes: vm, rssBytes: 3e6, threads: 6, fds: 20, ticksPerTick: 2, ioPerTick: 4e4 },
      {
        procStat: { name: 'kata_agent_proc_stat', help: 'Agent process statistics.' },
        procStatus: { name: 'kata_agent_proc_status', help: 'Agent process status.' },
        ioStat: { name: 'kata_agent_io_stat', help: 'Agent process IO statistics.' },
      },
      'rust',
    ),
  );

  // kata_guest_*: the guest system
  const load1 = v.gauge('load1', 0.05, 0.9 * sb.vcpus, false);
  const load5 = v.gauge('load5', 0.1, 0.6 * sb.vcpus, false);
  fams.push({
    name: 'kata_guest_load',
    help: 'Guest system load.',
    type: 'gauge',
    series: [
      item('load1', t => Math.round(load1(t) * 100) / 100),
      item('load5', t => Math.round(load5(t) * 100) / 100),
      item('load15', Math.round(v.fixed('load15', 0.1, 0.5 * sb.vcpus, false) * 100) / 100),
    ],
  });
  fams.push({
    name: 'kata_guest_tasks',
    help: 'Guest system load.',
    type: 'gauge',
    series: [
      item('cur', v.gauge('tasks', 1, 4)),
      item('max', 40 + 12 * sb.containers.length + v.fixed('tmax', 0, 30)),
    ],
  });

  const cpu = new Map<string, Val>();
  const cpuSeries: ScalarSeries[] = [];
  for (const it of CPU_TIME_ITEMS) {
    const perCpu: Val[] = [];
    for (let c = 0; c < sb.vcpus; c++) {
      const ms = cpuMs(v, c, it);
      cpu.set(`${c}/${it}`, ms);
      perCpu.push(ms);
      cpuSeries.push({
        labels: [
          ['cpu', String(c)],
          ['item', it],
        ],
        value: ms,
      });
    }
    const fns = perCpu.filter((x): x is Fn => typeof x !== 'number');
    const constant = perCpu.reduce<number>((acc, x) => acc + (typeof x === 'number' ? x : 0), 0);
    cpuSeries.push({
      labels: [
        ['cpu', 'total'],
        ['item', it],
      ],
      value:
        fns.length === 0
          ? constant
          : t => {
              let total = constant;
              for (const f of fns) total += f(t);
              return total;
            },
    });
  }
  fams.push({ name: 'kata_guest_cpu_time', help: 'Guest CPU statistics.', type: 'gauge', series: cpuSeries });

  const mem = guestMemory(v);
  const dirty = v.gauge('mem/dirty', 0, 64);
  const memVals: Record<string, Val> = {
    mem_total: mem.total,
    mem_free: mem.free,
    mem_available: mem.available,
    buffers: mem.buffers,
    cached: mem.cached,
    active: t => kb(mem.anon(t) * 0.2 + mem.cached * 0.5),
    inactive: t => kb(mem.anon(t) * 0.8 + mem.cached * 0.5),
    active_anon: t => kb(mem.anon(t) * 0.2),
    inactive_anon: t => kb(mem.anon(t) * 0.8),
    active_file: kb(mem.cached * 0.5),
    inactive_file: kb(mem.cached * 0.5),
    dirty: t => dirty(t) * 4096,
    anon_pages: mem.anon,
    mapped: kb(mem.cached * 0.3),
    shmem: v.fixed('mem/shmem', 100, 2000) * 4096,
    slab: mem.slab,
    s_reclaimable: kb(mem.slab * 0.4),
    s_unreclaim: kb(mem.slab * 0.6),
    k_reclaimable: kb(mem.slab * 0.4),
    kernel_stack: v.fixed('mem/kstack', 600, 1400) * 1024,
    page_tables: v.fixed('mem/pt', 1000, 4000) * 1024,
    commit_limit: kb(mem.total / 2),
    committed_as: t => kb(mem.anon(t) * 1.6),
    vmalloc_total: 34359738367 * 1024,
    vmalloc_used: v.fixed('mem/vmu', 5000, 12000) * 1024,
    hugepagesize: 2097152,
    direct_map_4k: 90112 * 1024,
    direct_map_2M: Math.floor(GUEST_MEM_BYTES / 2097152) * 2097152,
    per_cpu: sb.vcpus * 600 * 1024,
  };
  fams.push({
    name: 'kata_guest_meminfo',
    help: 'Statistics about memory usage in the system.',
    type: 'gauge',
    series: MEMINFO_ITEMS.map(i => item(i, memVals[i] ?? 0)),
  });

  fams.push({
    name: 'kata_guest_vm_stat',
    help: 'Guest virtual memory statistics.',
    type: 'gauge',
    series: VMSTAT_KEYS.map(k => {
      if (k === 'nr_free_pages') return item(k, t => Math.floor(mem.free(t) / 4096));
      if (k === 'nr_anon_pages') return item(k, t => Math.floor(mem.anon(t) / 4096));
      if (k === 'nr_file_pages') return item(k, Math.floor(mem.cached / 4096));
      if (VMSTAT_COUNTERS.has(k)) return item(k, v.counter(`vm/${k}`, 3e5, 900));
      if (/^(nr_|workingset_nodes|pgreuse)/.test(k))
        return item(k, v.fixed(`vm/${k}`, 0, 20000) * (v.fixed(`vm/${k}/z`, 0, 3) > 0 ? 1 : 0));
      return item(k, v.fixed(`vm/${k}/z`, 0, 4) === 4 ? v.fixed(`vm/${k}`, 1, 900) : 0);
    }),
  });

  const eth0 = netdevValues(v, 'gnet', 'eth0', 12000);
  const netSeries: ScalarSeries[] = [
    ...netdevSeries(v, 'gnet', 'lo', 300),
    ...netdevSeries(v, 'gnet', 'eth0', 12000),
  ];
  fams.push({
    name: 'kata_guest_netdev_stat',
    help: 'Guest net devices statistics.',
    type: 'gauge',
    series: netSeries,
  });

  const diskSeries: ScalarSeries[] = [];
  let vdaReads: Fn = () => 0;
  let vdaWrites: Fn = () => 0;
  for (const d of GUEST_DISKS) {
    const reads = v.counter(`disk/${d.name}/r`, 4000, 3);
    const writes: Fn = d.name === 'pmem0' ? () => 0 : v.counter(`disk/${d.name}/w`, 900, 4);
    if (d.name === 'vda') {
      vdaReads = reads;
      vdaWrites = writes;
    }
    const vals: Record<string, Val> = {
      reads,
      merged: t => Math.floor(reads(t) / 7),
      sectors_read: t => reads(t) * 23,
      time_reading: t => Math.floor(reads(t) / 3),
      writes: d.name === 'pmem0' ? 0 : writes,
      writes_merged: d.name === 'pmem0' ? 0 : t => Math.floor(writes(t) / 3),
      sectors_written: d.name === 'pmem0' ? 0 : t => writes(t) * 17,
      time_writing: d.name === 'pmem0' ? 0 : t => Math.floor(writes(t) / 2),
      in_progress: 0,
      time_in_progress: t => Math.floor((reads(t) + writes(t)) / 4),
      weighted_time_in_progress: t => Math.floor((reads(t) + writes(t)) / 2),
      flushes: d.name === 'pmem0' ? 0 : t => Math.floor(writes(t) / 20),
      time_flushing: d.name === 'pmem0' ? 0 : t => Math.floor(writes(t) / 40),
    };
    for (const it of DISKSTAT_ITEMS)
      diskSeries.push({
        labels: [
          ['disk', d.name],
          ['item', it],
        ],
        value: vals[it] ?? 0,
      });
  }
  fams.push({
    name: 'kata_guest_diskstat',
    help: 'Disks statistics in system.',
    type: 'gauge',
    series: diskSeries,
  });

  // Writable filesystems: the container rootfs overlays (the pause container's too).
  const fsBytes: ScalarSeries[] = [];
  const fsInodes: ScalarSeries[] = [];
  sb.containers.forEach((cid, i) => {
    const labels = (it: string): Labels => [
      ['mount', `/run/kata-containers/${cid}/rootfs`],
      ['device', 'overlay'],
      ['item', it],
    ];
    const total = 8 * 1024 * 1024 * 1024;
    const used = v.gauge(`fs/${i}/used`, 1e8, 6e8);
    fsBytes.push(
      { labels: labels('total'), value: total },
      { labels: labels('used'), value: t => Math.floor(used(t) / 4096) * 4096 },
      { labels: labels('available'), value: t => total - Math.floor(used(t) / 4096) * 4096 },
    );
    const inodes = 524288;
    const iused = v.fixed(`fs/${i}/iused`, 2000, 40000);
    fsInodes.push(
      { labels: labels('total'), value: inodes },
      { labels: labels('used'), value: iused },
      { labels: labels('available'), value: inodes - iused },
    );
  });
  fams.push(
    {
      name: 'kata_guest_filesystem_bytes',
      help: 'Guest filesystem space usage in bytes.',
      type: 'gauge',
      series: fsBytes,
    },
    {
      name: 'kata_guest_filesystem_inodes',
      help: 'Guest filesystem inode usage.',
      type: 'gauge',
      series: fsInodes,
    },
  );
  return { v, families: fams, cpu, mem, eth0, vdaReads, vdaWrites, templates: new Map() };
}

const models = new WeakMap<MetricsSandbox, AgentModel>();

/** The agent model of a sandbox, built on first use (a sandbox's id, seed, vCPUs and containers never change). */
function agentModel(sb: MetricsSandbox): AgentModel {
  let m = models.get(sb);
  if (!m) {
    m = buildAgentModel(sb);
    models.set(sb, m);
  }
  return m;
}

/** The agent registry's families (values as functions of the tick; names sorted by the renderer). */
export function agentFamilies(sb: MetricsSandbox): SimFamily[] {
  return agentModel(sb).families;
}

/**
 * The agent registry compiled for one encoder style, with `transform` applied to its families first
 * (`variant` names the transform: templates are cached per sandbox, style and variant).
 */
export function agentTemplate(
  sb: MetricsSandbox,
  style: EncoderStyle,
  variant = '',
  transform?: (fams: SimFamily[]) => SimFamily[],
): BodyTemplate {
  const m = agentModel(sb);
  const key = `${style}|${variant}`;
  let tpl = m.templates.get(key);
  if (!tpl) {
    tpl = compileRegistry(transform ? transform(m.families) : m.families, style);
    m.templates.set(key, tpl);
  }
  return tpl;
}

/**
 * What the agent answers to GetMetrics: the Rust `prometheus` crate's text encoding, families sorted by name.
 * `tick` selects the values (counters grow with it).
 */
export function agentExposition(sb: MetricsSandbox, tick: number): string {
  return agentTemplate(sb, 'rust').render(tick);
}

export interface GuestContainerStats {
  cpuUsageNs: number;
  cpuUserNs: number;
  cpuKernelNs: number;
  percpuNs: number[];
  memoryUsageBytes: number;
  memoryMaxUsageBytes: number;
  memoryLimitBytes: number;
  memoryCacheBytes: number;
  pids: number;
  pidsLimit: number;
  blkio: Array<{ op: string; major: number; minor: number; value: number }>;
  network: Array<{
    name: string;
    rxBytes: number;
    rxPackets: number;
    rxErrors: number;
    rxDropped: number;
    txBytes: number;
    txPackets: number;
    txErrors: number;
    txDropped: number;
  }>;
}

/**
 * StatsContainer numbers for one container of the sandbox, consistent with `agentFamilies()` at the same tick
 * (its CPU is a share of the guest's user+system time, its memory a share of the guest's anonymous memory,
 * its network the pod's eth0). Undefined for a container id the sandbox does not have.
 */
export function guestContainerStats(
  sb: MetricsSandbox,
  containerId: string,
  tick: number,
): GuestContainerStats | undefined {
  const idx = sb.containers.indexOf(containerId);
  if (idx < 0) return undefined;
  const m = agentModel(sb);
  const share = containerShare(m.v, sb, idx);
  const percpuNs: number[] = [];
  let user = 0;
  let sys = 0;
  for (let c = 0; c < sb.vcpus; c++) {
    const u = at(m.cpu.get(`${c}/user`) ?? 0, tick) * share.cpu * 1e6;
    const s = at(m.cpu.get(`${c}/system`) ?? 0, tick) * share.cpu * 1e6;
    percpuNs.push(Math.floor(u + s));
    user += u;
    sys += s;
  }
  const usage = Math.floor((m.mem.anon(tick) * share.mem) / 4096) * 4096;
  const nd = (it: (typeof NETDEV_ITEMS)[number]): number => at(m.eth0[it] ?? 0, tick);
  const readBytes = Math.floor(m.vdaReads(tick) * 23 * 512 * share.cpu);
  const writeBytes = Math.floor(m.vdaWrites(tick) * 17 * 512 * share.cpu);
  return {
    cpuUsageNs: Math.floor(user + sys),
    cpuUserNs: Math.floor(user),
    cpuKernelNs: Math.floor(sys),
    percpuNs,
    memoryUsageBytes: usage,
    memoryMaxUsageBytes: Math.floor((usage * 1.2) / 4096) * 4096,
    memoryLimitBytes: idx === 0 ? 2 ** 63 - 4096 : 512 * 1024 * 1024,
    memoryCacheBytes: Math.floor((m.mem.cached * share.mem) / 4096) * 4096,
    pids: idx === 0 ? 1 : 1 + m.v.fixed(`pids/${idx}`, 0, 6),
    pidsLimit: 0,
    blkio: [
      { op: 'Read', major: 254, minor: 0, value: readBytes },
      { op: 'Write', major: 254, minor: 0, value: writeBytes },
      { op: 'Total', major: 254, minor: 0, value: readBytes + writeBytes },
    ],
    network: [
      {
        name: 'eth0',
        rxBytes: nd('recv_bytes'),
        rxPackets: nd('recv_packets'),
        rxErrors: nd('recv_errs'),
        rxDropped: nd('recv_drop'),
        txBytes: nd('sent_bytes'),
        txPackets: nd('sent_packets'),
        txErrors: nd('sent_errs'),
        txDropped: nd('sent_drop'),
      },
    ],
  };
}
