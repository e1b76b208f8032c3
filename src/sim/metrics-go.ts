/**
 * The body a Go `containerd-shim-kata-v2` serves on `/metrics` (pure): its own registry (`go_*`, `process_*`,
 * `kata_shim_*`, `kata_hypervisor_*`, `kata_virtiofsd_*`, `kata_firecracker_*` for Firecracker) sorted by name,
 * then the agent's families decoded and re-encoded by Go (sorted), as `shim_management.go` does.
 * Shim faults that change the body (garbage, conflict, prelabelled, huge) are applied here.
 *
 * Families are built once per sandbox with values as functions of the tick and compiled into a cached
 * `BodyTemplate` (per hypervisor, family fault and agent presence); a tick only fills the value slots.
 */
import { type MetricsSandbox, agentTemplate } from './metrics-agent';
import {
  BodyTemplate,
  type Fn,
  type HistogramSeries,
  type Labels,
  type ScalarSeries,
  type SimFamily,
  type Val,
  Values,
  cachedTemplate,
  compileRegistry,
  latencyHistogram,
} from './metrics-model';
import { netdevSeries, procFamilies } from './procfs-model';
import type { ShimFault } from './types';

export { agentExposition, guestContainerStats, type GuestContainerStats } from './metrics-agent';

export type BodySandbox = MetricsSandbox & { shimFault?: ShimFault; agentFault?: unknown };

/** Shim task API actions a running pod sandbox has typically served (of the 17 in the vocabulary). */
const SHIM_ACTIONS: ReadonlyArray<[string, number, number]> = [
  // action, calls at creation, calls per tick (kubelet polling)
  ['connect', 1, 0],
  ['create', 2, 0],
  ['exec', 0, 0.2],
  ['pids', 2, 0],
  ['start', 2, 0],
  ['state', 6, 1],
  ['stats', 2, 1],
  ['update', 1, 0],
  ['wait', 2, 0],
];

/** Agent requests the Go runtime has sent (action = `grpc.<RequestMessageName>`), with typical latency ms. */
const AGENT_ACTIONS: ReadonlyArray<[string, number, number, number]> = [
  ['grpc.AddARPNeighborsRequest', 1, 0, 2],
  ['grpc.CheckRequest', 3, 0, 1],
  ['grpc.CreateContainerRequest', 2, 0, 180],
  ['grpc.CreateSandboxRequest', 1, 0, 60],
  ['grpc.ExecProcessRequest', 0, 0.2, 9],
  ['grpc.GetGuestDetailsRequest', 1, 0, 2],
  ['grpc.GetMetricsRequest', 0, 1, 6],
  ['grpc.GetOOMEventRequest', 1, 0, 1],
  ['grpc.SetGuestDateTimeRequest', 1, 0, 1],
  ['grpc.StartContainerRequest', 2, 0, 30],
  ['grpc.StatsContainerRequest', 4, 2, 3],
  ['grpc.UpdateContainerRequest', 1, 0, 8],
  ['grpc.UpdateInterfaceRequest', 1, 0, 12],
  ['grpc.UpdateRoutesRequest', 1, 0, 6],
  ['grpc.WaitProcessRequest', 2, 0, 1],
];

function gauge(name: string, help: string, value: Val, labels: Labels = []): SimFamily {
  return { name, help, type: 'gauge', series: [{ labels, value }] };
}
function counter(name: string, help: string, value: Val): SimFamily {
  return { name, help, type: 'counter', series: [{ labels: [], value }] };
}

