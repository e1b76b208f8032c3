import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { SimShimServer } from '../../src/sim/shim-server';
import { drawSandbox } from '../../src/sim/plan';
import type { ShimFault, SimSandbox } from '../../src/sim/types';
import { rmrf, tmpDir } from '../helpers/util';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(
  socketPath: string,
  p: string,
  opts: { method?: string; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: p, method: opts.method ?? 'GET', agent: false }, res => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('aborted')));
    });
    req.setTimeout(opts.timeoutMs ?? 5000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('SimShimServer', () => {
  let dir: string;
  let server: SimShimServer | undefined;

  function sandbox(runtime: 'go' | 'rs', extra: Partial<SimSandbox> = {}): SimSandbox {
    const d = drawSandbox(7, 0);
    const sbDir = path.join(dir, 'sbs', 'x');
    fs.mkdirSync(sbDir, { recursive: true });
    return {
      id: d.id,
      index: 0,
      runtime,
      hypervisor: runtime === 'go' ? 'clh' : 'dragonball',
      sandboxDir: sbDir,
      shimSocketPath: path.join(sbDir, 'shim-monitor.sock'),
      agentUrl: `hvsock://${dir}/vm/clh.sock:1024`,
      containers: d.containers,
      vcpus: d.vcpus,
      pod: { ...d.pod, runtimeHandler: 'kata-clh' },
      pprof: runtime === 'go',
      seed: d.seed,
      ...extra,
    };
  }

  async function start(sb: SimSandbox): Promise<SimShimServer> {
    server = await SimShimServer.start(sb, { profileCapMs: 300 });
    return server;
  }

  beforeEach(() => {
    dir = tmpDir('km-shim-');
  });
  afterEach(async () => {
    await server?.stop();
    server = undefined;
    rmrf(dir);
  });

  it('Go shim: /metrics with any method, /agent-url without newline, Go 404, socket mode 0600', async () => {
    const sb = sandbox('go');
    await start(sb);
    expect(fs.statSync(sb.shimSocketPath).mode & 0o777).toBe(0o600);
    const m = await request(sb.shimSocketPath, '/metrics');
    expect(m.status).toBe(200);
    expect(m.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(m.body.toString()).toContain('kata_agent_scrape_count 1\n');
    const post = await request(sb.shimSocketPath, '/metrics', { method: 'POST' });
    expect(post.body.toString()).toContain('kata_agent_scrape_count 2\n');
    const url = await request(sb.shimSocketPath, '/agent-url');
    expect(url.body.toString()).toBe(sb.agentUrl);
    const nf = await request(sb.shimSocketPath, '/nope');
    expect(nf.status).toBe(404);
    expect(nf.body.toString()).toBe('404 page not found\n');
  });

  it('Go shim with pprof: index, vars, cmdline, profile, symbol; without pprof: 404', async () => {
    const sb = sandbox('go');
    await start(sb);
    const idx = await request(sb.shimSocketPath, '/debug/pprof/');
    expect(idx.headers['content-type']).toMatch(/text\/html/);
    expect(idx.body.toString()).toContain("<a href='allocs?debug=1'>");
    expect(idx.body.toString()).toContain("<a href='profile'>");
    const vars = JSON.parse((await request(sb.shimSocketPath, '/debug/vars')).body.toString());
    expect(vars.cmdline).toContain(sb.id);
    expect(vars.memstats.HeapAlloc).toBeGreaterThan(0);
    const cmd = await request(sb.shimSocketPath, '/debug/pprof/cmdline');
    expect(cmd.body.toString().split('\0')).toContain('-id');
    const prof = await request(sb.shimSocketPath, '/debug/pprof/profile?seconds=30');
    expect(prof.headers['content-type']).toBe('application/octet-stream');
    expect(prof.headers['content-disposition']).toBe('attachment; filename="profile"');
    expect(prof.body.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect((await request(sb.shimSocketPath, '/debug/pprof/symbol')).status).toBe(200);
    expect((await request(sb.shimSocketPath, '/debug/pprof/trace?seconds=1')).status).toBe(200);
    await server!.stop();

    const off = sandbox('go', { pprof: false });
    await start(off);
    const r = await request(off.shimSocketPath, '/debug/pprof/');
    expect(r.status).toBe(404);
    expect(r.body.toString()).toBe('404 page not found\n');
  });

  it('runtime-rs shim: GET only, URL NOT FOUND, /agent-url 200, no pprof', async () => {
    const sb = sandbox('rs');
    await start(sb);
    const m = await request(sb.shimSocketPath, '/metrics');
    expect(m.status).toBe(200);
    expect(m.headers['content-type']).toBeUndefined();
    expect(m.body.toString()).toContain('# TYPE kata_hypervisor_vcpu gauge');
    const post = await request(sb.shimSocketPath, '/metrics', { method: 'POST' });
    expect(post.status).toBe(404);
    expect(post.body.toString()).toBe('URL NOT FOUND');
    expect((await request(sb.shimSocketPath, '/agent-url')).body.toString()).toBe(sb.agentUrl);
    expect((await request(sb.shimSocketPath, '/debug/vars')).body.toString()).toBe('URL NOT FOUND');
  });

  it('counters grow between two scrapes', async () => {
    const sb = sandbox('go');
    await start(sb);
    const read = async (): Promise<number> => {
      const body = (await request(sb.shimSocketPath, '/metrics')).body.toString();
      const line = body.split('\n').find(l => l.startsWith('kata_guest_cpu_time{cpu="total",item="user"} '))!;
      return Number(line.split(' ')[1]);
    };
    const a = await read();
    const b = await read();
    expect(b).toBeGreaterThan(a);
    expect(server!.tick).toBe(2);
  });

  const faulty = async (fault: ShimFault): Promise<SimSandbox> => {
    const sb = sandbox('go', { shimFault: fault });
    await start(sb);
    return sb;
  };

  it('hang: accepts but never answers, a client timeout fires', async () => {
    const sb = await faulty({ kind: 'hang' });
    await expect(request(sb.shimSocketPath, '/metrics', { timeoutMs: 300 })).rejects.toThrow(
      'client timeout',
    );
  });

  it('slow: answers after the delay', async () => {
    const sb = await faulty({ kind: 'slow', ms: 400 });
    await expect(request(sb.shimSocketPath, '/metrics', { timeoutMs: 150 })).rejects.toThrow(
      'client timeout',
    );
    const r = await request(sb.shimSocketPath, '/metrics', { timeoutMs: 5000 });
    expect(r.status).toBe(200);
  });

  it('http500: status 500 with an error text', async () => {
    const sb = await faulty({ kind: 'http500' });
    const r = await request(sb.shimSocketPath, '/metrics');
    expect(r.status).toBe(500);
    expect(r.body.toString()).toMatch(/failed/);
  });

  it('disconnect: headers announce more than arrives, then the socket closes', async () => {
    const sb = await faulty({ kind: 'disconnect' });
    const got = await new Promise<{ announced: number; received: number; failed: boolean }>(resolve => {
      const req = http.request({ socketPath: sb.shimSocketPath, path: '/metrics', agent: false }, res => {
        let received = 0;
        const announced = Number(res.headers['content-length']);
        res.on('data', (c: Buffer) => (received += c.length));
        const done = (failed: boolean) => resolve({ announced, received, failed });
        res.on('aborted', () => done(true));
        res.on('error', () => done(true));
        res.on('end', () => done(false));
      });
      req.on('error', () => resolve({ announced: -1, received: -1, failed: true }));
      req.end();
    });
    expect(got.failed).toBe(true);
    expect(got.announced).toBeGreaterThan(60000);
    expect(got.received).toBeLessThan(got.announced);
  });

  it('gone: no socket file while set, back when cleared; faults change while running', async () => {
    const sb = sandbox('go');
    const s = await start(sb);
    expect((await request(sb.shimSocketPath, '/metrics')).status).toBe(200);
    sb.shimFault = { kind: 'gone' };
    await s.applyFault();
    expect(fs.existsSync(sb.shimSocketPath)).toBe(false);
    expect(fs.existsSync(sb.sandboxDir)).toBe(true);
    await expect(request(sb.shimSocketPath, '/metrics')).rejects.toMatchObject({ code: 'ENOENT' });
    sb.shimFault = { kind: 'garbage' };
    await s.applyFault();
    const g = await request(sb.shimSocketPath, '/metrics');
    expect(g.body.toString()).toContain('kata_hypervisor_threads{state="running" 12\n');
    sb.shimFault = undefined;
    await s.applyFault();
    expect((await request(sb.shimSocketPath, '/metrics')).body.toString()).not.toContain('state="running"');
  });

  it('huge: a body over 20 MB; conflict and prelabelled pass through', async () => {
    const sb = await faulty({ kind: 'huge' });
    const r = await request(sb.shimSocketPath, '/metrics', { timeoutMs: 20000 });
    expect(r.body.length).toBeGreaterThan(20 * 1024 * 1024);
    sb.shimFault = { kind: 'conflict' };
    expect((await request(sb.shimSocketPath, '/metrics')).body.toString()).toContain(
      '# TYPE kata_guest_load counter',
    );
    sb.shimFault = { kind: 'prelabelled' };
    expect((await request(sb.shimSocketPath, '/metrics')).body.toString()).toContain(`sandbox_id="${sb.id}"`);
  });
});
