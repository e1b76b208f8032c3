/**
 * Host-side cost of each Kata sandbox, read from /proc and the cgroup filesystem only (never from the shim, so
 * it keeps working when a shim hangs). An ExtraSource: called once per /metrics collection.
 * Metric catalogue and formulas: docs/host-metrics.md.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import type { Logger } from '../log';
import type { CollectContext, ExpositionChunk, ExtraSource } from '../metrics/source';
import {
  concatFamilies,
  FamilyBytes,
  familyHeader,
  renderLabels,
  type LabelPairs,
  type MetricType,
} from '../metrics/text-builder';
import type { SandboxInfo } from '../types';
import {
  isSaneNumber,
  isValidCpuGrowth,
  isValidMemoryBytes,
  isValidProcessCpu,
  overhead,
  type HostFacts,
} from './bounds';
import {
  cgroupFiles,
  cgroupRelativePath,
  parseCgroupV2CpuStat,
  parseCgroupValue,
  parseCpuacctUsage,
  parseMemoryStat,
  workingSetBytes,
  type CgroupVersion,
} from './cgroup-parse';
import {
  countFds,
  fdCountFromStatWorks,
  OpenFileReader,
  procfsPageSize,
  readParsed,
  readParsedSync,
  type ReadFailureReason,
} from './fs-read';
import { fixedHostFacts, systemHostFacts, type HostFactsProvider } from './host-facts';
import { cgroupV2Marker, DEFAULT_HOST_PATHS, procFile, recordedStateFile } from './host-paths';
import { parseRecordedState, type RecordedState } from './persist-parse';
import { PidResolver, type LiveProcess } from './pid-discovery';
import {
  COMPONENTS,
  DEFAULT_CLOCK_TICKS,
  parseProcIo,
  parseProcStatm,
  parseProcStatus,
  parseUptime,
  processCpuSeconds,
  type Component,
  type ProcStatus,
} from './proc-parse';
import { CpuSlices } from '../util/cpu-slices';
import { mapLimit } from '../util/map-limit';

const parseMemoryCurrent = (t: string): number => parseCgroupValue(t, 'memory.current');
const parseMemoryUsageInBytes = (t: string): number => parseCgroupValue(t, 'memory.usage_in_bytes');

/** Guest-side usage of a sandbox's containers (from the agent), used for the overhead series. */
export interface GuestUsage {
  cpuSeconds: number;
  memoryBytes: number;
}

export interface HostCollectorOptions {
  logger: Logger;
  /** procfs mount (`--path.procfs`), default `/proc`. */
  procfs?: string;
  /** sysfs mount (`--path.sysfs`), default `/sys`. */
  sysfs?: string;
  /** run dir (`--path.run`), default `/run`. */
  runDir?: string;
  /** Fixed host facts (tests); default: systeminformation, cached. */
  hostFacts?: HostFacts;
  /** Minimum time between two `<procfs>/*\/cmdline` scans, default 60 s. */
  cmdlineScanIntervalMs?: number;
  /** Guest containers' usage of a sandbox, when the agent collector has it. */
  guestUsage?: (sandboxId: string) => GuestUsage | undefined;
  /** USER_HZ, default 100. */
  clockTicks?: number;
  /** Sandboxes read in parallel, default 8. */
  concurrency?: number;
  /** The CPU slices the reads take turns in (the daemon shares one with the shim scrapes; cpu-slices.ts). */
  slices?: CpuSlices;
  /**
   * Where a dropped out-of-bounds sample is counted. Default: this collector keeps the counts and writes
   * `kata_monitor_invalid_samples_total{family}` itself; set this to count them in a shared registry instead.
   */
  onInvalidSample?: (family: string) => void;
  /** Monotonic milliseconds; injectable for tests. */
  now?: () => number;
}

export type HostCollector = ExtraSource & { close(): Promise<void> };

export const DEFAULT_CMDLINE_SCAN_INTERVAL_MS = 60_000;