/** client_golang v1.22 Go collector + process collector of the shim process. */
export function goRuntimeFamilies(v: Values, startTime: number, goVersion = 'go1.23.12'): SimFamily[] {
  const heap = v.gauge('go/heap', 3.2e6, 6.5e6);
  const heapSys = v.fixed('go/heapsys', 1.1e7, 1.6e7);
  const sys = heapSys + v.fixed('go/othersys', 6e6, 9e6);
  const gcs = v.counter('go/gcs', 40, 0.4);
  const pauseQ = [
    v.fixed('go/p0', 2e-5, 4e-5, false),
    v.fixed('go/p1', 4e-5, 6e-5, false),
    v.fixed('go/p2', 6e-5, 9e-5, false),
    v.fixed('go/p3', 1e-4, 2e-4, false),
    v.fixed('go/p4', 5e-4, 2e-3, false),
  ].map(x => Number(x.toPrecision(6)));
  const mallocs = v.counter('go/mallocs', 2e5, 900);
  const objs = v.gauge('go/objs', 18000, 30000);
  const frees: Fn = t => mallocs(t) - objs(t);
  const rss = v.gauge('proc/rss', 3.8e7, 4.6e7);
  const procCpu = v.counter('proc/cpu', 40, 1);
  return [
    {
      name: 'go_gc_duration_seconds',
      help: 'A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.',
      type: 'summary',
      series: [
        {
          labels: [],
          quantiles: [
            [0, pauseQ[0] ?? 0],
            [0.25, pauseQ[1] ?? 0],
            [0.5, pauseQ[2] ?? 0],
            [0.75, pauseQ[3] ?? 0],
            [1, pauseQ[4] ?? 0],
          ],
          sum: t => Number((gcs(t) * (pauseQ[2] ?? 0)).toPrecision(9)),
          count: gcs,
        },
      ],
    },
    gauge(
      'go_gc_gogc_percent',
      'Heap size target percentage configured by the user, otherwise 100. This value is set by the GOGC environment variable, and the runtime/debug.SetGCPercent function. Sourced from /gc/gogc:percent.',
      100,
    ),
    gauge(
      'go_gc_gomemlimit_bytes',
      'Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes.',
      2 ** 63,
    ),
    gauge('go_goroutines', 'Number of goroutines that currently exist.', v.gauge('go/goroutines', 38, 52)),
    gauge('go_info', 'Information about the Go environment.', 1, [['version', goVersion]]),
    gauge(
      'go_memstats_alloc_bytes',
      'Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes.',
      heap,
    ),
    {
      name: 'go_memstats_alloc_bytes_total',
      help: 'Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes.',
      type: 'counter',
      series: [{ labels: [], value: t => mallocs(t) * 96 }],
    },
    gauge(
      'go_memstats_buck_hash_sys_bytes',
      'Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes.',
      v.fixed('go/bh', 1.44e6, 1.47e6),
    ),
    {
      name: 'go_memstats_frees_total',
      help: 'Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects.',
      type: 'counter',
      series: [{ labels: [], value: frees }],
    },
    gauge(
      'go_memstats_gc_sys_bytes',
      'Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes.',
      v.fixed('go/gcsys', 3.1e6, 3.6e6),
    ),
    gauge(
      'go_memstats_heap_alloc_bytes',
      'Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.',
      heap,
    ),
    gauge(
      'go_memstats_heap_idle_bytes',
      'Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.',
      t => heapSys - heap(t) - 8192 * 40,
    ),
    gauge(
      'go_memstats_heap_inuse_bytes',
      'Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes',
      t => heap(t) + 8192 * 40,
    ),
    gauge(
      'go_memstats_heap_objects',
      'Number of currently allocated objects. Equals to /gc/heap/objects:objects.',
      objs,
    ),
    gauge(
      'go_memstats_heap_released_bytes',
      'Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes.',
      v.fixed('go/rel', 1e6, 4e6),
    ),
    gauge(
      'go_memstats_heap_sys_bytes',
      'Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.',
      heapSys,
    ),
    gauge('go_memstats_last_gc_time_seconds', 'Number of seconds since 1970 of last garbage collection.', t =>
      Number((startTime + t * 2.5 + 0.123456789).toFixed(9)),
    ),
    {
      name: 'go_memstats_mallocs_total',
      help: 'Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.',
      type: 'counter',
      series: [{ labels: [], value: mallocs }],
    },
    gauge(
      'go_memstats_mcache_inuse_bytes',
      'Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes.',
      9664,
    ),
    gauge(
      'go_memstats_mcache_sys_bytes',
      'Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes.',
      15704,
    ),
    gauge(
      'go_memstats_mspan_inuse_bytes',
      'Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes.',
      v.gauge('go/mspan', 1.6e5, 2.2e5),
    ),
    gauge(
      'go_memstats_mspan_sys_bytes',
      'Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes.',
      244800,
    ),
    gauge(
      'go_memstats_next_gc_bytes',
      'Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes.',
      v.fixed('go/next', 7e6, 9e6),
    ),
    gauge(
      'go_memstats_other_sys_bytes',
      'Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes.',
      v.fixed('go/other', 1.1e6, 1.4e6),
    ),
    gauge(
      'go_memstats_stack_inuse_bytes',
      'Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes.',
      v.gauge('go/stack', 9e5, 1.2e6),
    ),
    gauge(
      'go_memstats_stack_sys_bytes',
      'Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes.',
      1245184,
    ),
    gauge(
      'go_memstats_sys_bytes',
      'Number of bytes obtained from system. Equals to /memory/classes/total:byte.',
      sys,
    ),
    gauge(
      'go_sched_gomaxprocs_threads',
      'The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads.',
      2,
    ),
    gauge('go_threads', 'Number of OS threads created.', v.fixed('go/threads', 11, 16)),
    counter(
      'process_cpu_seconds_total',
      'Total user and system CPU time spent in seconds.',
      t => procCpu(t) / 100,
    ),
    gauge('process_max_fds', 'Maximum number of open file descriptors.', 1048576),
    counter(
      'process_network_receive_bytes_total',
      'Number of bytes received by the process over the network.',
      v.counter('proc/rx', 1e5, 900),
    ),
    counter(
      'process_network_transmit_bytes_total',
      'Number of bytes sent by the process over the network.',
      v.counter('proc/tx', 6e4, 500),
    ),
    gauge('process_open_fds', 'Number of open file descriptors.', v.gauge('proc/fds', 34, 40)),
    gauge(
      'process_resident_memory_bytes',
      'Resident memory size in bytes.',
      t => Math.round(rss(t) / 4096) * 4096,
    ),
    gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', startTime),
    gauge(
      'process_virtual_memory_bytes',
      'Virtual memory size in bytes.',
      v.fixed('proc/vsz', 1.4e9, 1.6e9) - (v.fixed('proc/vsz', 1.4e9, 1.6e9) % 4096),
    ),
    gauge(
      'process_virtual_memory_max_bytes',
      'Maximum amount of virtual memory available in bytes.',
      2 ** 64,
    ),
  ];
}

