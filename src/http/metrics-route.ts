/**
 * GET /metrics: the aggregated exposition (or one sandbox's with `?sandbox=`), streamed family by family,
 * gzip-compressed when the client accepts it.
 *
 * Mounted by the app as `app.get('/metrics', createMetricsHandler(deps))`; works on plain node http too.
 */
import type * as http from 'node:http';
import { pipeline } from 'node:stream';
import * as zlib from 'node:zlib';
import { getErrorMessage } from '../errors';
import type { Logger } from '../log';
import { Collector, type Collection, type FetchShimMetrics } from '../metrics/collect';
import { writeFamilies } from '../metrics/exposition-write';
import { parseFamilyFilter, selectFamilies } from '../metrics/merge';
import type { SelfMetrics } from '../metrics/self-metrics';
import type { ExtraSource } from '../metrics/source';
import type { SandboxInfo } from '../types';
import type { CpuSlices } from '../util/cpu-slices';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
/** Subtracted from Prometheus' scrape timeout so the answer arrives before Prometheus gives up. */
export const SCRAPE_TIMEOUT_MARGIN_MS = 500;
/** Never plan a collection shorter than this, whatever the header says. */
export const MIN_COLLECTION_MS = 100;
/**
 * gzip level: Prometheus text compresses ~15x even at level 1, while level 6 (zlib's default) costs several
 * times the CPU on a 20 MB response (and runs on the libuv pool of a 2-core node).
 */
export const DEFAULT_GZIP_LEVEL = 1;
/**
 * Bytes of text per write to the response (or to the gzip stream in front of it), and between two turns of
 * the event loop. Every write has a fixed cost: a write request, callbacks and a `drain` wait on a socket; one
 * compression job, a thread hop, on the libuv pool for gzip. Streaming the 22 MB response of 100 sandboxes
 * through gzip alone took 68 against 77 ms of CPU (median of six rounds) in 256 KB rather than 64 KB writes;
 * in the daemon the difference is inside the noise. Filling one takes well under a millisecond, so other
 * requests still get their turn.
 */
export const RESPONSE_CHUNK_BYTES = 256 * 1024;
const WRITE_OPTIONS = {
  recycleChunks: true,
  chunkChars: RESPONSE_CHUNK_BYTES,
  yieldEveryChars: RESPONSE_CHUNK_BYTES,
} as const;

const DEFAULT_SANDBOX_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface MetricsRouteDeps {
  logger: Logger;
  self: SelfMetrics;
  /** Current sandboxes (any order); the route sorts by id. */
  listSandboxes(): SandboxInfo[];
  config: {
    shimTimeoutMs: number;
    scrapeConcurrency: number;
    shimMaxBytes: number;
    scrapeUnsafeShims: boolean;
  };
  fetchShimMetrics?: FetchShimMetrics;
  extraSources?: ExtraSource[];
  isValidSandboxId?(id: string): boolean;
  /** zlib level for gzip responses (default DEFAULT_GZIP_LEVEL). */
  gzipLevel?: number;
  /** CPU slices shared with the extra sources (cpu-slices.ts; default: the collector's own). */
  slices?: CpuSlices;
}

/** Whether `Accept-Encoding` accepts gzip (q > 0 for `gzip`, or for `*` when gzip is not listed). Pure. */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const value = Array.isArray(header) ? header.join(',') : header;
  let gzipQ: number | undefined;
  let starQ: number | undefined;
  for (const item of value.split(',')) {
    const [coding = '', ...params] = item.split(';');
    const name = coding.trim().toLowerCase();
    if (name !== 'gzip' && name !== 'x-gzip' && name !== '*') continue;
    let q = 1;
    for (const p of params) {
      const [k = '', v = ''] = p.split('=');
      if (k.trim().toLowerCase() === 'q') {
        const n = Number(v.trim());
        q = Number.isFinite(n) ? n : 0;
      }
    }
    if (name === '*') starQ = Math.max(starQ ?? 0, q);
    else gzipQ = Math.max(gzipQ ?? 0, q);
  }
  if (gzipQ !== undefined) return gzipQ > 0;
  return starQ !== undefined && starQ > 0;
}

/** The collection budget: min(shimTimeoutMs, header × 1000 − margin), at least MIN_COLLECTION_MS. Pure. */
/**
 * How long extra sources may take (the agent fallback for a shim that failed at its deadline): the rest of
 * Prometheus' scrape timeout minus the margin when it says, else the shim timeout plus AGENT_FALLBACK_MS.
 */
export function sourcesTimeoutMs(
  collectionMs: number,
  scrapeTimeoutHeader: string | string[] | undefined,
): number {
  const raw = Array.isArray(scrapeTimeoutHeader) ? scrapeTimeoutHeader[0] : scrapeTimeoutHeader;
  const seconds = raw === undefined || raw.trim() === '' ? NaN : Number(raw);
  if (Number.isFinite(seconds) && seconds > 0) {
    return Math.max(collectionMs, Math.floor(seconds * 1000 - SCRAPE_TIMEOUT_MARGIN_MS));
  }
  return collectionMs + AGENT_FALLBACK_MS;
}

/** Extra time for the agent fallback when the client gives no scrape timeout, ms. */
export const AGENT_FALLBACK_MS = 2000;

