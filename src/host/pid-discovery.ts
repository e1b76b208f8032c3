/**
 * Finding (and keeping) the PIDs of a sandbox's shim, hypervisor and virtiofsd without asking the shim.
 *
 * Sources, in order:
 * - hypervisor: recorded state (`HypervisorState.Pid` / `hypervisor.pid`), then `<run>/vc/vm/<id>/pid`;
 * - virtiofsd: recorded state (`HypervisorState.VirtiofsDaemonPid` / `hypervisor.virtiofs_daemon_pid`);
 * - shim: the containerd bundle `<run>/containerd/io.containerd.runtime.v2.task/<any ns>/<id>/shim.pid`;
 * - all three: a scan of `<procfs>/<pid>/cmdline` (see classifyCmdline), at most once per `scanIntervalMs`.
 *
 * A PID is remembered with its start time (field 22 of /proc/<pid>/stat). Each collection re-reads the stat: a
 * different start time means the PID now belongs to another process; the entry is dropped, counted, and that
 * (pid, start time) pair is refused for the sandbox so that a stale file naming the PID cannot bring it back.
 */
import { promises as fsp } from 'node:fs';
import type { Logger } from '../log';
import type { SandboxInfo } from '../types';
import { mapLimit } from '../util/map-limit';
import { bundleShimPidFile, containerdTaskDir, procFile, vmPidFile } from './host-paths';
import {
  readParsed,
  readText,
  type OpenFileReader,
  type ReadFailureReason,
  type ReadResult,
} from './fs-read';
import type { RecordedState } from './persist-parse';
import {
  classifyCmdline,
  parseCmdline,
  parsePidFile,
  parseProcStat,
  type Component,
  type ProcStat,
} from './proc-parse';

export type PidSource = 'persist' | 'vm_pidfile' | 'bundle' | 'cmdline_scan';

export interface TrackedProcess {
  pid: number;
  startTimeTicks: number;
  source: PidSource;
}

/** A process found for this collection, with the stat read while validating it. */
export interface LiveProcess extends TrackedProcess {
  stat: ProcStat;
}

export interface PidResolverEvents {
  /** A file could not be read or parsed (`file` is a kind, e.g. `stat`, `shim.pid`). */
  readError(file: string, reason: ReadFailureReason): void;
  /** A remembered PID now has another start time. */
  pidReused(sandboxId: string, component: Component, pid: number): void;
}

export interface PidResolverOptions {
  procfs: string;
  runDir: string;
  scanIntervalMs: number;
  logger: Logger;
  events: PidResolverEvents;
  /** Monotonic milliseconds; injectable for tests. */
  now?: () => number;
  /** Read `<procfs>/<pid>/stat` through descriptors kept open (real procfs only; see OpenFileReader). */
  openFiles?: OpenFileReader;
}

interface SandboxEntry {
  tracked: Partial<Record<Component, TrackedProcess>>;
  /** `pid:start` pairs that were found reused; never accepted again for this sandbox. */
  refused: Set<string>;
}

const SCAN_CONCURRENCY = 16;

export class PidResolver {
  private readonly entries = new Map<string, SandboxEntry>();
  private scanResult = new Map<string, Partial<Record<Component, number>>>();
  private lastScanAt = -Infinity;
  private scanning: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: PidResolverOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  /** Forget sandboxes that are no longer discovered. */
  retain(ids: ReadonlySet<string>): void {
    for (const id of this.entries.keys()) if (!ids.has(id)) this.entries.delete(id);
    for (const id of this.scanResult.keys()) if (!ids.has(id)) this.scanResult.delete(id);
  }

  /** The remembered PID of a component, if any (no I/O). */
  tracked(sandboxId: string, component: Component): TrackedProcess | undefined {
    return this.entries.get(sandboxId)?.tracked[component];
  }

  private entry(id: string): SandboxEntry {
    let e = this.entries.get(id);
    if (!e) {
      e = { tracked: {}, refused: new Set() };
      this.entries.set(id, e);
    }
    return e;
  }

  /** Read and parse `<procfs>/<pid>/stat`. */
  readStat(pid: number): Promise<ReadResult<ProcStat>> {
    const file = procFile(this.opts.procfs, pid, 'stat');
    const open = this.opts.openFiles;
    return open ? Promise.resolve(open.readParsed(file, parseProcStat)) : readParsed(file, parseProcStat);
  }