const FC_FAMILIES: ReadonlyArray<[string, string, string]> = [
  [
    'api_server',
    'Metrics related to the internal API server.',
    'process_startup_time_us process_startup_time_cpu_us sync_response_fails sync_vmm_send_timeout_count',
  ],
  [
    'block',
    'Block Device associated metrics.',
    'activate_fails cfg_fails no_avail_buffer event_fails execute_fails invalid_reqs_count flush_count queue_event_count rate_limiter_event_count update_count update_fails read_bytes write_bytes read_count write_count rate_limiter_throttled_events',
  ],
  [
    'get_api_requests',
    'Metrics specific to GET API Requests for counting user triggered actions and/or failures.',
    'instance_info_count instance_info_fails machine_cfg_count machine_cfg_fails',
  ],
  [
    'i8042',
    'Metrics specific to the i8042 device.',
    'error_count missed_read_count missed_write_count read_count reset_count write_count',
  ],
  [
    'latencies_us',
    'Performance metrics related for the moment only to snapshots.',
    'full_create_snapshot diff_create_snapshot load_snapshot pause_vm resume_vm vmm_full_create_snapshot vmm_diff_create_snapshot vmm_load_snapshot vmm_pause_vm vmm_resume_vm',
  ],
  [
    'logger',
    'Metrics for the logging subsystem.',
    'missed_metrics_count metrics_fails missed_log_count log_fails',
  ],
  [
    'mmds',
    'Metrics for the MMDS functionality.',
    'rx_accepted rx_accepted_err rx_accepted_unusual rx_bad_eth rx_count tx_bytes tx_count tx_errors tx_frames connections_created connections_destroyed',
  ],
  [
    'net',
    'Network-related metrics.',
    'activate_fails cfg_fails mac_address_updates no_rx_avail_buffer no_tx_avail_buffer event_fails rx_queue_event_count rx_event_rate_limiter_count rx_partial_writes rx_rate_limiter_throttled rx_tap_event_count rx_bytes_count rx_packets_count rx_fails rx_count tap_read_fails tap_write_fails tx_bytes_count tx_malformed_frames tx_fails tx_count tx_packets_count tx_partial_reads tx_queue_event_count tx_rate_limiter_event_count tx_rate_limiter_throttled tx_spoofed_mac_count',
  ],
  [
    'patch_api_requests',
    'Metrics specific to PATCH API Requests for counting user triggered actions and/or failures.',
    'drive_count drive_fails network_count network_fails machine_cfg_count machine_cfg_fails',
  ],
  [
    'put_api_requests',
    'Metrics specific to PUT API Requests for counting user triggered actions and/or failures.',
    'actions_count actions_fails boot_source_count boot_source_fails drive_count drive_fails logger_count logger_fails machine_cfg_count machine_cfg_fails metrics_count metrics_fails network_count network_fails',
  ],
  ['rtc', 'Metrics specific to the RTC device.', 'error_count missed_read_count missed_write_count'],
  ['seccomp', 'Metrics for the seccomp filtering.', 'num_faults'],
  ['signals', 'Metrics related to signals.', 'sigbus sigsegv'],
  [
    'uart',
    'Metrics specific to the UART device.',
    'error_count flush_count missed_read_count missed_write_count read_count write_count',
  ],
  [
    'vcpu',
    "Metrics specific to VCPUs' mode of functioning.",
    'exit_io_in exit_io_out exit_mmio_read exit_mmio_write failures filter_cpuid',
  ],
  ['vmm', 'Metrics specific to the machine manager as a whole.', 'device_events panic_count'],
  [
    'vsock',
    'Vsock-related metrics.',
    'activate_fails cfg_fails rx_queue_event_fails tx_queue_event_fails ev_queue_event_fails muxer_event_fails conn_event_fails rx_queue_event_count tx_queue_event_count rx_bytes_count tx_bytes_count rx_packets_count tx_packets_count conns_added conns_killed conns_removed killq_resync tx_flush_fails tx_write_fails rx_read_fails',
  ],
];