export function collectionTimeoutMs(
  shimTimeoutMs: number,
  scrapeTimeoutHeader: string | string[] | undefined,
): number {
  let ms = shimTimeoutMs;
  const raw = Array.isArray(scrapeTimeoutHeader) ? scrapeTimeoutHeader[0] : scrapeTimeoutHeader;
  if (raw !== undefined && raw.trim() !== '') {
    const seconds = Number(raw);
    if (Number.isFinite(seconds) && seconds > 0) ms = Math.min(ms, seconds * 1000 - SCRAPE_TIMEOUT_MARGIN_MS);
  }
  return Math.max(MIN_COLLECTION_MS, Math.floor(ms));
}

function plain(res: http.ServerResponse, status: number, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(text.endsWith('\n') ? text : text + '\n');
}

export function createMetricsHandler(
  deps: MetricsRouteDeps,
): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const logger = deps.logger.child({ component: 'metrics-route' });
  const collector = new Collector({
    logger: deps.logger,
    self: deps.self,
    config: deps.config,
    fetchShimMetrics: deps.fetchShimMetrics,
    extraSources: deps.extraSources,
    ...(deps.slices ? { slices: deps.slices } : {}),
  });
  const isValidId = deps.isValidSandboxId ?? ((id: string) => DEFAULT_SANDBOX_ID.test(id));
  const gzipLevel = deps.gzipLevel ?? DEFAULT_GZIP_LEVEL;

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    deps.self.scrapeCount.inc();
    const url = new URL(req.url ?? '/', 'http://x');
    const prefixes = parseFamilyFilter(url.searchParams.getAll('filter_family'));
    const timeoutMs = collectionTimeoutMs(
      deps.config.shimTimeoutMs,
      req.headers['x-prometheus-scrape-timeout-seconds'],
    );
    const extraMs = sourcesTimeoutMs(timeoutMs, req.headers['x-prometheus-scrape-timeout-seconds']);
    const sandboxId = url.searchParams.get('sandbox');

    let collection: Collection;
    let part: ((p: { sandboxId?: string }) => boolean) | undefined;
    let shimFailure: string | undefined;
    if (sandboxId !== null) {
      if (!isValidId(sandboxId)) {
        plain(res, 400, `invalid sandbox id ${JSON.stringify(sandboxId.slice(0, 200))}`);
        return;
      }
      const sb = deps.listSandboxes().find(s => s.id === sandboxId);
      if (!sb) {
        plain(res, 404, `unknown sandbox ${sandboxId}`);
        return;
      }
      collection = await collector.collectOne(sb, timeoutMs, extraMs);
      part = p => p.sandboxId === sandboxId;
      const outcome = collection.outcomes.get(sandboxId);
      if (outcome && !outcome.ok) shimFailure = `${outcome.reason}: ${outcome.message}`;
    } else {
      collection = await collector.collectAll(deps.listSandboxes(), timeoutMs, extraMs);
    }
    try {
      await respond(req, res, collection, prefixes, part, shimFailure, sandboxId);
    } finally {
      collection.release();
    }
  }

  async function respond(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    collection: Collection,
    prefixes: string[] | undefined,
    part: ((p: { sandboxId?: string }) => boolean) | undefined,
    shimFailure: string | undefined,
    sandboxId: string | null,
  ): Promise<void> {
    const families = selectFamilies(collection.families, { prefixes, part });
    if (shimFailure !== undefined) {
      // The shim failed. What the agent fallback brought for the sandbox is still served (with the failure
      // in a header); with nothing at all, the failure is the answer.
      if (families.length === 0) {
        plain(res, 502, `sandbox ${sandboxId ?? ''} could not be scraped (${shimFailure})`);
        return;
      }
      res.setHeader('X-Kata-Monitor-Shim-Error', shimFailure.replace(/[\r\n]+/g, ' ').slice(0, 500));
    }
    if (res.destroyed || res.writableEnded) return; // the client went away while we collected

    const gzip = acceptsGzip(req.headers['accept-encoding']);
    res.statusCode = 200;
    res.setHeader('Content-Type', METRICS_CONTENT_TYPE);
    res.setHeader('Vary', 'Accept-Encoding');
    res.setHeader('Cache-Control', 'no-store');
    if (gzip) res.setHeader('Content-Encoding', 'gzip');
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (!gzip) {
      await writeFamilies(families, res, WRITE_OPTIONS);
      if (!res.destroyed) res.end();
      return;
    }
    const gz = zlib.createGzip({ level: gzipLevel });
    const piped = new Promise<void>(resolve => {
      pipeline(gz, res, err => {
        if (err && !res.destroyed) logger.debug('gzip response stream failed', { err });
        resolve();
      });
    });
    await writeFamilies(families, gz, WRITE_OPTIONS);
    if (!gz.destroyed) gz.end();
    await piped;
  }

  return (req, res) => {
    const start = process.hrtime.bigint();
    // A client that disconnects must not leave an unhandled 'error' on the response.
    res.on('error', err => logger.debug('metrics response error', { err }));
    handle(req, res)
      .catch((err: unknown) => {
        logger.error('metrics request failed', { err: getErrorMessage(err) });
        plain(res, 500, `internal error: ${getErrorMessage(err)}`);
      })
      .finally(() => {
        deps.self.scrapeDurationsMs.observe(Number(process.hrtime.bigint() - start) / 1e6);
      });
  };
}
