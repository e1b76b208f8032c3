/**
 * A simulated shim management server: HTTP/1.1 on `<sandboxDir>/shim-monitor.sock`, behaving like the Go shim
 * (`net/http` ServeMux: `/metrics` any method, `/agent-url`, optional pprof/expvar, Go's 404) or the runtime-rs
 * shim (hyper: GET only, `URL NOT FOUND`). Faults (`sb.shimFault`) are read on every request and can change at
 * any time; call `applyFault()` after changing it so `gone` takes the socket away (or puts it back).
 *
 * Ticks: every `/metrics` request served advances this shim's tick by one (the first answer is tick 1), so
 * counters grow from one scrape to the next. Bodies are rendered into bytes from the sandbox's compiled template
 * (metrics-model.ts `BodyTemplate`), so serving one costs about what a real shim's encoder does.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import { usableUnixPath } from '../util/unix-path';
import type { Socket } from 'node:net';
import * as zlib from 'node:zlib';
import { shimBodyBuffer } from './metrics-rs';
import type { SimSandbox } from './types';

export interface ShimServerOptions {
  /** Upper bound for `/debug/pprof/profile?seconds=N` and `trace` waits (ms); default 2000. */
  profileCapMs?: number;
}

const GO_404 = '404 page not found\n';
const RS_404 = 'URL NOT FOUND';

export class SimShimServer {
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private ticks = 0;
  private stopped = false;

  private constructor(
    readonly sandbox: SimSandbox,
    private readonly opts: ShimServerOptions,
  ) {}

  /** Start serving on `sb.shimSocketPath` (unless the sandbox's fault is `gone`). */
  static async start(sb: SimSandbox, opts: ShimServerOptions = {}): Promise<SimShimServer> {
    const s = new SimShimServer(sb, opts);
    await s.applyFault();
    return s;
  }

  /** Number of `/metrics` answers produced so far (= the last tick served). */
  get tick(): number {
    return this.ticks;
  }

  get listening(): boolean {
    return this.server !== undefined;
  }

  /** Reconcile the socket with `sandbox.shimFault`: `gone` closes and unlinks it, anything else listens. */
  async applyFault(): Promise<void> {
    if (this.stopped) return;
    const gone = this.sandbox.shimFault?.kind === 'gone';
    if (gone && this.server) await this.closeServer();
    else if (!gone && !this.server) await this.listen();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.closeServer();
  }