/** `kata_firecracker_*`: per-flush deltas (gauges), mostly zero, traffic items move. */
function firecrackerFamilies(v: Values): SimFamily[] {
  return FC_FAMILIES.map(([fam, help, itemList]) => ({
    name: `kata_firecracker_${fam}`,
    help,
    type: 'gauge' as const,
    series: itemList.split(' ').map(it => {
      let value: Val = 0;
      if (/(_count|_bytes|bytes_count|packets_count)$/.test(it) && !/fails|missed|error/.test(it)) {
        value = v.gauge(
          `fc/${fam}/${it}`,
          0,
          fam === 'net' || fam === 'vsock' || fam === 'block' ? 90000 : 40,
        );
      } else if (fam === 'api_server' && it.startsWith('process_startup')) {
        value = v.fixed(`fc/${fam}/${it}`, 3000, 12000);
      }
      return { labels: [['item', it]] as Labels, value };
    }),
  }));
}

function histogramFamily(
  v: Values,
  name: string,
  actions: ReadonlyArray<readonly [string, number, number, number?]>,
  defaultMs: number,
): SimFamily {
  const series: HistogramSeries[] = actions.map(([action, base, perTick, ms]) => {
    const count: Fn = t => base + Math.floor(perTick * t);
    return latencyHistogram(v, `${name}/${action}`, [['action', action]], count, ms ?? defaultMs);
  });
  return { name, help: 'RPC latency distributions.', type: 'histogram', series };
}

