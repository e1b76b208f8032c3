/**
 * The HTTP surface. `createApp(deps)` builds an express app from ONE endpoint table (which also renders
 * the index page) and never listens: main.ts does.
 */
import type * as http from 'node:http';
import * as path from 'node:path';
import { pipeline } from 'node:stream';
import express from 'express';
import { getErrorMessage, isKataMonitorError } from '../errors';
import type { Logger } from '../log';
import type { SelfMetrics } from '../metrics/self-metrics';
import { SHIM_SOCKET_NAME, ShimError, shimRequest, shimStream } from '../shim/shim-client';
import { PPROF_NAME_RE, planDebugRequest } from './debug-plan';
import { httpStatusFor } from './error-status';
import { wantsHtml } from './negotiate';
import { rewritePprofIndex } from './pprof-rewrite';
import { resolveSandboxParam, type SandboxLookup } from './sandbox-param';

export type NodeHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export interface AppDeps {
  logger: Logger;
  self: SelfMetrics;
  /** The discovered sandboxes (SandboxStore). */
  sandboxes: SandboxLookup;
  /** Reasons the daemon is not ready; empty when ready. */
  readiness: () => string[];
  config: { shimTimeoutMs: number; shimMaxBytes: number; enableDebug?: boolean };
  /** When given, serves /metrics (the aggregated handler); otherwise /metrics is the daemon's own metrics. */
  metricsHandler?: NodeHandler;
}

export const TEXT = 'text/plain; charset=utf-8';
export const PROM_TEXT = 'text/plain; version=0.0.4; charset=utf-8';

export interface Endpoint {
  path: string;
  description: string;
  /** Listed on the index page (aliases and patterns are not). */
  listed: boolean;
  /** Extra route paths served by the same handler. */
  aliases?: string[];
  handler: express.RequestHandler;
}

function send(res: http.ServerResponse, status: number, contentType: string, body: string | Buffer): void {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** Error answers are text bodies ending with a newline. */
function sendError(res: http.ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const h of res.getHeaderNames()) res.removeHeader(h);
  send(res, status, TEXT, message.endsWith('\n') ? message : message + '\n');
}

function sendCaught(res: http.ServerResponse, err: unknown): void {
  sendError(res, isKataMonitorError(err) ? httpStatusFor(err.code) : 500, getErrorMessage(err));
}

const LINKED = new Set(['/metrics', '/sandboxes']);

/** Upstream `indexPageText`: header line, then `%-Ns: %s` with N = longest path + 3. */
export function renderIndexText(endpoints: readonly Pick<Endpoint, 'path' | 'description'>[]): string {
  const width = Math.max(...endpoints.map(e => e.path.length)) + 3;
  return (
    'Available HTTP endpoints:\n' + endpoints.map(e => `${e.path.padEnd(width)}: ${e.description}\n`).join('')
  );
}

/** Upstream `indexPageHTML`. */
export function renderIndexHtml(endpoints: readonly Pick<Endpoint, 'path' | 'description'>[]): string {
  const items = endpoints.map(e => {
    const name = LINKED.has(e.path) ? `<a href='${e.path}'>${e.path}</a>` : e.path;
    return `<li><b>${name}</b>: ${e.description}\n</li>`;
  });
  return `<h1>Available HTTP endpoints:</h1>\n<ul>${items.join('')}</ul>`;
}

/** `/sandboxes` HTML (upstream format; ids are validated, so they need no escaping). */
export function renderSandboxesHtml(ids: readonly string[], debug = true): string {
  const items = ids.map(
    id =>
      `<li>${id}: ${debug ? `<a href='/debug/pprof/?sandbox=${id}'>pprof</a>, ` : ''}<a href='/metrics?sandbox=${id}'>metrics</a>, <a href='/agent-url?sandbox=${id}'>agent-url</a></li>\n`,
  );
  return `<h1>Sandbox list</h1>\n<ul>\n${items.join('')}</ul>\n`;
}

const pprofDesc = (p: string): string => `Golang pprof \`${p}\` endpoint for kata runtime shim process.`;