  private async listen(): Promise<void> {
    const path = this.sandbox.shimSocketPath;
    try {
      fs.unlinkSync(path);
    } catch {
      /* not there */
    }
    const server = http.createServer((req, res) => this.handle(req, res));
    server.on('connection', sock => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
    });
    // A path over the sun_path limit (a long node directory) is bound through its directory's descriptor.
    const bindPath = usableUnixPath(path);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(bindPath.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      bindPath.release();
    }
    fs.chmodSync(path, 0o600);
    this.server = server;
  }

  private async closeServer(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>(resolve => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
    try {
      fs.unlinkSync(this.sandbox.shimSocketPath);
    } catch {
      /* already gone (e.g. the directory was removed) */
    }
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const fault = this.sandbox.shimFault;
    if (fault?.kind === 'hang') return; // accepted, never answered
    if (fault?.kind === 'slow') {
      this.later(fault.ms, () => this.route(req, res));
      return;
    }
    this.route(req, res);
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (res.destroyed) return;
    const url = new URL(req.url ?? '/', 'http://shim');
    const sb = this.sandbox;
    const go = sb.runtime === 'go';
    const method = req.method ?? 'GET';
    if (!go && method !== 'GET') return this.notFound(res);
    switch (url.pathname) {
      case '/metrics':
        return this.metrics(res);
      case '/agent-url':
        return this.send(res, 200, sb.agentUrl, go ? 'text/plain; charset=utf-8' : undefined);
    }
    if (go && sb.pprof && (url.pathname === '/debug/vars' || url.pathname.startsWith('/debug/pprof/'))) {
      return this.pprof(url, res);
    }
    return this.notFound(res);
  }

  private notFound(res: http.ServerResponse): void {
    if (this.sandbox.runtime === 'go') {
      res.setHeader('X-Content-Type-Options', 'nosniff');
      this.send(res, 404, GO_404, 'text/plain; charset=utf-8');
    } else {
      this.send(res, 404, RS_404);
    }
  }

  private send(res: http.ServerResponse, status: number, body: string | Buffer, contentType?: string): void {
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    const headers: http.OutgoingHttpHeaders = { 'Content-Length': buf.length };
    if (contentType) headers['Content-Type'] = contentType;
    res.writeHead(status, headers);
    res.end(buf);
  }

  private metrics(res: http.ServerResponse): void {
    const sb = this.sandbox;
    const fault = sb.shimFault;
    if (fault?.kind === 'http500') {
      this.send(res, 500, 'failed to get metrics: simulated shim failure\n', 'text/plain; charset=utf-8');
      return;
    }
    this.ticks++;
    const body = shimBodyBuffer(sb, this.ticks);
    const ct = sb.runtime === 'go' ? 'text/plain; charset=utf-8' : undefined;
    if (fault?.kind === 'disconnect') {
      const headers: http.OutgoingHttpHeaders = { 'Content-Length': body.length };
      if (ct) headers['Content-Type'] = ct;
      res.writeHead(200, headers);
      res.write(body.subarray(0, Math.floor(body.length / 3)), () => {
        res.socket?.destroy();
      });
      return;
    }
    this.send(res, 200, body, ct);
  }

  private cmdline(): string[] {
    return [
      '/usr/local/bin/containerd-shim-kata-v2',
      '-namespace',
      'k8s.io',
      '-address',
      '/run/containerd/containerd.sock',
      '-publish-binary',
      '/usr/local/bin/containerd',
      '-id',
      this.sandbox.id,
    ];
  }

  private pprof(url: URL, res: http.ServerResponse): void {
    const p = url.pathname;
    const cap = this.opts.profileCapMs ?? 2000;
    if (p === '/debug/vars') {
      const memstats = {
        Alloc: 4718592,
        TotalAlloc: 98566144,
        Sys: 20774920,
        Mallocs: 912345,
        Frees: 889012,
        HeapAlloc: 4718592,
        HeapSys: 12156928,
        HeapIdle: 6152192,
        HeapInuse: 6004736,
        HeapObjects: 23333,
        NumGC: 52,
        GCCPUFraction: 0.0000213,
      };
      this.send(
        res,
        200,
        JSON.stringify({ cmdline: this.cmdline(), memstats }, null, 0) + '\n',
        'application/json; charset=utf-8',
      );
      return;
    }
    const name = p.slice('/debug/pprof/'.length);
    if (name === '') {
      this.send(res, 200, pprofIndex(), 'text/html; charset=utf-8');
      return;
    }
    if (name === 'cmdline') {
      this.send(res, 200, this.cmdline().join('\x00'), 'text/plain; charset=utf-8');
      return;
    }
    if (name === 'symbol') {
      this.send(res, 200, 'num_symbols: 1\n', 'text/plain; charset=utf-8');
      return;
    }
    if (name === 'profile' || name === 'trace') {
      const secs = Number(url.searchParams.get('seconds') ?? (name === 'profile' ? '30' : '1'));
      const wait = Math.min(Number.isFinite(secs) && secs > 0 ? secs * 1000 : 0, cap);
      this.later(wait, () => {
        if (res.destroyed) return;
        res.setHeader('X-Content-Type-Options', 'nosniff');
        res.setHeader('Content-Disposition', `attachment; filename="${name}"`);
        this.send(res, 200, fakeProfile(this.sandbox.id), 'application/octet-stream');
      });
      return;
    }
    if (PROFILES.includes(name)) {
      if (url.searchParams.get('debug') === '1') {
        this.send(
          res,
          200,
          `${name} profile: total 12\n12 @ 0x43c3a5 0x44fd0c 0x46ba61\n`,
          'text/plain; charset=utf-8',
        );
      } else {
        res.setHeader('Content-Disposition', `attachment; filename="${name}"`);
        this.send(res, 200, fakeProfile(name), 'application/octet-stream');
      }
      return;
    }
    res.setHeader('X-Content-Type-Options', 'nosniff');
    this.send(res, 404, 'Unknown profile\n', 'text/plain; charset=utf-8');
  }
}

const PROFILES = ['allocs', 'block', 'goroutine', 'heap', 'mutex', 'threadcreate'];

function fakeProfile(seed: string): Buffer {
  const raw = Buffer.alloc(2048);
  for (let i = 0; i < raw.length; i++) raw[i] = (seed.charCodeAt(i % seed.length) * (i + 7)) & 0xff;
  return zlib.gzipSync(raw);
}

/** The `net/http/pprof` index page (shape and links as Go renders them). */
export function pprofIndex(): string {
  const rows: Array<[number, string, string]> = [
    [312, 'allocs', 'allocs?debug=1'],
    [0, 'block', 'block?debug=1'],
    [0, 'cmdline', 'cmdline'],
    [48, 'goroutine', 'goroutine?debug=1'],
    [312, 'heap', 'heap?debug=1'],
    [0, 'mutex', 'mutex?debug=1'],
    [0, 'profile', 'profile'],
    [14, 'threadcreate', 'threadcreate?debug=1'],
    [0, 'trace', 'trace'],
  ];
  const table = rows
    .map(([n, name, href]) => `<tr><td>${n}</td><td><a href='${href}'>${name}</a></td></tr>\n`)
    .join('');
  return (
    '<html>\n<head>\n<title>/debug/pprof/</title>\n</head>\n<body>\n/debug/pprof/\n<br>\n' +
    '<p>Set debug=1 as a query parameter to export in legacy text format</p>\n<br>\nTypes of profiles available:\n' +
    `<table>\n<thead><td>Count</td><td>Profile</td></thead>\n${table}</table>\n` +
    '<a href="goroutine?debug=2">full goroutine stack dump</a>\n<br>\n</body>\n</html>\n'
  );
}
