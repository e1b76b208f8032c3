import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import {
  acceptsGzip,
  collectionTimeoutMs,
  createMetricsHandler,
  RESPONSE_CHUNK_BYTES,
  type MetricsRouteDeps,
} from '../../src/http/metrics-route';
import { silentLogger } from '../../src/log';
import { defaultFetchShimMetrics } from '../../src/metrics/collect';
import { parseExposition } from '../../src/metrics/exposition-parse';
import { createSelfMetrics, type SelfMetrics } from '../../src/metrics/self-metrics';
import type { ExtraSource } from '../../src/metrics/source';
import type { SandboxInfo } from '../../src/types';
import { findBinary, rmrf, tmpDir, TEST_BUILD } from '../helpers/util';
import { startFakeShim, type FakeBehaviour, type FakeShim } from './fake-shim';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'metrics');
const GO_BODY = fs.readFileSync(path.join(FIXTURES, 'go-shim.prom'), 'utf8');
const RS_BODY = fs.readFileSync(path.join(FIXTURES, 'rs-shim.prom'), 'utf8');
const BUILD = TEST_BUILD;
const MAX_BYTES = 64 * 1024;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function get(port: number, urlPath: string, headers: http.OutgoingHttpHeaders = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, headers, agent: false }, res => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let buf = Buffer.concat(chunks);
        if (res.headers['content-encoding'] === 'gzip') buf = zlib.gunzipSync(buf);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf.toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** Value of the first sample line starting with `prefix` (name plus the start of its labels). */
function valueOf(body: string, prefix: string): string | undefined {
  const line = body.split('\n').find(l => l.startsWith(prefix));
  return line?.slice(line.lastIndexOf(' ') + 1);
}