export const F = {
  hostCpus: 'kata_monitor_host_cpus',
  hostMemory: 'kata_monitor_host_memory_bytes',
  procCpu: 'kata_monitor_sandbox_process_cpu_seconds_total',
  procRss: 'kata_monitor_sandbox_process_resident_memory_bytes',
  procVsz: 'kata_monitor_sandbox_process_virtual_memory_bytes',
  procFds: 'kata_monitor_sandbox_process_open_fds',
  procThreads: 'kata_monitor_sandbox_process_threads',
  procIoRead: 'kata_monitor_sandbox_process_io_read_bytes_total',
  procIoWrite: 'kata_monitor_sandbox_process_io_write_bytes_total',
  podCpu: 'kata_monitor_pod_cpu_seconds_total',
  podMem: 'kata_monitor_pod_memory_working_set_bytes',
  podOvhCpu: 'kata_monitor_pod_overhead_cpu_seconds_total',
  podOvhMem: 'kata_monitor_pod_overhead_memory_bytes',
  invalid: 'kata_monitor_invalid_samples_total',
  readErrors: 'kata_monitor_host_read_errors_total',
  pidReused: 'kata_monitor_host_pid_reused_total',
  duration: 'kata_monitor_host_collection_duration_seconds',
} as const;

/**
 * The exposition text of one collection, byte for byte what TextBuilder writes (families in declaration order,
 * samples of a family together), but samples are added as finished lines: label sets are rendered once per
 * sandbox and component instead of once per sample.
 */
class LineBuilder {
  private readonly families = new Map<string, FamilyBytes>();

  family(name: string, type: MetricType, help: string): void {
    if (!this.families.has(name)) this.families.set(name, new FamilyBytes(familyHeader(name, type, help)));
  }

  /** `labels` is the rendered label set (`{...}` or empty). */
  line(family: string, labels: string, value: number): void {
    const f = this.families.get(family);
    if (!f) throw new Error(`LineBuilder: family ${family} not declared`);
    f.line(family, labels, value);
  }

  sample(family: string, labels: LabelPairs, value: number): void {
    this.line(family, renderLabels(labels), value);
  }

  /** The text (families in declaration order, those without samples left out). */
  toBuffer(): Buffer {
    return concatFamilies([...this.families.values()]);
  }
}

/** Rendered label sets of one sandbox (`{sandbox_id=...,cri_namespace="..."}` and one per component). */
interface SandboxLabelText {
  /** The label values they were rendered from. */
  key: string;
  pod: string;
  component: Record<Component, string>;
}

function sandboxLabelKey(sb: SandboxInfo): string {
  return `${sb.id}\0${sb.cri?.uid ?? ''}\0${sb.cri?.name ?? ''}\0${sb.cri?.namespace ?? ''}`;
}

function renderSandboxLabels(sb: SandboxInfo, key: string): SandboxLabelText {
  const base: [string, string][] = [
    ['sandbox_id', sb.id],
    ['cri_uid', sb.cri?.uid ?? ''],
    ['cri_name', sb.cri?.name ?? ''],
    ['cri_namespace', sb.cri?.namespace ?? ''],
  ];
  const component = {} as Record<Component, string>;
  for (const c of COMPONENTS) component[c] = renderLabels([...base, ['component', c]]);
  return { key, pod: renderLabels(base), component };
}

