/**
 * One collection of /metrics: fan out to the shims (bounded concurrency, one deadline), run the extra sources
 * alongside, parse and relabel what came back, record per-sandbox outcomes as self metrics, and merge it all.
 *
 * Failure is data: a collection never rejects because of a sandbox or a source; each sandbox gets an outcome.
 * Requests arriving while an aggregated collection runs share it (single flight).
 */
import { setMaxListeners } from 'node:events';
import { getErrorMessage } from '../errors';
import type { Logger } from '../log';
import { SHIM_SOCKET_NAME, ShimError, classifyTransportError, shimRequest } from '../shim/shim-client';
import { bySandboxId, type SandboxInfo, type ScrapeErrorReason } from '../types';
import {
  ExpositionParser,
  ParseError,
  reparse,
  type ParseTemplate,
  type ParsedExposition,
} from './exposition-parse';
import { BODY_GRANULE, BodyPool, type BodyLease } from './body-pool';
import { mergeParts, type MergePart, type MergedFamily } from './merge';
import { dropFamilies, renameRuntimeFamilies, resolveLabelCollisions, sandboxLabelText } from './relabel';
import type { SelfMetrics } from './self-metrics';
import type { CollectContext, ExpositionChunk, ExtraSource, ShimOutcome } from './source';
import { CpuSlices } from '../util/cpu-slices';

export type FetchShimMetrics = (
  sb: SandboxInfo,
  opts: {
    timeoutMs: number;
    signal: AbortSignal;
    /** Where to put the body (reused Buffers; see BodyPool), and the size it probably has. */
    store?: BodyPool;
    sizeHint?: number;
  },
) => Promise<Buffer>;

export interface CollectorConfig {
  /** Upper bound of one shim request, ms (upstream: 3000). */
  shimTimeoutMs: number;
  /** Shim requests in flight at most. */
  scrapeConcurrency: number;
  /** Largest shim body accepted, bytes. */
  shimMaxBytes: number;
  /** Scrape runtime-rs qemu/firecracker shims although a scrape can abort them (kata-protocols §1.6.3). */
  scrapeUnsafeShims: boolean;
}

export interface CollectorDeps {
  logger: Logger;
  self: SelfMetrics;
  config: CollectorConfig;
  fetchShimMetrics?: FetchShimMetrics;
  extraSources?: readonly ExtraSource[];
  /**
   * The CPU slices body checks and parses take turns in (cpu-slices.ts); the daemon shares one with the host
   * collector. Default: one of the collector's own.
   */
  slices?: CpuSlices;
}

export interface Collection {
  /** The sandboxes of the collection, sorted by id. */
  sandboxes: readonly SandboxInfo[];
  outcomes: ReadonlyMap<string, ShimOutcome>;
  /** Everything merged: sorted by name, valid as a whole. */
  families: readonly MergedFamily[];
  /** Whether any sandbox failed (policy skips such as `unsafe_skipped` are not failures). */
  failed: boolean;
  /**
   * Say that one user of the collection is done with it (its response is written or abandoned). Every
   * caller of collectAll/collectOne must call it once: the shim bodies the families point into are reused
   * after the last call.
   */
  release(): void;
}

/** Extra time a source gets after the deadline to hand in what it has (it is told via the abort signal). */
export const SOURCE_GRACE_MS = 100;
/** Lines parsed between two turns (cpu-slices.ts) of a full parse. */
export const PARSE_SLICE_LINES = 1000;

/** runtime-rs shims whose `/metrics` handler reaches a `todo!()` and aborts the shim (and the pod). */
export function isUnsafeToScrape(sb: Pick<SandboxInfo, 'runtime' | 'hypervisor'>): boolean {
  return sb.runtime === 'rs' && (sb.hypervisor === 'qemu' || sb.hypervisor === 'firecracker');
}

/** `<dir>/shim-monitor.sock`, joined by hand on the hot path (discovery gives normalized dirs). */
export function shimSocketPath(dir: string): string {
  return dir.endsWith('/') ? dir + SHIM_SOCKET_NAME : dir + '/' + SHIM_SOCKET_NAME;
}

