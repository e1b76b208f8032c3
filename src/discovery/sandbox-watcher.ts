/**
 * Watches the sandbox roots and keeps the SandboxStore current.
 *
 * - Each existing root gets an `fs.watch` (inotify); any event triggers a debounced rescan of that root
 *   (readdir + diff), so adds and removes show within tens of milliseconds.
 * - A tick (default every 500 ms) stats every root: a missing root is picked up within one tick of its
 *   creation, a removed root drops its sandboxes, and a root removed and recreated (new inode) is watched
 *   again. The tick also rescans roots that hold undecided runtime-rs directories, and every few seconds
 *   rescans everything as a safety net against coalesced events.
 * - Watcher errors never throw out of here: they set the root's status, which /readyz and
 *   `kata_monitor_sandbox_root_watch_up{path}` report.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, getErrorMessage } from '../errors';
import type { Logger } from '../log';
import type { SandboxRoot } from '../config';
import type { SelfMetrics } from '../metrics/self-metrics';
import { SHIM_SOCKET_NAME } from '../shim/shim-client';
import { classifyEntry } from './sandbox-id';
import { parsePersistJson, parseStateJson } from './sandbox-state';
import type { SandboxStore } from './sandbox-store';

export type RootState = 'starting' | 'watching' | 'missing' | 'unreadable' | 'error';

export interface RootStatus {
  path: string;
  runtime: SandboxRoot['runtime'];
  state: RootState;
  /** Human-readable detail of a non-watching state. */
  detail?: string;
}

export interface WatcherOptions {
  roots: readonly SandboxRoot[];
  store: SandboxStore;
  logger: Logger;
  self?: SelfMetrics;
  /** Root existence check period, ms (≤ 1000 keeps late roots visible within 2 s). */
  tickMs?: number;
  /** Full rescan period, ms. */
  resyncMs?: number;
  /** First delay before re-reading a sandbox's persist.json/state.json that was not there yet, ms. */
  stateRetryMs?: number;
  /** Attempts at reading the on-disk state before giving up (the sandbox stays, just without hypervisor). */
  stateRetries?: number;
}

interface RootWatch {
  root: SandboxRoot;
  state: RootState;
  detail?: string;
  watcher?: fs.FSWatcher;
  /** inode of the watched directory, to notice a root removed and recreated between ticks. */
  ino?: number;
  debounce?: NodeJS.Timeout;
  scanning: boolean;
  rescan: boolean;
  /** runtime-rs directories with a valid name but no proof yet (see sandbox-id.ts). */
  undecided: number;
}

/** A readiness reason for a root that is not being watched, e.g. `sandbox_root_missing:/run/kata`. */
export function readinessReason(s: RootStatus): string | undefined {
  switch (s.state) {
    case 'watching':
      return undefined;
    case 'missing':
      return `sandbox_root_missing:${s.path}`;
    case 'unreadable':
      return `sandbox_root_unreadable:${s.path}`;
    case 'starting':
      return `sandbox_root_starting:${s.path}`;
    default:
      return `sandbox_root_watch_failed:${s.path}`;
  }
}

/**
 * Why the daemon is not ready, from the roots' states (pure). A node usually runs one Kata runtime, so a
 * missing root is normal while another root is watched; it only counts when no root is watched at all
 * (likely a missing hostPath mount). An unreadable or failed root always counts.
 */
export function readinessProblems(statuses: readonly RootStatus[]): string[] {
  const anyWatched = statuses.some(s => s.state === 'watching');
  return statuses
    .filter(s => !(anyWatched && s.state === 'missing'))
    .map(readinessReason)
    .filter((r): r is string => r !== undefined);
}

export class SandboxWatcher {
  private readonly opts: Required<Omit<WatcherOptions, 'self'>> & { self?: SelfMetrics };
  private readonly watches: RootWatch[];
  private tick?: NodeJS.Timeout;
  private lastResync = 0;
  private stopped = false;
  private readonly stateTimers = new Map<string, NodeJS.Timeout>();
  private readonly log: Logger;