function declareFamilies(b: LineBuilder, ownInvalid: boolean): void {
  b.family(F.hostCpus, 'gauge', 'Logical CPUs of the host (systeminformation).');
  b.family(F.hostMemory, 'gauge', 'Physical memory of the host in bytes (systeminformation).');
  b.family(F.procCpu, 'counter', 'CPU time (user+system) of a Kata host process of the sandbox, in seconds.');
  b.family(F.procRss, 'gauge', 'Resident memory (VmRSS) of a Kata host process of the sandbox, in bytes.');
  b.family(
    F.procVsz,
    'gauge',
    'Virtual memory size (VmSize) of a Kata host process of the sandbox, in bytes.',
  );
  b.family(F.procFds, 'gauge', 'Open file descriptors of a Kata host process of the sandbox.');
  b.family(F.procThreads, 'gauge', 'Threads of a Kata host process of the sandbox.');
  b.family(
    F.procIoRead,
    'counter',
    'Bytes a Kata host process of the sandbox caused to be read from storage.',
  );
  b.family(
    F.procIoWrite,
    'counter',
    'Bytes a Kata host process of the sandbox caused to be written to storage.',
  );
  b.family(F.podCpu, 'counter', "CPU time of the sandbox's host cgroups (sandbox + overhead), in seconds.");
  b.family(F.podMem, 'gauge', "Working set (usage - inactive file) of the sandbox's host cgroups, in bytes.");
  b.family(
    F.podOvhCpu,
    'counter',
    'Host CPU seconds of the pod not used by its containers in the guest (clamped at 0).',
  );
  b.family(
    F.podOvhMem,
    'gauge',
    'Host memory working set of the pod not used by its containers in the guest, bytes (clamped at 0).',
  );
  if (ownInvalid)
    b.family(F.invalid, 'counter', 'Samples dropped because they were outside physical bounds, by family.');
  b.family(
    F.readErrors,
    'counter',
    'Host files (proc, cgroup, pid files) that could not be read or parsed, by file kind and reason.',
  );
  b.family(
    F.pidReused,
    'counter',
    'Remembered Kata process PIDs found to belong to another process (start time changed).',
  );
  b.family(F.duration, 'gauge', 'Duration of the last host collection, in seconds.');
}

/** family, rendered labels, value: flat triples in the order they were produced. */
type Sink = unknown[];

/** Found processes in COMPONENTS order. */
const byComponent = (a: { component: Component }, b: { component: Component }): number =>
  COMPONENTS.indexOf(a.component) - COMPONENTS.indexOf(b.component);

interface RecordedCache {
  mtimeMs: number;
  size: number;
  state: RecordedState | undefined;
}