export function createApp(deps: AppDeps): express.Express {
  const log = deps.logger.child({ component: 'http' });
  const debugOn = deps.config.enableDebug !== false;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  const ownMetrics: express.RequestHandler = async (_req, res) => {
    deps.self.scrapeCount.inc();
    const start = performance.now();
    try {
      const text = await deps.self.registry.metrics();
      send(res, 200, PROM_TEXT, text);
    } finally {
      // upstream kata_monitor_scrape_durations_histogram_milliseconds: whole request, milliseconds
      deps.self.scrapeDurationsMs.observe(performance.now() - start);
    }
  };

  const metrics: express.RequestHandler = deps.metricsHandler
    ? (req, res) => (deps.metricsHandler as NodeHandler)(req, res)
    : ownMetrics;

  const sandboxes: express.RequestHandler = (req, res) => {
    const ids = deps.sandboxes.list().map(s => s.id);
    if (wantsHtml(req.headers.accept))
      send(res, 200, 'text/html; charset=utf-8', renderSandboxesHtml(ids, debugOn));
    else send(res, 200, TEXT, ids.map(id => id + '\n').join(''));
  };

  const agentUrl: express.RequestHandler = async (req, res) => {
    try {
      const sb = resolveSandboxParam(req.query.sandbox, deps.sandboxes);
      const socket = path.join(sb.dir, SHIM_SOCKET_NAME);
      const r = await shimRequest(socket, '/agent-url', {
        timeoutMs: deps.config.shimTimeoutMs,
        maxBytes: 64 * 1024,
      });
      const url = r.body.toString('utf8').trim();
      if (!url) {
        // runtime-rs answers 200 with an empty body when it has no agent URL.
        throw new ShimError('SHIM_PROTOCOL', 'parse', `shim of sandbox ${sb.id} returned an empty agent URL`);
      }
      send(res, 200, TEXT, url + '\n');
    } catch (err) {
      if (err instanceof ShimError) log.debug('agent-url failed', { err, reason: err.reason });
      sendCaught(res, err);
    }
  };

  const debugProxy: express.RequestHandler = async (req, res) => {
    let sb;
    try {
      sb = resolveSandboxParam(req.query.sandbox, deps.sandboxes);
    } catch (err) {
      res.setHeader('X-Go-Pprof', '1');
      sendCaught(res, err);
      return;
    }
    const search = req.originalUrl.includes('?') ? req.originalUrl.slice(req.originalUrl.indexOf('?')) : '';
    const plan = planDebugRequest(req.path, search);
    const socket = path.join(sb.dir, SHIM_SOCKET_NAME);
    let upstream: http.IncomingMessage;
    try {
      upstream = await shimStream(socket, plan.upstreamPath, { timeoutMs: plan.timeoutMs });
    } catch (err) {
      const reason = err instanceof ShimError ? `${err.reason}: ${err.message}` : getErrorMessage(err);
      sendError(res, 502, `failed to request ${plan.upstreamPath} through ${socket}: ${reason}`);
      return;
    }
    // The client went away: stop the shim's work (a profile can run for minutes).
    res.on('close', () => upstream.destroy());
    res.statusCode = upstream.statusCode ?? 502;
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (req.path === '/debug/pprof/symbol') res.setHeader('Content-Type', TEXT);
    if (req.path === '/debug/pprof/trace') {
      res.setHeader('Content-Type', 'application/octet-stream');
      res.setHeader('Content-Disposition', 'attachment; filename="trace"');
    }
    const ct = upstream.headers['content-type'];
    const cd = upstream.headers['content-disposition'];
    if (ct) res.setHeader('Content-Type', ct);
    if (cd) res.setHeader('Content-Disposition', cd);
    if (plan.isIndex && res.statusCode === 200) {
      const chunks: Buffer[] = [];
      let size = 0;
      upstream.on('data', (c: Buffer) => {
        size += c.length;
        if (size > deps.config.shimMaxBytes) upstream.destroy(new Error('pprof index too large'));
        else chunks.push(c);
      });
      upstream.on('error', err =>
        sendError(res, 502, `failed to read ${plan.upstreamPath}: ${getErrorMessage(err)}`),
      );
      upstream.on('end', () => {
        if (!upstream.complete) {
          sendError(res, 502, `shim closed ${plan.upstreamPath} mid-response`);
          return;
        }
        const html = rewritePprofIndex(Buffer.concat(chunks).toString('utf8'), sb.id);
        res.setHeader('Content-Length', Buffer.byteLength(html));
        res.end(html);
      });
      return;
    }
    pipeline(upstream, res, err => {
      if (err && !res.writableEnded)
        log.debug('debug proxy stream ended early', { err, path: plan.upstreamPath });
    });
  };

  const healthz: express.RequestHandler = (_req, res) => send(res, 200, TEXT, 'ok\n');
  const readyz: express.RequestHandler = (_req, res) => {
    const problems = deps.readiness();
    if (problems.length === 0) send(res, 200, TEXT, 'ok\n');
    else send(res, 503, TEXT, 'not ready:\n' + problems.map(p => p + '\n').join(''));
  };

  const endpoints: Endpoint[] = [
    { path: '/metrics', description: 'Get metrics from sandboxes.', listed: true, handler: metrics },
    {
      path: '/sandboxes',
      description: 'List all Kata Containers sandboxes.',
      listed: true,
      handler: sandboxes,
    },
    { path: '/agent-url', description: 'Get sandbox agent URL.', listed: true, handler: agentUrl },
    ...(debugOn
      ? [
          { path: '/debug/vars', description: pprofDesc('/debug/vars'), listed: true, handler: debugProxy },
          {
            path: '/debug/pprof/',
            description: pprofDesc('/debug/pprof/'),
            listed: true,
            handler: debugProxy,
          },
          ...['cmdline', 'profile', 'symbol', 'trace'].map(n => ({
            path: `/debug/pprof/${n}`,
            description: pprofDesc(`/debug/pprof/${n}`),
            listed: true,
            handler: debugProxy,
          })),
        ]
      : []),
    {
      path: '/healthz',
      description: 'Liveness: the process answers (touches no shim).',
      listed: true,
      aliases: ['/-/healthy'],
      handler: healthz,
    },
    {
      path: '/readyz',
      description: 'Readiness: every sandbox root is watched (503 with the reasons otherwise).',
      listed: true,
      aliases: ['/-/ready'],
      handler: readyz,
    },
  ];
  const listed = endpoints.filter(e => e.listed);

  app.get('/', (req, res) => {
    if (wantsHtml(req.headers.accept)) send(res, 200, 'text/html; charset=utf-8', renderIndexHtml(listed));
    else send(res, 200, TEXT, renderIndexText(listed));
  });
  for (const e of endpoints) {
    for (const p of [e.path, ...(e.aliases ?? [])]) app.all(p, e.handler);
  }
  // Named profiles (heap, goroutine, allocs, …) go through the shim's pprof index handler.
  app.all('/debug/pprof/:name', (req, res, next) => {
    if (!debugOn) {
      next();
      return;
    }
    const name = req.params.name;
    if (typeof name !== 'string' || !PPROF_NAME_RE.test(name)) {
      next();
      return;
    }
    void debugProxy(req, res, next);
  });

  app.use((_req: express.Request, res: express.Response) => {
    send(res, 404, TEXT, '404 page not found\nSee / for the available endpoints.\n');
  });
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    log.error('request failed', { err });
    sendCaught(res, err);
  });
  return app;
}