  constructor(opts: WatcherOptions) {
    this.opts = { tickMs: 500, resyncMs: 5000, stateRetryMs: 100, stateRetries: 10, ...opts };
    this.log = opts.logger.child({ component: 'discovery' });
    this.watches = opts.roots.map(root => ({
      root,
      state: 'starting',
      scanning: false,
      rescan: false,
      undecided: 0,
    }));
  }

  /** Initial check and scan of every root; resolves once the store holds what exists now. */
  async start(): Promise<void> {
    await Promise.all(this.watches.map(w => this.check(w)));
    this.lastResync = Date.now();
    this.tick = setInterval(() => void this.onTick(), this.opts.tickMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.tick) clearInterval(this.tick);
    for (const w of this.watches) this.unwatch(w);
    for (const t of this.stateTimers.values()) clearTimeout(t);
    this.stateTimers.clear();
  }

  status(): RootStatus[] {
    return this.watches.map(w => ({
      path: w.root.path,
      runtime: w.root.runtime,
      state: w.state,
      ...(w.detail ? { detail: w.detail } : {}),
    }));
  }

  /** Reasons the daemon is not ready (empty when every root is watched). */
  readinessProblems(): string[] {
    return readinessProblems(this.status());
  }

  private async onTick(): Promise<void> {
    if (this.stopped) return;
    const resync = Date.now() - this.lastResync >= this.opts.resyncMs;
    if (resync) this.lastResync = Date.now();
    await Promise.all(
      this.watches.map(async w => {
        await this.check(w);
        if (w.state === 'watching' && (resync || w.undecided > 0)) await this.scan(w);
      }),
    );
  }

  private setState(w: RootWatch, state: RootState, detail?: string): void {
    const changed = w.state !== state;
    w.state = state;
    if (detail === undefined) delete w.detail;
    else w.detail = detail;
    this.opts.self?.sandboxRootWatchUp.set({ path: w.root.path }, state === 'watching' ? 1 : 0);
    if (!changed) return;
    const fields = { root: w.root.path, state, ...(detail ? { detail } : {}) };
    if (state === 'watching') this.log.info('watching sandbox root', fields);
    else this.log.warn('sandbox root not watched', fields);
  }