export function createHostCollector(opts: HostCollectorOptions): HostCollector {
  const logger = opts.logger.child({ component: 'host-collector' });
  const procfs = opts.procfs ?? DEFAULT_HOST_PATHS.procfs;
  const sysfs = opts.sysfs ?? DEFAULT_HOST_PATHS.sysfs;
  const runDir = opts.runDir ?? DEFAULT_HOST_PATHS.runDir;
  const clockTicks = opts.clockTicks ?? DEFAULT_CLOCK_TICKS;
  const concurrency = opts.concurrency ?? 8;
  const slices = opts.slices ?? new CpuSlices();
  const now = opts.now ?? (() => performance.now());
  const facts: HostFactsProvider = opts.hostFacts ? fixedHostFacts(opts.hostFacts) : systemHostFacts(logger);
  /** Whether open fds can be counted with one stat (decided once: a property of the kernel and mount). */
  const fdsBySize = fdCountFromStatWorks(procfs);
  /**
   * On a real procfs, memory comes from `statm` (pages; the same kernel counters as status' VmRSS/VmSize, a
   * fraction of the cost to generate and parse) and threads from the stat already read; elsewhere (fixture
   * trees) from `status`. Decided once, like fdsBySize.
   */
  const pageSize = procfsPageSize(procfs);
  /**
   * On a real procfs, `<pid>/{stat,statm,io}` are read through descriptors kept open across collections (pread,
   * no open/close per read); a failed read reopens by path, so a reused PID is still caught by its start time.
   */
  const openFiles = pageSize === undefined ? undefined : new OpenFileReader();
  const readProc = <T>(file: string, parse: (t: string) => T): ReturnType<typeof readParsedSync<T>> =>
    openFiles ? openFiles.readParsed(file, parse) : readParsedSync(file, parse);
  // Callbacks of the per-sandbox work are made once here, not per call: see mapWorker in util/map-limit.ts.
  const parseStatm = (t: string): ReturnType<typeof parseProcStatm> => parseProcStatm(t, pageSize!);
  /** Rendered label sets per sandbox id, re-rendered when a label value changes. */
  const labelText = new Map<string, SandboxLabelText>();
  const labelsOf = (sb: SandboxInfo): SandboxLabelText => {
    const key = sandboxLabelKey(sb);
    let t = labelText.get(sb.id);
    if (t?.key !== key) {
      t = renderSandboxLabels(sb, key);
      labelText.set(sb.id, t);
    }
    return t;
  };
  /** cgroup file paths per `version\0relative path` (pure function of both; bounded by the sandbox set). */
  const cgroupPaths = new Map<string, ReturnType<typeof cgroupFiles>>();

  const invalidCounts = new Map<string, number>();
  const readErrors = new Map<string, number>(); // key `file\0reason`
  const reusedCounts = new Map<Component, number>();
  const recordedCache = new Map<string, RecordedCache>();
  /** Last valid value of a CPU counter per `sandbox\0family`, for the growth check. */
  const lastCpu = new Map<string, { value: number; atMs: number }>();
  let closed = false;
  const running = new Set<Promise<unknown>>();

  const countRead = (file: string, reason: ReadFailureReason): void => {
    const k = `${file}\0${reason}`;
    readErrors.set(k, (readErrors.get(k) ?? 0) + 1);
  };
  const countInvalid = (family: string, value: number, sandboxId: string): void => {
    if (opts.onInvalidSample) opts.onInvalidSample(family);
    else invalidCounts.set(family, (invalidCounts.get(family) ?? 0) + 1);
    logger.warn('sample outside physical bounds dropped', {
      family,
      value: String(value),
      sandbox_id: sandboxId,
    });
  };

  const pids = new PidResolver({
    procfs,
    runDir,
    scanIntervalMs: opts.cmdlineScanIntervalMs ?? DEFAULT_CMDLINE_SCAN_INTERVAL_MS,
    logger,
    now,
    openFiles,
    events: {
      readError: countRead,
      pidReused: (_id, component) => reusedCounts.set(component, (reusedCounts.get(component) ?? 0) + 1),
    },
  });

  /** persist.json / state.json, re-read only when its mtime or size changed. */
  async function readRecorded(sb: SandboxInfo): Promise<RecordedState | undefined> {
    const file = recordedStateFile(sb.dir, sb.runtime);
    const kind = sb.runtime === 'go' ? 'persist.json' : 'state.json';
    let st;
    try {
      st = fs.statSync(file); // tmpfs (/run): synchronous like every host read (fs-read.ts)
    } catch {
      recordedCache.delete(sb.id);
      return undefined; // not written yet, or already removed: the other sources still apply
    }
    const c = recordedCache.get(sb.id);
    if (c && c.mtimeMs === st.mtimeMs && c.size === st.size) return c.state;
    const r = await readParsed(file, t => parseRecordedState(t, sb.runtime));
    if (!r.ok) {
      countRead(kind, r.reason);
      logger.debug('recorded state unusable', {
        sandbox_id: sb.id,
        file,
        reason: r.reason,
        message: r.message,
      });
    }
    const state = r.ok ? r.value : undefined;
    recordedCache.set(sb.id, { mtimeMs: st.mtimeMs, size: st.size, state });
    return state;
  }

  /** Components to look for: runtime-rs Dragonball runs the VMM inside the shim, so no separate hypervisor. */
  function componentsOf(sb: SandboxInfo, recorded: RecordedState | undefined): Component[] {
    const hv = recorded?.hypervisorType ?? sb.hypervisor;
    if (sb.runtime === 'rs' && hv === 'dragonball') return COMPONENTS.filter(c => c !== 'hypervisor');
    return [...COMPONENTS];
  }

  async function detectCgroupVersion(): Promise<CgroupVersion> {
    try {
      await fsp.access(cgroupV2Marker(sysfs));
      return 2;
    } catch {
      return 1;
    }
  }

  function readCgroup(
    version: CgroupVersion,
    rel: string,
  ): { cpuSeconds?: number; workingSetBytes?: number } {
    const k = `${version}\0${rel}`;
    let files = cgroupPaths.get(k);
    if (!files) {
      files = cgroupFiles(sysfs, version, rel);
      cgroupPaths.set(k, files);
    }
    const cpu = readParsedSync(files.cpu, version === 2 ? parseCgroupV2CpuStat : parseCpuacctUsage);
    const usage = readParsedSync(
      files.memUsage,
      version === 2 ? parseMemoryCurrent : parseMemoryUsageInBytes,
    );
    const stat = readParsedSync(files.memStat, parseMemoryStat);
    const out: { cpuSeconds?: number; workingSetBytes?: number } = {};
    if (cpu.ok) out.cpuSeconds = cpu.value;
    else countRead('cgroup_cpu', cpu.reason);
    if (usage.ok && stat.ok) {
      try {
        out.workingSetBytes = workingSetBytes(usage.value, stat.value, version);
      } catch {
        countRead('cgroup_memory', 'parse');
      }
    } else {
      countRead('cgroup_memory', !usage.ok ? usage.reason : (stat as { reason: ReadFailureReason }).reason);
    }
    return out;
  }

  function cpuGrowthOk(
    sandboxId: string,
    family: string,
    value: number,
    atMs: number,
    hf: HostFacts,
  ): boolean {
    const k = `${sandboxId}\0${family}`;
    const prev = lastCpu.get(k);
    const ok = prev
      ? isValidCpuGrowth(prev.value, value, (atMs - prev.atMs) / 1000, hf)
      : isSaneNumber(value);
    if (ok) lastCpu.set(k, { value, atMs });
    return ok;
  }

  interface SandboxResult {
    processes: { component: Component; proc: LiveProcess }[];
    recorded: RecordedState | undefined;
    misses: Component[];
  }

  async function findProcesses(sb: SandboxInfo, prior?: SandboxResult): Promise<SandboxResult> {
    const recorded = prior ? prior.recorded : await readRecorded(sb);
    const wanted = prior ? prior.misses : componentsOf(sb, recorded);
    const res: SandboxResult = { processes: prior ? [...prior.processes] : [], recorded, misses: [] };
    for (const component of wanted) {
      // After a fresh scan (prior set) only its results are new: the files were tried a moment ago.
      const proc = await pids.acquire(sb, component, recorded, { files: !prior, scan: true });
      if (proc) res.processes.push({ component, proc });
      else res.misses.push(component);
    }
    res.processes.sort(byComponent);
    return res;
  }

  /** Memory and threads of a process: from statm + the stat read before (real procfs) or from status. */
  function readMemory(proc: LiveProcess): ReturnType<typeof readParsedSync<ProcStatus>> {
    if (pageSize === undefined) return readParsedSync(procFile(procfs, proc.pid, 'status'), parseProcStatus);
    const r = readProc(procFile(procfs, proc.pid, 'statm'), parseStatm);
    if (!r.ok) return r;
    const out: ProcStatus = { threads: proc.stat.numThreads };
    if (r.value.residentBytes !== undefined) out.residentBytes = r.value.residentBytes;
    if (r.value.virtualBytes !== undefined) out.virtualBytes = r.value.virtualBytes;
    return { ok: true, value: out };
  }

  async function emitProcesses(
    b: Sink,
    sb: SandboxInfo,
    found: SandboxResult,
    uptime: number | undefined,
    hf: HostFacts,
  ): Promise<void> {
    const text = labelsOf(sb);
    const seen = new Set<number>();
    const memoryFile = pageSize === undefined ? 'status' : 'statm';
    for (const { component, proc } of found.processes) {
      // The same PID under two components (remote hypervisor = shim) is reported once, under the first.
      if (seen.has(proc.pid)) continue;
      seen.add(proc.pid);
      const status = readMemory(proc);
      const io = readProc(procFile(procfs, proc.pid, 'io'), parseProcIo);
      const fds = await countFds(procFile(procfs, proc.pid, 'fd'), fdsBySize);
      if (!status.ok) {
        // Most often the process exited between reading stat and status: report nothing rather than a mix.
        countRead(memoryFile, status.reason);
        logger.debug('process status unreadable; process skipped', {
          sandbox_id: sb.id,
          component,
          pid: proc.pid,
          reason: status.reason,
        });
        continue;
      }
      const labels = text.component[component];
      const cpu = processCpuSeconds(proc.stat, clockTicks);
      const age = uptime === undefined ? undefined : uptime - proc.stat.startTimeTicks / clockTicks;
      if (isValidProcessCpu(cpu, age, hf)) b.push(F.procCpu, labels, cpu);
      else countInvalid(F.procCpu, cpu, sb.id);
      const rss = status.value.residentBytes;
      if (rss !== undefined) {
        if (isValidMemoryBytes(rss, hf)) b.push(F.procRss, labels, rss);
        else countInvalid(F.procRss, rss, sb.id);
      }
      const vsz = status.value.virtualBytes ?? proc.stat.vsizeBytes;
      if (isSaneNumber(vsz)) b.push(F.procVsz, labels, vsz);
      else countInvalid(F.procVsz, vsz, sb.id);
      if (fds.ok) b.push(F.procFds, labels, fds.value);
      else countRead('fd', fds.reason);
      b.push(F.procThreads, labels, status.value.threads);
      if (io.ok) {
        b.push(F.procIoRead, labels, io.value.readBytes);
        b.push(F.procIoWrite, labels, io.value.writeBytes);
      } else {
        countRead('io', io.reason);
      }
    }
  }

  async function emitCgroups(
    b: Sink,
    sb: SandboxInfo,
    recorded: RecordedState | undefined,
    version: CgroupVersion,
    hf: HostFacts,
  ): Promise<void> {
    const sandboxRel =
      recorded?.sandboxCgroupPath === undefined ? undefined : cgroupRelativePath(recorded.sandboxCgroupPath);
    const overheadRel =
      recorded?.overheadCgroupPath === undefined
        ? undefined
        : cgroupRelativePath(recorded.overheadCgroupPath);
    const parts: { cpuSeconds?: number; workingSetBytes?: number }[] = [];
    if (sandboxRel !== undefined) parts.push(readCgroup(version, sandboxRel));
    if (overheadRel !== undefined && overheadRel !== sandboxRel) parts.push(readCgroup(version, overheadRel));
    if (parts.length === 0) return; // runtime-rs records none; nothing to read
    const atMs = now();
    const labels = labelsOf(sb).pod;
    const guest = guestOf(sb.id);
    let cpu: number | undefined = 0;
    let mem: number | undefined = 0;
    for (const p of parts) {
      cpu = cpu === undefined || p.cpuSeconds === undefined ? undefined : cpu + p.cpuSeconds;
      mem = mem === undefined || p.workingSetBytes === undefined ? undefined : mem + p.workingSetBytes;
    }
    if (cpu !== undefined) {
      if (cpuGrowthOk(sb.id, F.podCpu, cpu, atMs, hf)) {
        b.push(F.podCpu, labels, cpu);
        if (guest) {
          const o = overhead(cpu, guest.cpuSeconds);
          if (cpuGrowthOk(sb.id, F.podOvhCpu, o, atMs, hf)) b.push(F.podOvhCpu, labels, o);
          else countInvalid(F.podOvhCpu, o, sb.id);
        }
      } else {
        countInvalid(F.podCpu, cpu, sb.id);
      }
    }
    if (mem !== undefined) {
      if (isValidMemoryBytes(mem, hf)) {
        b.push(F.podMem, labels, mem);
        if (guest) {
          const o = overhead(mem, guest.memoryBytes);
          if (isValidMemoryBytes(o, hf)) b.push(F.podOvhMem, labels, o);
          else countInvalid(F.podOvhMem, o, sb.id);
        }
      } else {
        countInvalid(F.podMem, mem, sb.id);
      }
    }
  }

  function guestOf(id: string): GuestUsage | undefined {
    if (!opts.guestUsage) return undefined;
    try {
      return opts.guestUsage(id);
    } catch (err) {
      logger.warn('guestUsage callback threw; overhead skipped', { sandbox_id: id, err });
      return undefined;
    }
  }

  async function readUptime(): Promise<number | undefined> {
    const r = await readParsed(`${procfs}/uptime`, parseUptime);
    if (r.ok) return r.value;
    countRead('uptime', r.reason);
    return undefined;
  }

  /** What the per-sandbox steps of one collection share. */
  interface Pass {
    live: readonly SandboxInfo[];
    found: SandboxResult[];
    uptime: number | undefined;
    version: CgroupVersion;
    hf: HostFacts;
    signal: AbortSignal;
  }
  // The per-sandbox steps, made once (not per collection: see mapWorker in util/map-limit.ts).
  const findFirst = (i: number, p: Pass): Promise<SandboxResult> => findProcesses(p.live[i]!);
  /** After a fresh scan, look again only for what the first pass missed. */
  const findAgain = (i: number, p: Pass): Promise<SandboxResult> =>
    p.found[i]!.misses.length > 0 ? findProcesses(p.live[i]!, p.found[i]) : Promise.resolve(p.found[i]!);
  const emitSandbox = async (i: number, p: Pass): Promise<Sink> => {
    const out: Sink = [];
    if (p.signal.aborted) return out;
    await emitProcesses(out, p.live[i]!, p.found[i]!, p.uptime, p.hf);
    await emitCgroups(out, p.live[i]!, p.found[i]!.recorded, p.version, p.hf);
    return out;
  };

  async function collectOnce(ctx: CollectContext): Promise<ExpositionChunk[]> {
    const started = now();
    const b = new LineBuilder();
    declareFamilies(b, !opts.onInvalidSample);
    const known = await facts.get();
    if (known) {
      b.sample(F.hostCpus, [], known.cpus);
      b.sample(F.hostMemory, [], known.memoryBytes);
    }
    // Unknown facts: only the sanity checks (finite, >= 0) apply.
    const hf: HostFacts = known ?? { cpus: Infinity, memoryBytes: Infinity };
    const ids = new Set(ctx.sandboxes.map(s => s.id));
    pids.retain(ids);
    for (const id of recordedCache.keys()) if (!ids.has(id)) recordedCache.delete(id);
    for (const k of lastCpu.keys()) if (!ids.has(k.slice(0, k.indexOf('\0')))) lastCpu.delete(k);
    for (const id of labelText.keys()) if (!ids.has(id)) labelText.delete(id);
    if (cgroupPaths.size > 4 * ids.size + 64) cgroupPaths.clear();

    const [uptime, version] = await Promise.all([readUptime(), detectCgroupVersion()]);
    const live = ctx.signal.aborted ? [] : ctx.sandboxes;
    const idx = live.map((_, i) => i);
    const pass: Pass = { live, found: [], uptime, version, hf, signal: ctx.signal };
    pass.found = await mapLimit(idx, concurrency, findFirst, slices, pass);
    if (pass.found.some(f => f.misses.length > 0) && pids.scanDue() && !ctx.signal.aborted) {
      await pids.scan(ids);
      pass.found = await mapLimit(idx, concurrency, findAgain, slices, pass);
    }
    // Sandboxes are read concurrently; their samples are written afterwards in sandbox order (deterministic text).
    const samples = await mapLimit(idx, concurrency, emitSandbox, slices, pass);
    openFiles?.sweep(); // descriptors of processes not read in this collection
    for (const list of samples)
      for (let j = 0; j < list.length; j += 3)
        b.line(list[j] as string, list[j + 1] as string, list[j + 2] as number);

    for (const [family, n] of [...invalidCounts].sort()) b.sample(F.invalid, [['family', family]], n);
    for (const [k, n] of [...readErrors].sort()) {
      const [file, reason] = k.split('\0') as [string, string];
      b.sample(
        F.readErrors,
        [
          ['file', file],
          ['reason', reason],
        ],
        n,
      );
    }
    for (const c of COMPONENTS) {
      const n = reusedCounts.get(c);
      if (n !== undefined) b.sample(F.pidReused, [['component', c]], n);
    }
    const seconds = (now() - started) / 1000;
    b.sample(F.duration, [], seconds);
    logger.debug('host collection done', { sandboxes: live.length, duration_ms: Math.round(seconds * 1000) });
    return [{ text: b.toBuffer() }];
  }

  return {
    name: 'host',
    async collect(ctx: CollectContext): Promise<ExpositionChunk[]> {
      if (closed) return [];
      const p = collectOnce(ctx).catch((err: unknown) => {
        // Never reject: a bug here must not blank /metrics.
        logger.error('host collection failed', { err });
        return [];
      });
      running.add(p);
      try {
        return await p;
      } finally {
        running.delete(p);
      }
    },
    async close(): Promise<void> {
      closed = true;
      await Promise.all([...running]);
      openFiles?.closeAll();
    },
  };
}