/** The shim's own registry families (before the agent part). */
export function goShimFamilies(sb: BodySandbox): SimFamily[] {
  const v = new Values(sb.seed);
  const startTime = 1.76e9 + Math.floor(v.fixed('start', 0, 5e6));
  const fams: SimFamily[] = [...goRuntimeFamilies(v, startTime)];
  const overheadCpu = v.gauge('overhead/cpu', 0.2, 3.5, false);

  fams.push(
    histogramFamily(
      v,
      'kata_shim_rpc_durations_histogram_milliseconds',
      SHIM_ACTIONS.map(([a, b, t]) => [a, b, t, a === 'create' ? 900 : a === 'start' ? 120 : 2] as const),
      2,
    ),
  );
  fams.push(histogramFamily(v, 'kata_shim_agent_rpc_durations_histogram_milliseconds', AGENT_ACTIONS, 2));
  fams.push(
    gauge('kata_shim_pod_overhead_cpu', 'Kata Pod overhead for CPU resources(percent).', t =>
      Number(overheadCpu(t).toFixed(6)),
    ),
    gauge(
      'kata_shim_pod_overhead_memory_in_bytes',
      'Kata Pod overhead for memory resources(bytes).',
      v.gauge('overhead/mem', 1.5e8, 2.4e8),
    ),
  );
  fams.push(
    ...procFamilies(
      v,
      'shim',
      { vszBytes: 1.5e9, rssBytes: 4.2e7, threads: 12, fds: 36, ticksPerTick: 3, ioPerTick: 2e5 },
      {
        threads: { name: 'kata_shim_threads', help: 'Kata containerd shim v2 process threads.' },
        fds: { name: 'kata_shim_fds', help: 'Kata containerd shim v2 open FDs.' },
        procStat: { name: 'kata_shim_proc_stat', help: 'Kata containerd shim v2 process statistics.' },
        procStatus: { name: 'kata_shim_proc_status', help: 'Kata containerd shim v2 process status.' },
        ioStat: { name: 'kata_shim_io_stat', help: 'Kata containerd shim v2 process IO statistics.' },
      },
      'go',
    ),
  );

  const guestMem = 2048 * 1024 * 1024;
  fams.push(
    ...procFamilies(
      v,
      'hv',
      {
        vszBytes: guestMem + (sb.hypervisor === 'qemu' ? 1.1e9 : 4e8),
        rssBytes: 2.6e8 + 1.2e8 * sb.containers.length,
        threads: 4 + sb.vcpus,
        fds: sb.hypervisor === 'qemu' ? 90 : 40,
        ticksPerTick: 20 * sb.vcpus,
        ioPerTick: 3e6,
      },
      {
        threads: { name: 'kata_hypervisor_threads', help: 'Hypervisor process threads.' },
        fds: { name: 'kata_hypervisor_fds', help: 'Open FDs for hypervisor.' },
        procStat: { name: 'kata_hypervisor_proc_stat', help: 'Hypervisor process statistics.' },
        procStatus: { name: 'kata_hypervisor_proc_status', help: 'Hypervisor process status.' },
        ioStat: { name: 'kata_hypervisor_io_stat', help: 'Process IO statistics.' },
      },
      'go',
    ),
  );
  const netSeries: ScalarSeries[] = [
    ...netdevSeries(v, 'hvnet', 'eth0', 12500),
    ...netdevSeries(v, 'hvnet', 'lo', 40),
    ...netdevSeries(v, 'hvnet', 'tap0_kata', 12000),
  ];
  fams.push({
    name: 'kata_hypervisor_netdev',
    help: 'Net devices statistics.',
    type: 'gauge',
    series: netSeries,
  });

  const hasVirtiofsd = sb.hypervisor !== 'firecracker';
  if (hasVirtiofsd) {
    fams.push(
      ...procFamilies(
        v,
        'vfsd',
        { vszBytes: 1.3e9, rssBytes: 9e6, threads: 7, fds: 28, ticksPerTick: 1, ioPerTick: 6e5 },
        {
          threads: { name: 'kata_virtiofsd_threads', help: 'Virtiofsd process threads.' },
          fds: { name: 'kata_virtiofsd_fds', help: 'Open FDs for virtiofsd.' },
          procStat: { name: 'kata_virtiofsd_proc_stat', help: 'Virtiofsd process statistics.' },
          procStatus: { name: 'kata_virtiofsd_proc_status', help: 'Virtiofsd process status.' },
          ioStat: { name: 'kata_virtiofsd_io_stat', help: 'Virtiofsd process IO statistics.' },
        },
        'go',
      ),
    );
  } else {
    fams.push(
      gauge('kata_virtiofsd_threads', 'Virtiofsd process threads.', 0),
      gauge('kata_virtiofsd_fds', 'Open FDs for virtiofsd.', 0),
    );
    fams.push(...firecrackerFamilies(v));
  }
  return fams;
}