  /** Stat the root and (re)establish the watch when needed. */
  private async check(w: RootWatch): Promise<void> {
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(w.root.path);
    } catch (err) {
      this.lose(
        w,
        errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR' ? 'missing' : 'unreadable',
        err,
      );
      return;
    }
    if (this.stopped) return;
    if (!st.isDirectory()) {
      this.lose(w, 'error', new Error('not a directory'));
      return;
    }
    if (w.watcher && w.ino === st.ino && w.state === 'watching') return;
    // New, recreated or previously failed root: watch it afresh and scan.
    this.unwatch(w);
    try {
      const watcher = fs.watch(w.root.path, { persistent: false }, () => this.scheduleScan(w));
      watcher.on('error', err => {
        this.log.warn('sandbox root watcher failed', { root: w.root.path, err });
        this.unwatch(w);
        this.setState(w, 'error', getErrorMessage(err));
      });
      w.watcher = watcher;
      w.ino = st.ino;
    } catch (err) {
      this.lose(w, errnoCode(err) === 'EACCES' || errnoCode(err) === 'EPERM' ? 'unreadable' : 'error', err);
      return;
    }
    this.setState(w, 'watching');
    await this.scan(w);
  }

  /** The root went away or cannot be read: forget its sandboxes. */
  private lose(w: RootWatch, state: RootState, err: unknown): void {
    this.unwatch(w);
    for (const id of this.opts.store.idsUnder(w.root.path)) this.removeSandbox(w, id);
    this.refreshGauges();
    this.setState(w, state, errnoCode(err) ?? getErrorMessage(err));
  }

  private unwatch(w: RootWatch): void {
    if (w.debounce) clearTimeout(w.debounce);
    delete w.debounce;
    if (w.watcher) {
      w.watcher.removeAllListeners();
      w.watcher.on('error', () => undefined);
      w.watcher.close();
    }
    delete w.watcher;
    delete w.ino;
  }

  private scheduleScan(w: RootWatch): void {
    if (this.stopped || w.debounce) return;
    // Events come in bursts (mkdir + files); one readdir per burst is enough.
    w.debounce = setTimeout(() => {
      delete w.debounce;
      void this.scan(w);
    }, 20);
  }

  /** readdir + diff against the store. Serialized per root; a request during a scan reruns it once. */
  private async scan(w: RootWatch): Promise<void> {
    if (this.stopped) return;
    if (w.scanning) {
      w.rescan = true;
      return;
    }
    w.scanning = true;
    try {
      do {
        w.rescan = false;
        await this.scanOnce(w);
      } while (w.rescan && !this.stopped);
    } finally {
      w.scanning = false;
    }
  }

  private async scanOnce(w: RootWatch): Promise<void> {
    const rootPath = w.root.path;
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(rootPath, { withFileTypes: true });
    } catch (err) {
      if (this.stopped) return;
      const code = errnoCode(err);
      this.lose(w, code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : 'unreadable', err);
      return;
    }
    if (this.stopped || !w.watcher) return;
    const found = new Set<string>();
    let undecided = 0;
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      let verdict = classifyEntry(w.root.runtime, e.name, { hasStateJson: false, hasShimSocket: false });
      if (verdict === 'maybe') {
        const dir = path.join(rootPath, e.name);
        const [hasStateJson, hasShimSocket] = await Promise.all([
          exists(path.join(dir, 'state.json')),
          exists(path.join(dir, SHIM_SOCKET_NAME)),
        ]);
        verdict = classifyEntry(w.root.runtime, e.name, { hasStateJson, hasShimSocket });
      }
      if (verdict === 'sandbox') found.add(e.name);
      else if (verdict === 'maybe') undecided++;
    }
    if (this.stopped || !w.watcher) return;
    w.undecided = undecided;
    const store = this.opts.store;
    for (const id of store.idsUnder(rootPath)) if (!found.has(id)) this.removeSandbox(w, id);
    for (const id of found) {
      if (store.add(rootPath, id)) {
        this.log.debug('sandbox added', { sandbox_id: id, root: rootPath });
        this.readState(w, id, 0);
      }
    }
    this.refreshGauges();
  }

  private removeSandbox(w: RootWatch, id: string): void {
    const key = `${w.root.path}\0${id}`;
    const t = this.stateTimers.get(key);
    if (t) clearTimeout(t);
    this.stateTimers.delete(key);
    if (this.opts.store.remove(w.root.path, id)) {
      this.log.debug('sandbox removed', { sandbox_id: id, root: w.root.path });
    }
  }

  /** Read persist.json (Go) or state.json (rs); retried with doubling delays while not yet written. */
  private readState(w: RootWatch, id: string, attempt: number): void {
    const key = `${w.root.path}\0${id}`;
    this.stateTimers.delete(key);
    if (this.stopped || !this.opts.store.entry(w.root.path, id)) return;
    const file = path.join(w.root.path, id, w.root.runtime === 'go' ? 'persist.json' : 'state.json');
    fs.readFile(file, 'utf8', (err, text) => {
      if (this.stopped || !this.opts.store.entry(w.root.path, id)) return;
      const st = err ? undefined : w.root.runtime === 'go' ? parsePersistJson(text) : parseStateJson(text);
      if (st?.hypervisor) {
        this.opts.store.setOnDiskState(w.root.path, id, st);
        return;
      }
      if (attempt + 1 >= this.opts.stateRetries) {
        this.log.debug('no hypervisor type on disk', { sandbox_id: id, file });
        return;
      }
      const delay = Math.min(this.opts.stateRetryMs * 2 ** attempt, 5000);
      const timer = setTimeout(() => this.readState(w, id, attempt + 1), delay);
      timer.unref();
      this.stateTimers.set(key, timer);
    });
  }

  private refreshGauges(): void {
    const self = this.opts.self;
    if (!self) return;
    const counts = this.opts.store.countByRuntime();
    self.sandboxes.set({ runtime: 'go' }, counts.go);
    self.sandboxes.set({ runtime: 'rs' }, counts.rs);
    self.sandboxesWithoutMetadata.set(this.opts.store.withoutMetadata());
  }
}

function exists(p: string): Promise<boolean> {
  return fs.promises.access(p).then(
    () => true,
    () => false,
  );
}
