import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from '../../src/config';
import { silentLogger } from '../../src/log';
import { startDaemon, type Daemon } from '../../src/main';
import { rmrf, tmpDir, waitFor } from '../helpers/util';
import { FakeCri, FakeShim, get, hexId, makeGoSandbox, makeRsSandbox, rawGet } from './fixtures';

const PPROF_INDEX =
  "<html><body>Types of profiles available:<a href='allocs?debug=1'>allocs</a><a href='goroutine?debug=1'>goroutine</a><a href='profile'>profile</a></body></html>";

describe('HTTP endpoints (daemon against fake shims and a fake CRI)', () => {
  let dir: string;
  let goRoot: string;
  let rsRoot: string;
  let daemon: Daemon;
  let cri: FakeCri;
  const shims: FakeShim[] = [];
  let escapeShim: FakeShim;
  let profileShim: FakeShim;

  const A = hexId(0xa); // go, pprof enabled
  const B = hexId(0xb); // rs, empty agent-url body
  const C = hexId(0xc); // go, no socket
  const D = hexId(0xd); // go, hung shim
  const E = hexId(0xe); // go, pprof disabled

  beforeAll(async () => {
    dir = tmpDir('km-http-');
    goRoot = path.join(dir, 'vc', 'sbs');
    rsRoot = path.join(dir, 'kata');
    makeGoSandbox(goRoot, A, 'qemu', 'vsock://830455376:1024');
    makeRsSandbox(rsRoot, B);
    makeGoSandbox(goRoot, C);
    makeGoSandbox(goRoot, D);
    makeGoSandbox(goRoot, E);
    const send =
      (ct: string | undefined, body: string, extra: Record<string, string> = {}) =>
      (_req: unknown, res: import('node:http').ServerResponse) => {
        if (ct) res.setHeader('Content-Type', ct);
        for (const [k, v] of Object.entries(extra)) res.setHeader(k, v);
        res.end(body);
      };
    profileShim = new FakeShim(path.join(goRoot, A, 'shim-monitor.sock'), {
      '/agent-url': send(undefined, 'vsock://830455376:1024'),
      '/debug/vars': send('application/json; charset=utf-8', '{"cmdline":["shim"],"memstats":{}}'),
      '/debug/pprof/': send('text/html; charset=utf-8', PPROF_INDEX),
      '/debug/pprof/cmdline': send('text/plain; charset=utf-8', 'containerd-shim-kata-v2\0-id\0x'),
      '/debug/pprof/symbol': send(undefined, 'num_symbols: 1\n'),
      '/debug/pprof/trace': send(undefined, 'TRACEBYTES'),
      '/debug/pprof/profile': send('application/octet-stream', 'PPROFBYTES', {
        'Content-Disposition': 'attachment; filename="profile"',
      }),
      '/debug/pprof/heap': send('application/octet-stream', 'HEAPBYTES'),
    });
    shims.push(profileShim);
    shims.push(
      new FakeShim(path.join(rsRoot, B, 'shim-monitor.sock'), { '/agent-url': send(undefined, '') }),
    );
    shims.push(new FakeShim(path.join(goRoot, D, 'shim-monitor.sock'), { '/agent-url': () => undefined }));
    shims.push(
      new FakeShim(path.join(goRoot, E, 'shim-monitor.sock'), { '/agent-url': send(undefined, 'x://1') }),
    );
    // Where `../../etc` would lead if a bad id were ever joined into a path.
    fs.mkdirSync(path.join(dir, 'etc'));
    escapeShim = new FakeShim(path.join(dir, 'etc', 'shim-monitor.sock'), {
      '/agent-url': send(undefined, 'ESCAPED'),
    });
    shims.push(escapeShim);
    await Promise.all(shims.map(s => s.listen()));

    cri = new FakeCri(path.join(dir, 'cri.sock'));
    cri.pods.set(A, { id: A, name: 'web', namespace: 'prod', uid: 'uid-a' });
    await cri.start();

    const config = parseArgs([
      '--listen-address=127.0.0.1:0',
      `--sandbox-roots=${goRoot},${rsRoot}`,
      `--runtime-endpoint=unix://${path.join(dir, 'cri.sock')}`,
      '--shim-timeout=300ms',
    ]);
    daemon = await startDaemon(config, { logger: silentLogger });
  });

  afterAll(async () => {
    await daemon?.stop();
    await Promise.all(shims.map(s => s.close()));
    await cri?.stop();
    rmrf(dir);
  });

  const url = (p: string): string => daemon.url + p;

  it('serves the index as text and HTML from one table', async () => {
    const t = await get(url('/'));
    expect(t.status).toBe(200);
    expect(t.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(t.body.split('\n').slice(0, 6)).toEqual([
      'Available HTTP endpoints:',
      '/metrics               : Get metrics from sandboxes.',
      '/sandboxes             : List all Kata Containers sandboxes.',
      '/agent-url             : Get sandbox agent URL.',
      '/debug/vars            : Golang pprof `/debug/vars` endpoint for kata runtime shim process.',
      '/debug/pprof/          : Golang pprof `/debug/pprof/` endpoint for kata runtime shim process.',
    ]);
    expect(t.body).toContain('/healthz ');
    const h = await get(url('/'), { Accept: 'text/html,application/xhtml+xml' });
    expect(h.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(h.body).toMatch(
      /^<h1>Available HTTP endpoints:<\/h1>\n<ul><li><b><a href='\/metrics'>\/metrics<\/a><\/b>/,
    );
  });

  it('lists sandboxes sorted, text and HTML', async () => {
    const t = await get(url('/sandboxes'));
    expect(t.status).toBe(200);
    expect(t.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(t.body).toBe([A, B, C, D, E].map(id => id + '\n').join(''));
    const h = await get(url('/sandboxes'), { Accept: 'text/html' });
    expect(h.body).toContain(`<li>${A}: <a href='/debug/pprof/?sandbox=${A}'>pprof</a>`);
  });

  it('answers /agent-url with the shim answer plus a newline, and errors with status and reason', async () => {
    const ok = await get(url(`/agent-url?sandbox=${A}`));
    expect([ok.status, ok.headers['content-type'], ok.body]).toEqual([
      200,
      'text/plain; charset=utf-8',
      'vsock://830455376:1024\n',
    ]);
    const cases: [string, number, RegExp][] = [
      ['/agent-url', 400, /missing sandbox/],
      ['/agent-url?sandbox=a/b', 400, /malformed/],
      [`/agent-url?sandbox=${hexId(0x99)}`, 404, /unknown sandbox/],
      [`/agent-url?sandbox=${B}`, 502, /empty agent URL/],
      [`/agent-url?sandbox=${C}`, 502, /does not exist/],
      [`/agent-url?sandbox=${D}`, 502, /did not answer \/agent-url within 300 ms/],
      [`/agent-url?sandbox=${A}&sandbox=${B}`, 400, /malformed/],
    ];
    for (const [p, status, body] of cases) {
      const r = await get(url(p));
      expect({ p, status: r.status }).toEqual({ p, status });
      expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(r.body).toMatch(body);
      expect(r.body.endsWith('\n')).toBe(true);
    }
  });

  it('never builds a path from a bad or unknown id', async () => {
    const port = Number(new URL(daemon.url).port);
    const probes = [
      '/agent-url?sandbox=../../etc',
      '/agent-url?sandbox=%2e%2e%2f%2e%2e%2fetc',
      '/agent-url?sandbox=%2e%2e',
      `/agent-url?sandbox=${'a'.repeat(4000)}`,
      '/debug/vars?sandbox=../../etc',
      '/debug/pprof/heap?sandbox=..%2F..%2Fetc',
      '/debug/pprof/?sandbox=',
    ];
    for (const p of probes) {
      const r = await rawGet(port, p);
      expect({ p, status: r.status }).toEqual({ p, status: 400 });
    }
    expect((await rawGet(port, '/debug/vars?sandbox=etc')).status).toBe(404);
    expect(escapeShim.requests).toEqual([]);
  });

  it('proxies /debug endpoints with upstream headers and the index rewrite', async () => {
    const vars = await get(url(`/debug/vars?sandbox=${A}`));
    expect([vars.status, vars.headers['content-type'], vars.headers['x-content-type-options']]).toEqual([
      200,
      'application/json; charset=utf-8',
      'nosniff',
    ]);
    expect(JSON.parse(vars.body)).toHaveProperty('memstats');

    const index = await get(url(`/debug/pprof/?sandbox=${A}`));
    expect(index.status).toBe(200);
    expect(index.body).toContain(`<a href='allocs?sandbox=${A}&debug=1'>`);
    expect(index.body).toContain(`<a href='goroutine?sandbox=${A}&debug=1'>`);
    expect(index.body).toContain(`<a href='profile'>`);

    const sym = await get(url(`/debug/pprof/symbol?sandbox=${A}`));
    expect([sym.headers['content-type'], sym.body]).toEqual([
      'text/plain; charset=utf-8',
      'num_symbols: 1\n',
    ]);

    const trace = await get(url(`/debug/pprof/trace?sandbox=${A}&seconds=2`));
    expect([trace.headers['content-type'], trace.headers['content-disposition'], trace.body]).toEqual([
      'application/octet-stream',
      'attachment; filename="trace"',
      'TRACEBYTES',
    ]);

    const prof = await get(url(`/debug/pprof/profile?sandbox=${A}&seconds=100000`));
    expect([prof.status, prof.headers['content-disposition'], prof.body]).toEqual([
      200,
      'attachment; filename="profile"',
      'PPROFBYTES',
    ]);
    expect(profileShim.requests).toContain(`/debug/pprof/profile?sandbox=${A}&seconds=300`);

    const heap = await get(url(`/debug/pprof/heap?sandbox=${A}`));
    expect([heap.status, heap.body]).toEqual([200, 'HEAPBYTES']);
    const cmd = await get(url(`/debug/pprof/cmdline?sandbox=${A}`));
    expect(cmd.body).toBe('containerd-shim-kata-v2\0-id\0x');
  });

  it('passes a shim 404 (pprof disabled) through and reports a dead shim as 502', async () => {
    const off = await get(url(`/debug/pprof/heap?sandbox=${E}`));
    expect([off.status, off.headers['x-content-type-options']]).toEqual([404, 'nosniff']);
    const gone = await get(url(`/debug/vars?sandbox=${C}`));
    expect(gone.status).toBe(502);
    expect(gone.body).toMatch(
      /^failed to request \/debug\/vars\?sandbox=.* through .*shim-monitor\.sock: gone/,
    );
  });

  it('serves health and readiness, and the aliases', async () => {
    for (const p of ['/healthz', '/-/healthy', '/readyz', '/-/ready']) {
      const r = await get(url(p));
      expect({ p, status: r.status, body: r.body }).toEqual({ p, status: 200, body: 'ok\n' });
    }
  });

  it("/metrics (aggregated handler) carries the daemon's own metrics and counts scrapes", async () => {
    await waitFor(() => daemon.store.get(A)?.cri, 3000, 25, 'CRI labels for A');
    const first = await get(url('/metrics'));
    expect(first.status).toBe(200);
    expect(first.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(first.body).toMatch(
      new RegExp(`kata_monitor_build_info\\{[^}]*cri_endpoint="unix://${path.join(dir, 'cri.sock')}"\\} 1`),
    );
    expect(first.body).toMatch(/kata_monitor_sandboxes\{runtime="go"\} 4/);
    expect(first.body).toMatch(/kata_monitor_sandboxes\{runtime="rs"\} 1/);
    expect(first.body).toMatch(/kata_monitor_cri_up 1/);
    expect(first.body).toMatch(/kata_monitor_sandboxes_without_metadata 4/);
    const count = (b: string): number => Number(/^kata_monitor_scrape_count (\d+)/m.exec(b)?.[1]);
    const second = await get(url('/metrics'));
    expect(count(second.body)).toBe(count(first.body) + 1);
  });

  it('answers unknown paths with 404 and a pointer to /', async () => {
    const r = await get(url('/nope'));
    expect([r.status, r.headers['content-type'], r.body]).toEqual([
      404,
      'text/plain; charset=utf-8',
      '404 page not found\nSee / for the available endpoints.\n',
    ]);
  });
});

describe('daemon variants', () => {
  let dir: string;
  let daemon: Daemon | undefined;
  beforeEach(() => {
    dir = tmpDir('km-var-');
  });
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
    rmrf(dir);
  });

  it('is not ready while no root exists, and uses a given metrics handler', async () => {
    const goRoot = path.join(dir, 'vc', 'sbs');
    const config = parseArgs(['--listen-address=127.0.0.1:0', `--sandbox-roots=${goRoot},${dir}/kata`]);
    daemon = await startDaemon(config, {
      logger: silentLogger,
      exists: p => p === '/run/k3s/containerd/containerd.sock',
      metricsHandler: parts => (_req, res) => {
        res.setHeader('Content-Type', 'text/plain');
        res.end(`aggregated ${parts.store.list().length}\n`);
      },
    });
    const r = await get(daemon.url + '/readyz');
    expect(r.status).toBe(503);
    expect(r.body).toBe(`not ready:\nsandbox_root_missing:${goRoot}\nsandbox_root_missing:${dir}/kata\n`);
    expect((await get(daemon.url + '/healthz')).status).toBe(200);
    expect((await get(daemon.url + '/metrics')).body).toBe('aggregated 0\n');
    expect(daemon.criEndpoint).toMatchObject({
      source: 'probe',
      endpoint: { display: 'unix:///run/k3s/containerd/containerd.sock' },
    });
    fs.mkdirSync(goRoot, { recursive: true });
    await waitFor(async () => (await get(daemon!.url + '/readyz')).status === 200, 3000, 50, 'ready');
    makeGoSandbox(goRoot, hexId(1));
    await waitFor(async () => (await get(daemon!.url + '/sandboxes')).body === hexId(1) + '\n', 1000, 20);
  });

  it('--web.disable-exporter-metrics leaves out the Node runtime and process families, not the kata_monitor ones', async () => {
    const goRoot = path.join(dir, 'vc', 'sbs');
    fs.mkdirSync(goRoot, { recursive: true });
    const families = async (args: string[]): Promise<string[]> => {
      const config = parseArgs(['--listen-address=127.0.0.1:0', `--sandbox-roots=${goRoot}`, ...args]);
      const d = await startDaemon(config, { logger: silentLogger, exists: () => false });
      try {
        const body = (await get(d.url + '/metrics')).body;
        return [...body.matchAll(/^# TYPE (\S+)/gm)].map(m => m[1]!);
      } finally {
        await d.stop();
      }
    };
    const runtime = (names: string[]): string[] =>
      names.filter(n => n.startsWith('kata_monitor_nodejs_') || n.startsWith('kata_monitor_process_'));

    const defaults = await families([]);
    expect(runtime(defaults)).toEqual(
      expect.arrayContaining([
        'kata_monitor_process_cpu_seconds_total',
        'kata_monitor_nodejs_eventloop_lag_p99_seconds',
      ]),
    );
    const without = await families(['-web.disable-exporter-metrics']);
    expect(runtime(without)).toEqual([]);
    // everything else the daemon says about itself stays, the four upstream families first
    expect(without).toEqual(defaults.filter(n => !runtime(defaults).includes(n)));
    expect(without).toEqual(
      expect.arrayContaining([
        'kata_monitor_running_shim_count',
        'kata_monitor_scrape_count',
        'kata_monitor_scrape_failed_count',
        'kata_monitor_scrape_durations_histogram_milliseconds',
      ]),
    );
  });

  it('with --web.enable-debug=false, the shim debug proxy is gone: 404, not on the index, no pprof link', async () => {
    const goRoot = path.join(dir, 'vc', 'sbs');
    fs.mkdirSync(goRoot, { recursive: true });
    makeGoSandbox(goRoot, hexId(2));
    const config = parseArgs([
      '--listen-address=127.0.0.1:0',
      `--sandbox-roots=${goRoot}`,
      '-web.enable-debug=false',
    ]);
    expect(config.enableDebug).toBe(false);
    daemon = await startDaemon(config, { logger: silentLogger, exists: () => false });
    await waitFor(async () => (await get(daemon!.url + '/sandboxes')).body === hexId(2) + '\n', 3000, 20);
    for (const p of ['/debug/vars', '/debug/pprof/', '/debug/pprof/heap', '/debug/pprof/profile']) {
      const r = await get(`${daemon.url}${p}?sandbox=${hexId(2)}`);
      expect({ p, status: r.status }).toEqual({ p, status: 404 });
    }
    const index = await get(daemon.url + '/');
    expect(index.body).not.toContain('/debug/');
    expect(index.body).toContain('/metrics');
    const html = await get(daemon.url + '/sandboxes', { Accept: 'text/html' });
    expect(html.body).toContain(`/metrics?sandbox=${hexId(2)}`);
    expect(html.body).not.toContain('pprof');
  });
});