/** Extra valid `kata_guest_vm_stat` lines for the `huge` fault: about `bytes` of text. */
export function hugeVmStatText(bytes = 40 * 1024 * 1024): string {
  const cached = hugeCache.get(bytes);
  if (cached) return cached;
  const parts: string[] = [];
  // each line is ~52 bytes: kata_guest_vm_stat{item="sim_extra_0000000"} 123456
  const n = Math.ceil(bytes / 52);
  for (let i = 0; i < n; i++) {
    parts.push(
      `kata_guest_vm_stat{item="sim_extra_${String(i).padStart(7, '0')}"} ${(i * 7919) % 1000003}\n`,
    );
  }
  const text = parts.join('');
  hugeCache.set(bytes, text);
  return text;
}
const hugeCache = new Map<number, string>();

/** Insert the `huge` lines at the end of the `kata_guest_vm_stat` block (valid text, tens of MB). */
export function insertHuge(text: string): string {
  const head = text.indexOf('# TYPE kata_guest_vm_stat ');
  if (head < 0) return text + hugeVmStatText();
  const next = text.indexOf('# HELP ', head);
  const at = next < 0 ? text.length : next;
  return text.slice(0, at) + hugeVmStatText() + text.slice(at);
}

/** Apply the body-changing shim faults to the agent families (they model what the shim passes through). */
export function applyFamilyFaults(fams: SimFamily[], sb: BodySandbox): SimFamily[] {
  const fault = sb.shimFault?.kind;
  if (fault === 'conflict') {
    return fams.map(f =>
      f.name === 'kata_guest_load' && f.type === 'gauge' ? { ...f, type: 'counter' as const } : f,
    );
  }
  if (fault === 'prelabelled') {
    return fams.map(f =>
      (f.name === 'kata_guest_load' || f.name === 'kata_agent_threads') && f.type === 'gauge'
        ? {
            ...f,
            series: f.series.map(s => ({ ...s, labels: [...s.labels, ['sandbox_id', sb.id]] as Labels })),
          }
        : f,
    );
  }
  return fams;
}

/** A malformed line inserted in the middle of the body for the `garbage` fault. */
export const GARBAGE_LINES = 'kata_hypervisor_threads{state="running" 12\nkata_shim_threads not-a-number\n';

/** Insert `extra` just before the family `before` (or at the middle of the text when absent). */
export function insertBeforeFamily(text: string, before: string, extra: string): string {
  const at = text.indexOf(`# HELP ${before} `);
  const pos = at >= 0 ? at : text.indexOf('\n', Math.floor(text.length / 2)) + 1;
  return text.slice(0, pos) + extra + text.slice(pos);
}

/** The body-changing faults that act on families (compiled into the template) rather than on the text. */
export function familyFaultVariant(sb: BodySandbox): string {
  const fault = sb.shimFault?.kind;
  return fault === 'conflict' || fault === 'prelabelled' ? fault : '';
}

/**
 * The compiled Go shim body of a sandbox for its current faults (cached per sandbox object, hypervisor, family
 * fault and agent fault presence; a sandbox's id, seed, vCPUs and containers are taken as fixed).
 */
export function goShimTemplate(sb: BodySandbox): BodyTemplate {
  const variant = familyFaultVariant(sb);
  const withAgent = !sb.agentFault;
  return cachedTemplate(sb, `go|${sb.hypervisor}|${variant}|${withAgent ? 'agent' : ''}`, () => {
    const shim = cachedTemplate(sb, `go-shim|${sb.hypervisor}`, () =>
      compileRegistry(goShimFamilies(sb), 'go'),
    );
    if (!withAgent) return shim;
    const agent = agentTemplate(sb, 'go', variant, fams => applyFamilyFaults(fams, sb));
    return BodyTemplate.concat([shim, agent]);
  });
}

/**
 * The full Go shim `/metrics` body at `tick`. Without agent (an agent fault set) the body holds only the shim's
 * families, as the real shim does when GetMetrics fails.
 */
export function goShimBody(sb: BodySandbox, tick: number): string {
  let body = goShimTemplate(sb).render(tick);
  if (sb.shimFault?.kind === 'garbage') body = insertBeforeFamily(body, 'kata_shim_fds', GARBAGE_LINES);
  if (sb.shimFault?.kind === 'huge' && !sb.agentFault) body = insertHuge(body);
  return body;
}

export { renderFamily } from './metrics-model';