function promtoolCheck(body: string): { status: number | null; output: string } {
  const bin = findBinary('promtool') ?? '/usr/bin/promtool';
  const r = spawnSync(bin, ['check', 'metrics'], { input: body, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('/metrics route', () => {
  let root: string;
  let shims: FakeShim[];
  let servers: http.Server[];
  let self: SelfMetrics;

  beforeEach(() => {
    root = tmpDir('kmr-');
    shims = [];
    servers = [];
    self = createSelfMetrics(BUILD, { defaultMetrics: false });
  });

  afterEach(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise(resolve => s.close(resolve));
    }
    for (const s of shims) await s.close();
    rmrf(root);
  });

  async function shim(
    id: string,
    behaviour: FakeBehaviour,
    extra: Partial<SandboxInfo> = {},
  ): Promise<FakeShim> {
    const s = await startFakeShim(root, id, behaviour, extra);
    shims.push(s);
    return s;
  }

  async function serve(overrides: Partial<MetricsRouteDeps> = {}): Promise<number> {
    const deps: MetricsRouteDeps = {
      logger: silentLogger,
      self,
      listSandboxes: () => shims.map(s => s.sb),
      config: {
        shimTimeoutMs: 2000,
        scrapeConcurrency: 4,
        shimMaxBytes: MAX_BYTES,
        scrapeUnsafeShims: false,
      },
      ...overrides,
    };
    const server = http.createServer(createMetricsHandler(deps));
    servers.push(server);
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }

  it('aggregates shims with sandbox labels, renames, own families, and the right headers', async () => {
    await shim(
      'sb-b',
      { kind: 'body', body: RS_BODY },
      { cri: { uid: 'u-b', name: 'pod-b', namespace: 'ns' } },
    );
    await shim('sb-a', { kind: 'body', body: GO_BODY });
    const port = await serve();
    const r = await get(port, '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(r.headers['vary']).toBe('Accept-Encoding');
    expect(r.headers['content-encoding']).toBeUndefined();
    expect(r.body).toContain(
      'kata_shim_go_goroutines{sandbox_id="sb-a",cri_uid="",cri_name="",cri_namespace=""} 37\n',
    );
    expect(r.body).not.toMatch(/^go_goroutines/m);
    expect(r.body).toContain(
      'kata_shim_threads{sandbox_id="sb-b",cri_uid="u-b",cri_name="pod-b",cri_namespace="ns"} 6\n',
    );
    // sandboxes in id order within a family
    expect(r.body.indexOf('kata_shim_fds{sandbox_id="sb-a"')).toBeLessThan(
      r.body.indexOf('kata_shim_fds{sandbox_id="sb-b"'),
    );
    expect(r.body).toContain('kata_monitor_scrape_count 1\n');
    expect(valueOf(r.body, 'kata_monitor_sandbox_up{sandbox_id="sb-a"')).toBe('1');
    expect(valueOf(r.body, 'kata_monitor_running_shim_count')).toBe('2');
    const names = r.body
      .split('\n')
      .filter(l => l.startsWith('# TYPE '))
      .map(l => l.split(' ')[2]!);
    expect(names).toEqual([...names].sort());
    expect(new Set(names).size).toBe(names.length);
    expect(() => parseExposition(r.body)).not.toThrow();
  });

  it('gives byte-identical shim output on two scrapes of unchanged shims', async () => {
    await shim('sb-b', { kind: 'body', body: RS_BODY });
    await shim('sb-a', { kind: 'body', body: GO_BODY });
    await shim('sb-c', { kind: 'body', body: GO_BODY });
    const port = await serve();
    const strip = (body: string): string =>
      body
        .split('\n')
        .filter(l => !l.includes('kata_monitor_'))
        .join('\n');
    const first = await get(port, '/metrics');
    const second = await get(port, '/metrics', { 'Accept-Encoding': 'gzip' });
    expect(strip(second.body)).toBe(strip(first.body));
    expect(strip(first.body).length).toBeGreaterThan(10_000);
  });

  it('passes non-ASCII label values and HELP through as UTF-8, plain and gzip, next to ASCII shims', async () => {
    const accented =
      '# HELP acc_info Gr\u00fc\u00dfe \u6f22.\n# TYPE acc_info gauge\nacc_info{pod="caf\u00e9",x="\u6f22\u5b57"} 1\n';
    await shim('sb-a', { kind: 'body', body: GO_BODY });
    await shim('sb-b', { kind: 'body', body: accented });
    await shim('sb-c', { kind: 'body', body: GO_BODY });
    const port = await serve();
    for (const headers of [{}, { 'Accept-Encoding': 'gzip' }]) {
      const r = await get(port, '/metrics', headers);
      expect(r.body).toContain('# HELP acc_info Gr\u00fc\u00dfe \u6f22.\n');
      expect(r.body).toContain('acc_info{pod="caf\u00e9",x="\u6f22\u5b57",sandbox_id="sb-b",');
      expect(r.body).toContain('kata_shim_fds{sandbox_id="sb-a"');
      expect(r.body).not.toContain('\ufffd');
    }
  });

  it('negotiates gzip (q=0 means no, * means yes)', async () => {
    await shim('sb-a', { kind: 'body', body: GO_BODY });
    const port = await serve();
    const gz = await get(port, '/metrics', { 'Accept-Encoding': 'gzip, deflate' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gz.headers['vary']).toBe('Accept-Encoding');
    expect(gz.body).toContain('kata_shim_fds{sandbox_id="sb-a"');
    expect(
      (await get(port, '/metrics', { 'Accept-Encoding': 'gzip;q=0' })).headers['content-encoding'],
    ).toBeUndefined();
    expect((await get(port, '/metrics', { 'Accept-Encoding': '*' })).headers['content-encoding']).toBe(
      'gzip',
    );
    expect(
      (await get(port, '/metrics', { 'Accept-Encoding': 'identity' })).headers['content-encoding'],
    ).toBeUndefined();
  });

  it('writes a large response in chunks of up to RESPONSE_CHUNK_BYTES, plain and through gzip', async () => {
    // Six shims of about 55 KB: a response of about 550 KB once the sandbox labels are in.
    let body = '# TYPE big_series gauge\n';
    for (let i = 0; body.length < 55_000; i++) body += `big_series{k="series-${i}"} ${i}\n`;
    for (let i = 0; i < 6; i++) await shim(`sb-${i}`, { kind: 'body', body });
    const port = await serve();
    const plainWrites: number[] = [];
    const gzipWrites: number[] = [];
    const resWrite = http.ServerResponse.prototype.write;
    const gzWrite = zlib.Gzip.prototype.write;
    // Only the /metrics responses (the fake shims' responses do not say Vary).
    const plainSpy = jest.spyOn(http.ServerResponse.prototype, 'write').mockImplementation(function (
      this: http.ServerResponse,
      ...args: unknown[]
    ) {
      if (this.getHeader('vary') === 'Accept-Encoding' && Buffer.isBuffer(args[0]))
        plainWrites.push(args[0].length);
      return (resWrite as (...a: unknown[]) => boolean).apply(this, args);
    });
    const gzipSpy = jest.spyOn(zlib.Gzip.prototype, 'write').mockImplementation(function (
      this: zlib.Gzip,
      ...args: unknown[]
    ) {
      if (Buffer.isBuffer(args[0])) gzipWrites.push(args[0].length);
      return (gzWrite as (...a: unknown[]) => boolean).apply(this, args);
    });
    try {
      const plain = await get(port, '/metrics');
      const plainChunks = plainWrites.splice(0); // the gzip response writes its output to res too
      const gz = await get(port, '/metrics', { 'Accept-Encoding': 'gzip' });
      expect(gz.headers['content-encoding']).toBe('gzip');
      for (const [writes, r] of [
        [plainChunks, plain],
        [gzipWrites, gz],
      ] as const) {
        expect(Buffer.byteLength(r.body)).toBeGreaterThan(2 * RESPONSE_CHUNK_BYTES);
        expect(writes.reduce((a, b) => a + b, 0)).toBe(Buffer.byteLength(r.body));
        expect(Math.max(...writes)).toBeLessThanOrEqual(RESPONSE_CHUNK_BYTES);
        // Every chunk but the last is filled to within a line of the size.
        for (const n of writes.slice(0, -1)) expect(n).toBeGreaterThan(RESPONSE_CHUNK_BYTES - 1024);
      }
    } finally {
      plainSpy.mockRestore();
      gzipSpy.mockRestore();
    }
  });

  it('filters families by prefix, each once, own families included', async () => {
    await shim('sb-a', { kind: 'body', body: GO_BODY });
    const port = await serve();
    const r = await get(port, '/metrics?filter_family=kata_agent,kata_agent_io,kata_monitor_scrape_count');
    const types = r.body.split('\n').filter(l => l.startsWith('# TYPE '));
    expect(types).toEqual([
      '# TYPE kata_agent_io_stat gauge',
      '# TYPE kata_agent_scrape_count counter',
      '# TYPE kata_monitor_scrape_count counter',
    ]);
  });

  it('serves one sandbox with ?sandbox= (200 / 404 / 400)', async () => {
    await shim('sb-a', { kind: 'body', body: GO_BODY });
    const b = await shim('sb-b', { kind: 'body', body: RS_BODY });
    const port = await serve();
    const r = await get(port, '/metrics?sandbox=sb-b', { 'Accept-Encoding': 'gzip' });
    expect(r.status).toBe(200);
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(r.body).toContain(
      'kata_shim_threads{sandbox_id="sb-b",cri_uid="",cri_name="",cri_namespace=""} 6\n',
    );
    expect(r.body).not.toContain('sb-a');
    expect(r.body).not.toContain('kata_monitor_');
    expect(b.requests).toBe(1);
    expect(shims[0]!.requests).toBe(0);
    const missing = await get(port, '/metrics?sandbox=sb-zzz');
    expect(missing.status).toBe(404);
    expect(missing.headers['content-type']).toMatch(/^text\/plain/);
    expect((await get(port, '/metrics?sandbox=..%2Fetc')).status).toBe(400);
    expect((await get(port, '/metrics?sandbox=')).status).toBe(400);
  });

  it('keeps good sandboxes when others hang, are slow, garbage, 500, gone, disconnect, huge or conflict', async () => {
    await shim('sb-01-good', { kind: 'body', body: GO_BODY });
    await shim('sb-02-hang', { kind: 'hang' });
    await shim('sb-03-slow', { kind: 'slow', ms: 5000, body: GO_BODY });
    await shim('sb-04-garbage', {
      kind: 'body',
      body: '# TYPE kata_shim_fds gauge\nkata_shim_fds 3\nthis is { not metrics\n',
    });
    await shim('sb-05-500', { kind: 'http500' });
    await shim('sb-06-gone', { kind: 'gone' });
    await shim('sb-07-disconnect', { kind: 'disconnect', body: GO_BODY.slice(0, 500) });
    await shim('sb-08-huge', {
      kind: 'body',
      body: GO_BODY.repeat(Math.ceil((MAX_BYTES * 2) / GO_BODY.length)),
    });
    await shim('sb-09-conflict', { kind: 'body', body: '# TYPE kata_shim_fds counter\nkata_shim_fds 9\n' });
    await shim('sb-10-prelabelled', {
      kind: 'body',
      body: '# TYPE kata_shim_fds gauge\nkata_shim_fds{sandbox_id="x"} 4\n',
    });
    const port = await serve({
      config: { shimTimeoutMs: 600, scrapeConcurrency: 4, shimMaxBytes: MAX_BYTES, scrapeUnsafeShims: false },
    });
    const r = await get(port, '/metrics');
    expect(r.status).toBe(200);
    const up = (id: string): string | undefined =>
      valueOf(r.body, `kata_monitor_sandbox_up{sandbox_id="${id}"`);
    const err = (id: string, reason: string): string | undefined =>
      valueOf(r.body, `kata_monitor_sandbox_scrape_errors_total{sandbox_id="${id}",reason="${reason}"}`);
    expect(up('sb-01-good')).toBe('1');
    expect(err('sb-02-hang', 'timeout')).toBe('1');
    expect(err('sb-03-slow', 'timeout')).toBe('1');
    expect(err('sb-04-garbage', 'parse')).toBe('1');
    expect(err('sb-05-500', 'http_status')).toBe('1');
    expect(err('sb-06-gone', 'gone')).toBe('1');
    expect(err('sb-07-disconnect', 'parse')).toBe('1');
    expect(err('sb-08-huge', 'too_large')).toBe('1');
    for (const id of [
      'sb-02-hang',
      'sb-03-slow',
      'sb-04-garbage',
      'sb-05-500',
      'sb-06-gone',
      'sb-07-disconnect',
      'sb-08-huge',
    ]) {
      expect(up(id)).toBe('0');
    }
    expect(up('sb-09-conflict')).toBe('1');
    // garbage: none of its samples, not even the valid first one
    const shimLines = (id: string): string[] =>
      r.body.split('\n').filter(l => !l.startsWith('kata_monitor_') && l.includes(`sandbox_id="${id}"`));
    expect(shimLines('sb-04-garbage')).toEqual([]);
    expect(shimLines('sb-07-disconnect')).toEqual([]);
    // conflict: the counter-typed sandbox is dropped, the gauge majority stays
    expect(r.body).toContain('# TYPE kata_shim_fds gauge\n');
    expect(r.body).not.toContain('kata_shim_fds{sandbox_id="sb-09-conflict"');
    expect(await self.registry.getSingleMetricAsString('kata_monitor_family_conflicts_total')).toContain(
      'kata_monitor_family_conflicts_total{family="kata_shim_fds"} 1',
    );
    // prelabelled: the shim's value survives as exported_sandbox_id
    expect(r.body).toContain(
      'kata_shim_fds{exported_sandbox_id="x",sandbox_id="sb-10-prelabelled",cri_uid=""',
    );
    expect(r.body).toContain('kata_shim_fds{sandbox_id="sb-01-good"');
    expect(valueOf(r.body, 'kata_monitor_scrape_failed_count')).toBe('1');
    const check = promtoolCheck(r.body);
    expect(check.output).not.toMatch(/error while linting|parse error/i);
    expect(check.status).not.toBe(1);
  });

  it('does not scrape runtime-rs qemu/firecracker shims unless allowed', async () => {
    const q = await shim(
      'sb-rs-qemu',
      { kind: 'body', body: RS_BODY },
      { runtime: 'rs', hypervisor: 'qemu' },
    );
    const d = await shim(
      'sb-rs-db',
      { kind: 'body', body: RS_BODY },
      { runtime: 'rs', hypervisor: 'dragonball' },
    );
    const port = await serve();
    await get(port, '/metrics');
    const r = await get(port, '/metrics');
    expect(q.requests).toBe(0);
    expect(d.requests).toBe(2);
    expect(valueOf(r.body, 'kata_monitor_sandbox_up{sandbox_id="sb-rs-qemu"')).toBe('0');
    expect(
      valueOf(
        r.body,
        'kata_monitor_sandbox_scrape_errors_total{sandbox_id="sb-rs-qemu",reason="unsafe_skipped"}',
      ),
    ).toBe('2');
    expect(valueOf(r.body, 'kata_monitor_scrape_failed_count')).toBe('0');
    expect((await get(port, '/metrics?sandbox=sb-rs-qemu')).status).toBe(502);
    expect(q.requests).toBe(0);

    const allowed = await serve({
      config: { shimTimeoutMs: 2000, scrapeConcurrency: 4, shimMaxBytes: MAX_BYTES, scrapeUnsafeShims: true },
    });
    await get(allowed, '/metrics');
    expect(q.requests).toBe(1);
  });

  it('shares one collection between concurrent requests (each shim asked once)', async () => {
    const a = await shim('sb-a', { kind: 'slow', ms: 300, body: GO_BODY });
    const b = await shim('sb-b', { kind: 'slow', ms: 300, body: RS_BODY });
    const port = await serve();
    const [r1, r2] = await Promise.all([
      get(port, '/metrics', { 'Accept-Encoding': 'gzip' }),
      get(port, '/metrics?filter_family=kata_shim_threads'),
    ]);
    expect(a.requests).toBe(1);
    expect(b.requests).toBe(1);
    expect(r1.body).toContain('kata_shim_threads{sandbox_id="sb-b"');
    expect(r2.body.split('\n').filter(l => l.startsWith('# TYPE'))).toEqual([
      '# TYPE kata_shim_threads gauge',
    ]);
    expect(valueOf((await get(port, '/metrics')).body, 'kata_monitor_scrape_count')).toBe('3');
  });

  it('keeps at most scrapeConcurrency shim requests in flight, without listener warnings', async () => {
    for (let i = 0; i < 14; i++)
      await shim(`sb-${String(i).padStart(2, '0')}`, { kind: 'slow', ms: 60, body: RS_BODY });
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w.message);
    };
    process.on('warning', onWarning);
    let inFlight = 0;
    let maxInFlight = 0;
    const real = defaultFetchShimMetrics(MAX_BYTES);
    const port = await serve({
      config: {
        shimTimeoutMs: 5000,
        scrapeConcurrency: 3,
        shimMaxBytes: MAX_BYTES,
        scrapeUnsafeShims: false,
      },
      fetchShimMetrics: async (sb, opts) => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        try {
          return await real(sb, opts);
        } finally {
          inFlight--;
        }
      },
    });
    try {
      const r = await get(port, '/metrics');
      expect(maxInFlight).toBe(3);
      expect(r.body.match(/^kata_monitor_sandbox_up\{.*\} 1$/gm)).toHaveLength(14);
      await new Promise(resolve => setImmediate(resolve));
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('takes the deadline from X-Prometheus-Scrape-Timeout-Seconds', async () => {
    await shim('sb-hang', { kind: 'hang' });
    const seen: number[] = [];
    const real = defaultFetchShimMetrics(MAX_BYTES);
    const port = await serve({
      config: {
        shimTimeoutMs: 10_000,
        scrapeConcurrency: 4,
        shimMaxBytes: MAX_BYTES,
        scrapeUnsafeShims: false,
      },
      fetchShimMetrics: (sb, opts) => {
        seen.push(opts.timeoutMs);
        return real(sb, opts);
      },
    });
    const r = await get(port, '/metrics', { 'X-Prometheus-Scrape-Timeout-Seconds': '1.2' });
    expect(r.status).toBe(200);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeLessThanOrEqual(700);
    expect(seen[0]).toBeGreaterThan(0);
    expect(
      valueOf(r.body, 'kata_monitor_sandbox_scrape_errors_total{sandbox_id="sb-hang",reason="timeout"}'),
    ).toBe('1');
  });

  it('merges extra sources; a failing or late source is ignored', async () => {
    await shim('sb-a', { kind: 'body', body: GO_BODY });
    await shim('sb-b', { kind: 'http500' });
    const outcomes: string[] = [];
    const good: ExtraSource = {
      name: 'test-agent',
      async collect(ctx) {
        const chunks = [];
        for (const sb of ctx.sandboxes) {
          const o = await ctx.shimOutcome(sb.id);
          outcomes.push(`${sb.id}:${o.ok ? 'ok' : o.reason}`);
          chunks.push({
            sandbox: sb,
            renameRuntimeFamilies: true,
            skipFamilies: o.ok ? o.families : undefined,
            text: '# TYPE kata_agent_scrape_count counter\nkata_agent_scrape_count 77\n# TYPE go_threads gauge\ngo_threads 5\n',
          });
        }
        chunks.push({ text: '# HELP kata_host_cpus CPUs.\n# TYPE kata_host_cpus gauge\nkata_host_cpus 2\n' });
        return chunks;
      },
    };
    const failing: ExtraSource = {
      name: 'boom',
      collect: () => Promise.reject(new Error('boom')),
    };
    const late: ExtraSource = {
      name: 'late',
      collect: ctx =>
        new Promise(resolve => {
          ctx.signal.addEventListener('abort', () =>
            setTimeout(() => resolve([{ text: 'late_metric 1\n' }]), 300),
          );
        }),
    };
    const port = await serve({
      extraSources: [good, failing, late],
      config: { shimTimeoutMs: 400, scrapeConcurrency: 4, shimMaxBytes: MAX_BYTES, scrapeUnsafeShims: false },
    });
    const r = await get(port, '/metrics');
    expect(r.status).toBe(200);
    expect(outcomes).toEqual(['sb-a:ok', 'sb-b:http_status']);
    // sb-a's shim already gave kata_agent_scrape_count: the source's copy is skipped; sb-b gets the source's
    expect(valueOf(r.body, 'kata_agent_scrape_count{sandbox_id="sb-a"')).toBe('12');
    expect(valueOf(r.body, 'kata_agent_scrape_count{sandbox_id="sb-b"')).toBe('77');
    expect(valueOf(r.body, 'kata_shim_go_threads{sandbox_id="sb-b"')).toBe('5');
    expect(r.body).toContain('\nkata_host_cpus 2\n');
    expect(r.body).not.toContain('late_metric');
    expect(() => parseExposition(r.body)).not.toThrow();
  });

  it('removes the series of vanished sandboxes', async () => {
    await shim('sb-a', { kind: 'body', body: GO_BODY });
    const gone = await shim('sb-b', { kind: 'http500' });
    const port = await serve();
    const first = await get(port, '/metrics');
    expect(first.body).toContain('kata_monitor_sandbox_up{sandbox_id="sb-b"');
    shims = shims.filter(s => s !== gone);
    await gone.close();
    const second = await get(port, '/metrics');
    expect(second.body).not.toContain('sandbox_id="sb-b"');
    expect(valueOf(second.body, 'kata_monitor_sandbox_up{sandbox_id="sb-a"')).toBe('1');
  });

  it('survives clients that disconnect mid-collection and mid-response', async () => {
    await shim('sb-a', { kind: 'slow', ms: 200, body: GO_BODY.repeat(1) });
    await shim('sb-b', { kind: 'body', body: GO_BODY });
    const port = await serve();
    await new Promise<void>(resolve => {
      const req = http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false });
      req.on('error', () => resolve());
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 50);
    });
    await new Promise<void>(resolve => {
      const req = http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, res => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => resolve());
    });
    const r = await get(port, '/metrics');
    expect(r.status).toBe(200);
    expect(valueOf(r.body, 'kata_monitor_sandbox_up{sandbox_id="sb-a"')).toBe('1');
  });

  it('does not leak fds over 50 scrapes of a hung shim', async () => {
    await shim('sb-hang', { kind: 'hang' });
    await shim('sb-ok', { kind: 'body', body: RS_BODY });
    const port = await serve({
      config: { shimTimeoutMs: 30, scrapeConcurrency: 2, shimMaxBytes: MAX_BYTES, scrapeUnsafeShims: false },
    });
    await get(port, '/metrics');
    const before = fs.readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 50; i++) await get(port, '/metrics');
    const after = fs.readdirSync('/proc/self/fd').length;
    expect(after - before).toBeLessThanOrEqual(5);
  });

  it('matches the golden output for fixed inputs', async () => {
    await shim(
      'sb-1-go',
      { kind: 'body', body: GO_BODY },
      { cri: { uid: 'uid-1', name: 'pod-1', namespace: 'default' } },
    );
    await shim('sb-2-rs', { kind: 'body', body: RS_BODY }, { runtime: 'rs', hypervisor: 'dragonball' });
    await shim('sb-3-pre', {
      kind: 'body',
      body: '# TYPE kata_shim_fds gauge\nkata_shim_fds{cri_name="mine"} 2\n',
    });
    await shim('sb-4-gone', { kind: 'gone' });
    await shim('sb-5-rsqemu', { kind: 'body', body: RS_BODY }, { runtime: 'rs', hypervisor: 'qemu' });
    const port = await serve();
    const r = await get(port, '/metrics');
    const normalised = r.body
      .split('\n')
      .map(l =>
        /^kata_monitor_(sandbox_scrape_duration_seconds|scrape_durations_histogram_milliseconds)/.test(l)
          ? l.replace(/ [^ ]+$/, ' <value>')
          : l,
      )
      .join('\n');
    const golden = path.join(FIXTURES, 'golden.prom');
    if (process.env.UPDATE_GOLDEN === '1') fs.writeFileSync(golden, normalised);
    expect(normalised).toBe(fs.readFileSync(golden, 'utf8'));
    const check = promtoolCheck(r.body);
    expect(check.output).not.toMatch(/error while linting|parse error/i);
    expect(check.status).not.toBe(1);
  });
});

describe('negotiation helpers', () => {
  it.each([
    [undefined, false],
    ['gzip', true],
    ['GZIP', true],
    ['gzip;q=0', false],
    ['gzip; q=0.5', true],
    ['deflate, gzip;q=1.0, *;q=0.5', true],
    ['*', true],
    ['*;q=0', false],
    ['gzip;q=0, *', false],
    ['identity', false],
    ['br, x-gzip', true],
  ])('acceptsGzip(%j) = %j', (h, want) => {
    expect(acceptsGzip(h)).toBe(want);
  });

  it('computes the collection budget from config and header', () => {
    expect(collectionTimeoutMs(3000, undefined)).toBe(3000);
    expect(collectionTimeoutMs(3000, '10')).toBe(3000);
    expect(collectionTimeoutMs(3000, '2')).toBe(1500);
    expect(collectionTimeoutMs(3000, '0.2')).toBe(100);
    expect(collectionTimeoutMs(3000, 'junk')).toBe(3000);
  });
});