  /**
   * The live process of a component: the remembered one if its start time still matches, else the first
   * candidate from files and/or the last cmdline scan (`sources`) whose stat is readable and not refused.
   */
  async acquire(
    sb: SandboxInfo,
    component: Component,
    recorded: RecordedState | undefined,
    sources: { files: boolean; scan: boolean },
  ): Promise<LiveProcess | undefined> {
    const e = this.entry(sb.id);
    const cur = e.tracked[component];
    if (cur) {
      const r = await this.readStat(cur.pid);
      if (r.ok && r.value.startTimeTicks === cur.startTimeTicks) return { ...cur, stat: r.value };
      delete e.tracked[component];
      if (r.ok) {
        e.refused.add(`${cur.pid}:${r.value.startTimeTicks}`);
        this.opts.events.pidReused(sb.id, component, cur.pid);
        this.opts.logger.warn('PID reused by another process; dropped', {
          sandbox_id: sb.id,
          component,
          pid: cur.pid,
          start_ticks_was: cur.startTimeTicks,
          start_ticks_now: r.value.startTimeTicks,
        });
      } else {
        this.opts.events.readError('stat', r.reason);
        this.opts.logger.debug('process gone; dropped', {
          sandbox_id: sb.id,
          component,
          pid: cur.pid,
          reason: r.reason,
        });
      }
    }
    const candidates = sources.files ? await this.fileCandidates(sb, component, recorded) : [];
    if (sources.scan) {
      const pid = this.scanResult.get(sb.id)?.[component];
      if (pid !== undefined) candidates.push({ pid, source: 'cmdline_scan' });
    }
    for (const c of candidates) {
      const r = await this.readStat(c.pid);
      if (!r.ok) {
        // A stale file naming a dead PID (`gone`), or a stat we cannot trust (`parse`).
        this.opts.events.readError('stat', r.reason);
        continue;
      }
      if (e.refused.has(`${c.pid}:${r.value.startTimeTicks}`)) continue;
      const t: TrackedProcess = { pid: c.pid, startTimeTicks: r.value.startTimeTicks, source: c.source };
      e.tracked[component] = t;
      this.opts.logger.debug('process found', { sandbox_id: sb.id, component, pid: c.pid, source: c.source });
      return { ...t, stat: r.value };
    }
    return undefined;
  }

  private async fileCandidates(
    sb: SandboxInfo,
    component: Component,
    recorded: RecordedState | undefined,
  ): Promise<{ pid: number; source: PidSource }[]> {
    const out: { pid: number; source: PidSource }[] = [];
    if (component === 'hypervisor') {
      if (recorded?.hypervisorPid !== undefined) out.push({ pid: recorded.hypervisorPid, source: 'persist' });
      const r = await readParsed(vmPidFile(this.opts.runDir, sb.id), t => parsePidFile(t, 'vm pid'));
      if (r.ok) out.push({ pid: r.value, source: 'vm_pidfile' });
      else if (r.reason !== 'gone') this.opts.events.readError('vm_pidfile', r.reason);
    } else if (component === 'virtiofsd') {
      if (recorded?.virtiofsdPid !== undefined) out.push({ pid: recorded.virtiofsdPid, source: 'persist' });
    } else {
      let namespaces: string[] = [];
      try {
        namespaces = (await fsp.readdir(containerdTaskDir(this.opts.runDir))).sort();
      } catch {
        /* no containerd task dir on this node (CRI-O): the scan is the fallback */
      }
      for (const ns of namespaces) {
        const r = await readParsed(bundleShimPidFile(this.opts.runDir, ns, sb.id), t =>
          parsePidFile(t, 'shim.pid'),
        );
        if (r.ok) {
          out.push({ pid: r.value, source: 'bundle' });
          break;
        }
        if (r.reason !== 'gone') this.opts.events.readError('shim.pid', r.reason);
      }
    }
    return out;
  }

  /** Whether a cmdline scan may run now (at most once per `scanIntervalMs`). */
  scanDue(): boolean {
    return this.now() - this.lastScanAt >= this.opts.scanIntervalMs;
  }

  /**
   * Scan `<procfs>/<pid>/cmdline` for the components of `ids` (throttled; concurrent callers share one scan).
   * Returns false when the scan was not due.
   */
  async scan(ids: ReadonlySet<string>): Promise<boolean> {
    if (this.scanning) {
      await this.scanning;
      return true;
    }
    if (!this.scanDue()) return false;
    this.lastScanAt = this.now();
    this.scanning = this.doScan(ids).finally(() => {
      this.scanning = undefined;
    });
    await this.scanning;
    return true;
  }

  private async doScan(ids: ReadonlySet<string>): Promise<void> {
    const started = this.now();
    let names: string[];
    try {
      names = (await fsp.readdir(this.opts.procfs)).filter(n => /^\d+$/.test(n));
    } catch (err) {
      this.opts.events.readError('procfs', 'unreadable');
      this.opts.logger.warn('cmdline scan: cannot list procfs', { procfs: this.opts.procfs, err });
      return;
    }
    const found = new Map<string, Partial<Record<Component, number>>>();
    await mapLimit(names, SCAN_CONCURRENCY, async name => {
      const r = await readText(procFile(this.opts.procfs, Number(name), 'cmdline'));
      if (!r.ok) return; // processes exit all the time during a scan: not an error
      const hit = classifyCmdline(parseCmdline(r.value), ids);
      if (!hit) return;
      const cur = found.get(hit.id) ?? {};
      const pid = Number(name);
      // Several matches (threads are not listed; forks are): keep the lowest PID, usually the parent.
      if (cur[hit.component] === undefined || pid < cur[hit.component]!) cur[hit.component] = pid;
      found.set(hit.id, cur);
    });
    this.scanResult = found;
    this.opts.logger.debug('cmdline scan done', {
      processes: names.length,
      matched_sandboxes: found.size,
      duration_ms: Math.round(this.now() - started),
    });
  }
}