/** The default shim fetch: GET /metrics on `<dir>/shim-monitor.sock`. */
export function defaultFetchShimMetrics(maxBytes: number): FetchShimMetrics {
  return async (sb, opts) => {
    const res = await shimRequest(shimSocketPath(sb.dir), '/metrics', {
      timeoutMs: opts.timeoutMs,
      maxBytes,
      signal: opts.signal,
      ...(opts.store ? { store: opts.store, sizeHint: opts.sizeHint ?? 0 } : {}),
    });
    return res.body;
  };
}

export function sortById(sbs: readonly SandboxInfo[]): SandboxInfo[] {
  return [...sbs].sort(bySandboxId);
}

interface ShimResult {
  sb: SandboxInfo;
  outcome: ShimOutcome;
  exposition?: ParsedExposition;
  /** The pooled Buffer of the body, held until the collection is released. */
  lease?: BodyLease;
}

/**
 * A parse template kept for a producer. A shim body's template rolls (exposition-parse's reparse): its bytes
 * are the last body that matched it, held in the body pool by `hold` until a newer body replaces it.
 */
interface Kept {
  template: ParseTemplate;
  hold?: BodyLease;
}

/** A collection's users: counted while it runs, released one by one after. */
interface Users {
  count: number;
}

/** A FIFO counting semaphore whose waiters give up when a signal aborts. */
class Slots {
  private free: number;
  private readonly waiters: Array<(ok: boolean) => void> = [];
  constructor(n: number) {
    this.free = Math.max(1, Math.floor(n));
  }
  acquire(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(true);
    }
    return new Promise<boolean>(resolve => {
      const onAbort = (): void => {
        const k = this.waiters.indexOf(grant);
        if (k !== -1) this.waiters.splice(k, 1);
        resolve(false);
      };
      const grant = (ok: boolean): void => {
        signal.removeEventListener('abort', onAbort);
        resolve(ok);
      };
      this.waiters.push(grant);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
  release(): void {
    const next = this.waiters.shift();
    if (next) next(true);
    else this.free++;
  }
}

function deadlineError(what: string): ShimError {
  return new ShimError('SHIM_TIMEOUT', 'timeout', `${what}: scrape deadline reached`);
}

/** `p`, or a timeout ShimError as soon as `signal` aborts (for fetchers that ignore their signal). */
function raceSignal<T>(p: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(deadlineError(what));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(deadlineError(what));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      v => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** Forget the template kept under `key`, letting go of the body it holds. */
function dropKept(kept: Map<string, Kept>, key: string): void {
  kept.get(key)?.hold?.release();
  kept.delete(key);
}

function failure(reason: ScrapeErrorReason, message: string, durationMs: number): ShimOutcome {
  return { ok: false, reason, message, durationMs };
}

export class Collector {
  private readonly logger: Logger;
  private readonly fetch: FetchShimMetrics;
  /** The default fetch ends its request when the signal aborts; an injected one is raced against it. */
  private readonly fetchHonoursSignal: boolean;
  private readonly sources: readonly ExtraSource[];
  private readonly slots: Slots;
  private readonly slices: CpuSlices;
  /** The aggregated collection in progress (single flight). */
  private running: { promise: Promise<Collection>; ids: ReadonlySet<string>; users: Users } | undefined;
  /** Single-sandbox collections in progress, by sandbox id. */
  private readonly runningOne = new Map<string, { promise: Promise<Collection>; users: Users }>();
  /** Buffers shim bodies are read into, reused across collections. */
  private readonly pool = new BodyPool(0);
  /** Per sandbox, the size of its last body (the first Buffer for the next one). */
  private readonly lastSize = new Map<string, number>();
  /** Sandboxes scraped so far, to drop their templates and sizes when they go. */
  private readonly known = new Set<string>();
  /**
   * Per sandbox, the template of its last body: the next body with the same series is checked, not parsed.
   * The template is that body itself (rolling), held in the pool.
   */
  private readonly templates = new Map<string, Kept>();
  /** The same for the daemon's own registry text (templates keep a copy of the text). */
  private readonly selfTemplate = new Map<string, Kept>();
  /** The same for the texts of the extra sources, by source, sandbox and chunk (copies too). */
  private readonly sourceTemplates = new Map<string, Kept>();

  /** Counts a shim body read (made once, not per body). */
  private readonly countShimParse = (mode: 'full' | 'checked'): void => {
    this.deps.self.shimBodyParsesTotal.inc({ mode });
  };

  constructor(private readonly deps: CollectorDeps) {
    this.logger = deps.logger.child({ component: 'metrics-collect' });
    this.fetch = deps.fetchShimMetrics ?? defaultFetchShimMetrics(deps.config.shimMaxBytes);
    this.fetchHonoursSignal = deps.fetchShimMetrics === undefined;
    this.sources = deps.extraSources ?? [];
    // One pool for every collection: overlapping single-sandbox and aggregated collections share the cap.
    this.slots = new Slots(deps.config.scrapeConcurrency);
    this.slices = deps.slices ?? new CpuSlices();
  }

  /** Free bytes the body pool holds for the next collection (tests, diagnostics). */
  get spareBodyBytes(): number {
    return this.pool.spareSize;
  }

  /**
   * Collect from every sandbox (plus the extra sources and the daemon's own registry). If an aggregated
   * collection is already running, its result is shared instead (its sandbox list and deadline apply).
   */
  collectAll(
    sandboxes: readonly SandboxInfo[],
    timeoutMs: number,
    sourcesTimeoutMs: number = timeoutMs,
  ): Promise<Collection> {
    if (this.running) {
      this.running.users.count++;
      return this.running.promise;
    }
    const sorted = sortById(sandboxes);
    const users: Users = { count: 1 };
    const promise = this.run(sorted, timeoutMs, true, sourcesTimeoutMs, users).finally(() => {
      if (this.running?.promise === promise) this.running = undefined;
    });
    this.running = { promise, ids: new Set(sorted.map(s => s.id)), users };
    // Each sandbox's last body is held by its template; a new body takes a spare Buffer and, once checked,
    // gives the one it replaces back. So the spares a collection needs are the bodies in flight at once:
    // keep room for twice the shim requests in flight (fetched bodies may wait for their turn to be
    // checked), at the average body size rounded up to the pool's granules. Beyond that a collection
    // allocates, and what comes back beyond the limit is left to the GC.
    const known = this.lastSize.size;
    let bytes = 0;
    for (const n of this.lastSize.values()) bytes += n;
    const perBody = known > 0 ? bytes / known + BODY_GRANULE : 0;
    const inFlight = Math.min(known, 2 * this.deps.config.scrapeConcurrency);
    this.pool.setMaxSpareBytes(Math.max(Math.ceil(inFlight * perBody), 1 << 20));
    return promise;
  }

  /** Collect one sandbox (for `?sandbox=`); shares a running aggregated or single collection covering it. */
  collectOne(sb: SandboxInfo, timeoutMs: number, sourcesTimeoutMs: number = timeoutMs): Promise<Collection> {
    if (this.running?.ids.has(sb.id)) {
      this.running.users.count++;
      return this.running.promise;
    }
    const existing = this.runningOne.get(sb.id);
    if (existing) {
      existing.users.count++;
      return existing.promise;
    }
    const users: Users = { count: 1 };
    const promise = this.run([sb], timeoutMs, false, sourcesTimeoutMs, users).finally(() => {
      if (this.runningOne.get(sb.id)?.promise === promise) this.runningOne.delete(sb.id);
    });
    this.runningOne.set(sb.id, { promise, users });
    return promise;
  }

  private async run(
    sbs: SandboxInfo[],
    timeoutMs: number,
    aggregated: boolean,
    sourcesTimeoutMs: number,
    users: Users,
  ): Promise<Collection> {
    const start = Date.now();
    // Shims keep to `deadline`; sources may use the rest of what Prometheus allows (`sourcesDeadline`), so a
    // source can still answer for a sandbox whose shim only failed at the shim deadline (agent fallback).
    const deadline = start + timeoutMs;
    const sourcesDeadline = start + Math.max(timeoutMs, sourcesTimeoutMs);
    const ac = new AbortController();
    // Every in-flight shim request, slot waiter and source listens on this one signal: no leak warning.
    setMaxListeners(0, ac.signal);
    const timer = setTimeout(() => ac.abort(), sourcesDeadline - start);
    try {
      const settle = new Map<string, (o: ShimOutcome) => void>();
      const outcomePromises = new Map<string, Promise<ShimOutcome>>();
      for (const sb of sbs) {
        outcomePromises.set(sb.id, new Promise<ShimOutcome>(resolve => settle.set(sb.id, resolve)));
      }
      const scrapes: Promise<ShimResult>[] = [];
      for (const sb of sbs) scrapes.push(this.scrapeSettled(sb, deadline, ac.signal, settle));
      const ctx: CollectContext = {
        sandboxes: sbs,
        shimOutcome: id =>
          outcomePromises.get(id) ??
          Promise.resolve(failure('gone', `sandbox ${id} is not part of this collection`, 0)),
        signal: ac.signal,
        deadline: sourcesDeadline,
        shimDeadline: deadline,
      };
      const sourceRuns = this.sources.map(src => this.runSource(src, ctx, sourcesDeadline + SOURCE_GRACE_MS));
      const shimResults = await Promise.all(scrapes);
      const chunkLists = await Promise.all(sourceRuns);
      clearTimeout(timer);
      ac.abort(); // releases sources still listening; everything they could add is in already

      const outcomes = new Map<string, ShimOutcome>();
      let failed = false;
      for (const r of shimResults) {
        outcomes.set(r.sb.id, r.outcome);
        if (!r.outcome.ok && r.outcome.reason !== 'unsafe_skipped') failed = true;
      }
      this.recordOutcomes(shimResults, aggregated);
      if (aggregated) {
        this.deps.self.runningShimCount.set(sbs.length);
        if (failed) this.deps.self.scrapeFailedCount.inc();
      }

      const chunkParts = await this.chunkParts(chunkLists, aggregated);
      const parts: MergePart[] = [];
      if (aggregated) {
        await this.slices.turn(); // the outcomes just recorded, then rendering the own registry: a turn between
        const selfPart = await this.selfPart();
        if (selfPart) parts.push(selfPart);
      }
      for (const r of shimResults) {
        if (r.exposition) {
          const labels = sandboxLabelText(r.sb);
          parts.push({
            exposition: r.exposition,
            labels,
            sandboxId: r.sb.id,
            origin: r.sb.id,
          });
        }
        const extra = chunkParts.bySandbox.get(r.sb.id);
        if (extra) parts.push(...extra);
      }
      for (const [id, extra] of chunkParts.bySandbox) if (!outcomes.has(id)) parts.push(...extra);
      parts.push(...chunkParts.unlabelled);

      await this.slices.turn();
      const merged = mergeParts(parts);
      for (const c of merged.conflicts) {
        this.deps.self.familyConflictsTotal.inc({ family: c.family });
        this.logger.debug('family type conflict: samples dropped', {
          family: c.family,
          kept: c.kept,
          origin: c.origin,
          type: c.type,
        });
      }
      const leases: BodyLease[] = [];
      for (const r of shimResults) if (r.lease) leases.push(r.lease);
      const release = (): void => {
        if (users.count <= 0) return;
        users.count--;
        if (users.count === 0) for (const l of leases) l.release();
      };
      return { sandboxes: sbs, outcomes, families: merged.families, failed, release };
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
  }

  /**
   * scrapeSandbox that never rejects, its outcome handed to `settle` (the sources wait on it). A method, not a
   * promise chain of closures made per sandbox: those were compiled again in every scrape (util/map-limit.ts).
   */
  private async scrapeSettled(
    sb: SandboxInfo,
    deadline: number,
    signal: AbortSignal,
    settle: ReadonlyMap<string, (o: ShimOutcome) => void>,
  ): Promise<ShimResult> {
    let r: ShimResult;
    try {
      r = await this.scrapeSandbox(sb, deadline, signal);
    } catch (err) {
      // A bug in our own processing of one body must not fail the whole collection.
      this.logger.error('unexpected error while scraping a sandbox', { sandbox_id: sb.id, err });
      r = { sb, outcome: failure('parse', getErrorMessage(err), 0) };
    }
    settle.get(sb.id)?.(r.outcome);
    return r;
  }

  private async scrapeSandbox(sb: SandboxInfo, deadline: number, signal: AbortSignal): Promise<ShimResult> {
    if (isUnsafeToScrape(sb) && !this.deps.config.scrapeUnsafeShims) {
      return {
        sb,
        outcome: failure(
          'unsafe_skipped',
          `runtime-rs ${sb.hypervisor ?? ''} shims abort when /metrics is served; not scraped (scrapeUnsafeShims is off)`,
          0,
        ),
      };
    }
    const t0 = Date.now();
    if (!(await this.slots.acquire(signal))) {
      return {
        sb,
        outcome: failure('timeout', 'no scrape slot became free before the scrape deadline', Date.now() - t0),
      };
    }
    let body: Buffer;
    try {
      const timeoutMs = Math.max(1, Math.min(this.deps.config.shimTimeoutMs, deadline - Date.now()));
      const fetched = this.fetch(sb, {
        timeoutMs,
        signal,
        store: this.pool,
        sizeHint: this.lastSize.get(sb.id) ?? 0,
      });
      body = this.fetchHonoursSignal
        ? await fetched
        : await raceSignal(fetched, signal, `shim of sandbox ${sb.id}`);
    } catch (err) {
      const e = err instanceof ShimError ? err : classifyTransportError(err, shimSocketPath(sb.dir));
      return { sb, outcome: failure(e.reason, e.message, Date.now() - t0) };
    } finally {
      this.slots.release();
    }
    this.lastSize.set(sb.id, body.length);
    const lease = this.pool.lease(body);
    let exposition: ParsedExposition;
    try {
      exposition = await this.parseShimBody(sb.id, body, lease);
    } catch (err) {
      lease?.release();
      const msg =
        err instanceof ParseError ? `shim body does not parse: ${err.message}` : getErrorMessage(err);
      return { sb, outcome: failure('parse', msg, Date.now() - t0) };
    }
    const families = exposition.names ?? new Set(exposition.families.keys()); // collisions keep names
    resolveLabelCollisions(exposition);
    return {
      sb,
      exposition,
      ...(lease ? { lease } : {}),
      outcome: { ok: true, durationMs: Date.now() - t0, families },
    };
  }

  /**
   * Parse a shim body, its runtime families renamed: against the sandbox's template when it matches (the
   * template is kept renamed), else in full (a new template). A pooled body becomes the template (rolling).
   */
  private async parseShimBody(
    id: string,
    body: Buffer,
    lease: BodyLease | undefined,
  ): Promise<ParsedExposition> {
    return this.parseKnown(this.templates, id, body, {
      count: this.countShimParse,
      shape: renameRuntimeFamilies,
      lease,
      shared: true, // only resolveLabelCollisions follows, and it leaves shared families alone
    });
  }

  /**
   * Parse `body` against the template kept under `key` when it matches, else in full (a new template). `shape`
   * renames or drops families of a full parse before its template is made; checked bodies come out shaped.
   * With a `lease` (a pooled body), the template rolls: `body` itself becomes its bytes, held by a share of
   * the lease, and the body it replaces is let go. Without one, the template keeps a copy of the body.
   * `shared`: a checked body comes out with the template's own families (no copies; reparse), for a caller
   * that changes none of them.
   */
  private async parseKnown(
    kept: Map<string, Kept>,
    key: string,
    body: Buffer,
    opts: {
      count?: (mode: 'full' | 'checked') => void;
      shape?: (exp: ParsedExposition) => void;
      lease?: BodyLease;
      shared?: boolean;
    } = {},
  ): Promise<ParsedExposition> {
    const { count, shape, lease, shared = false } = opts;
    // Bodies that arrive together are checked in turns, not all in the poll phase that read them.
    if (this.slices.due) await this.slices.turn();
    const old = kept.get(key);
    if (old) {
      const quick = reparse(old.template, body, lease !== undefined, shared);
      if (quick) {
        if (lease) {
          old.hold?.release();
          old.hold = lease.share();
        }
        count?.('checked');
        return quick;
      }
      // A rolling template's plan was rewritten for a body that did not match: it is of no further use.
      if (lease) dropKept(kept, key);
    }
    count?.('full');
    const p = new ExpositionParser(body);
    while (!p.parseSome(PARSE_SLICE_LINES)) await this.slices.turn();
    const exp = p.result();
    shape?.(exp);
    const template = p.template(exp, lease === undefined);
    dropKept(kept, key); // a concurrent collection may have set one meanwhile
    kept.set(key, lease ? { template, hold: lease.share() } : { template });
    return exp;
  }

  private async runSource(
    src: ExtraSource,
    ctx: CollectContext,
    hardDeadline: number,
  ): Promise<ExpositionChunk[]> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const work = Promise.resolve().then(() => src.collect(ctx));
      work.catch(() => undefined); // a late rejection after the deadline must not go unhandled
      const late = new Promise<'late'>(resolve => {
        timer = setTimeout(() => resolve('late'), Math.max(0, hardDeadline - Date.now()));
      });
      const r = await Promise.race([work, late]);
      if (r === 'late') {
        this.logger.warn('extra metrics source missed the scrape deadline; ignored', { source: src.name });
        return [];
      }
      return r;
    } catch (err) {
      this.logger.warn('extra metrics source failed; ignored', { source: src.name, err });
      return [];
    } finally {
      clearTimeout(timer);
    }
  }

  private async chunkParts(
    lists: ExpositionChunk[][],
    aggregated: boolean,
  ): Promise<{ bySandbox: Map<string, MergePart[]>; unlabelled: MergePart[] }> {
    const bySandbox = new Map<string, MergePart[]>();
    const unlabelled: MergePart[] = [];
    const seen = new Map<string, number>();
    const used = new Set<string>();
    for (let s = 0; s < lists.length; s++) {
      const srcName = this.sources[s]?.name ?? String(s);
      for (const chunk of lists[s] ?? []) {
        // Sources repeat their texts' series too: the k-th chunk of a source for a sandbox is checked
        // against the last one parsed in full.
        const base = `${srcName}\u0000${chunk.sandbox?.id ?? ''}`;
        const k = seen.get(base) ?? 0;
        seen.set(base, k + 1);
        const key = `${base}\u0000${k}`;
        used.add(key);
        let exposition: ParsedExposition;
        try {
          const bytes = typeof chunk.text === 'string' ? Buffer.from(chunk.text, 'utf8') : chunk.text;
          exposition = await this.parseKnown(this.sourceTemplates, key, bytes);
        } catch (err) {
          dropKept(this.sourceTemplates, key);
          this.logger.warn('extra metrics source gave text that does not parse; chunk ignored', {
            source: srcName,
            err,
          });
          continue;
        }
        if (chunk.skipFamilies) dropFamilies(exposition, chunk.skipFamilies);
        if (chunk.renameRuntimeFamilies) {
          renameRuntimeFamilies(exposition);
          if (chunk.skipFamilies) dropFamilies(exposition, chunk.skipFamilies);
        }
        if (chunk.sandbox) {
          resolveLabelCollisions(exposition);
          const labels = sandboxLabelText(chunk.sandbox);
          const part: MergePart = {
            exposition,
            labels,
            sandboxId: chunk.sandbox.id,
            origin: `source:${srcName}`,
          };
          const list = bySandbox.get(chunk.sandbox.id);
          if (list) list.push(part);
          else bySandbox.set(chunk.sandbox.id, [part]);
        } else {
          unlabelled.push({ exposition, labels: '', origin: `source:${srcName}` });
        }
      }
    }
    // An aggregated collection saw every source chunk there is: templates of the others are stale.
    if (aggregated)
      for (const key of this.sourceTemplates.keys()) if (!used.has(key)) dropKept(this.sourceTemplates, key);
    return { bySandbox, unlabelled };
  }

  private async selfPart(): Promise<MergePart | undefined> {
    try {
      const text = (await this.deps.self.registry.metrics()) + this.deps.self.sandboxSeries.render();
      const exposition = await this.parseKnown(this.selfTemplate, 'self', Buffer.from(text, 'utf8'));
      return { exposition, labels: '', origin: 'self' };
    } catch (err) {
      this.logger.error('own metrics registry could not be rendered; left out', { err });
      return undefined;
    }
  }

  /** Per-sandbox self metrics; in an aggregated collection also removes the series of vanished sandboxes. */
  private recordOutcomes(results: readonly ShimResult[], aggregated: boolean): void {
    const series = this.deps.self.sandboxSeries;
    const current = new Set<string>();
    for (const { sb, outcome } of results) {
      current.add(sb.id);
      this.known.add(sb.id);
      series.record(sb, outcome);
      if (!outcome.ok) {
        const fields = { sandbox_id: sb.id, reason: outcome.reason, err: outcome.message };
        if (outcome.reason === 'gone' || outcome.reason === 'unsafe_skipped') {
          this.logger.debug('sandbox not scraped', fields);
        } else {
          this.logger.warn('sandbox scrape failed', fields);
        }
      }
    }
    if (!aggregated) return;
    series.retain(current);
    for (const id of this.known) {
      if (current.has(id)) continue;
      this.known.delete(id);
      dropKept(this.templates, id);
      this.lastSize.delete(id);
    }
  }
}
