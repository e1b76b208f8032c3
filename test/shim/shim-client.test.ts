import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { ShimError, shimRequest } from '../../src/shim/shim-client';
import { rmrf, tmpDir } from '../helpers/util';

const body = '# TYPE a gauge\n' + 'a{x="1"} 3\n'.repeat(20000); // ~220 KB: many reads

let dir: string;
const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();

beforeEach(() => {
  dir = tmpDir('shc-');
});
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map(s => new Promise(r => s.close(r))));
  rmrf(dir);
});

/** A raw server on a unix socket: `onRequest` gets the socket once the request head has arrived. */
async function rawServer(name: string, onRequest: (s: net.Socket, head: string) => void): Promise<string> {
  const p = path.join(dir, name);
  const server = net.createServer(s => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    let head = '';
    s.on('data', d => {
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) onRequest(s, head);
    });
    s.on('error', () => undefined);
  });
  servers.push(server);
  await new Promise<void>(r => server.listen(p, r));
  return p;
}

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ShimError) return err.reason;
    throw err;
  }
  throw new Error('expected a ShimError');
}

const opts = { timeoutMs: 4000, maxBytes: 1 << 20 };

describe('shimRequest over a unix socket', () => {
  it('reads a chunked body from a node:http server (as Go shims answer) and sends a well-formed request', async () => {
    const p = path.join(dir, 'shim-monitor.sock');
    let seen: http.IncomingMessage | undefined;
    const server = http.createServer((req, res) => {
      seen = req;
      res.setHeader('Content-Type', 'text/plain; version=0.0.4');
      for (let i = 0; i < body.length; i += 10000) res.write(body.slice(i, i + 10000));
      res.end();
    });
    servers.push(server as unknown as net.Server);
    await new Promise<void>(r => server.listen(p, r));
    const r = await shimRequest(p, '/metrics', opts);
    expect(r.status).toBe(200);
    expect(r.headers['transfer-encoding']).toBe('chunked');
    expect(r.headers['content-type']).toBe('text/plain; version=0.0.4');
    expect(r.body.toString()).toBe(body);
    expect(seen?.method).toBe('GET');
    expect(seen?.url).toBe('/metrics');
    expect(seen?.headers.host).toBe('shim');
    expect(seen?.headers.connection).toBe('close');
  });

  it('resolves as soon as a Content-Length body is complete, although the shim keeps the connection', async () => {
    const p = await rawServer('keep.sock', s => s.write(`HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello`));
    const r = await shimRequest(p, '/metrics', { ...opts, timeoutMs: 60000 });
    expect(r.body.toString()).toBe('hello');
  });

  it('turns a 404 into http_status with the status and the start of the body', async () => {
    const p = await rawServer('404.sock', s =>
      s.end('HTTP/1.1 404 Not Found\r\nContent-Length: 19\r\n\r\n404 page not found\n'),
    );
    const err = await shimRequest(p, '/agent-url', opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShimError);
    expect((err as ShimError).reason).toBe('http_status');
    expect((err as ShimError).status).toBe(404);
    expect((err as ShimError).message).toContain('HTTP 404: 404 page not found');
  });

  it.each([
    ['garbage instead of HTTP', (s: net.Socket) => s.end('this is not http\r\n\r\n'), 'parse'],
    [
      'a body cut short',
      (s: net.Socket) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort'),
      'parse',
    ],
    ['a connection closed without an answer', (s: net.Socket) => s.end(), 'parse'],
    [
      'a connection dropped mid-head',
      (s: net.Socket) => {
        s.write('HTTP/1.1 200 OK\r\nTransfer-');
        s.destroy();
      },
      'parse',
    ],
    [
      'a body over the cap',
      (s: net.Socket) => s.end(`HTTP/1.1 200 OK\r\n\r\n${'x'.repeat(2 << 20)}`),
      'too_large',
    ],
  ])('reports %s', async (_what, answer, want) => {
    const p = await rawServer('bad.sock', answer);
    expect(await reason(shimRequest(p, '/metrics', opts))).toBe(want);
  });

  it('times out on a shim that never answers, and on an abort', async () => {
    const p = await rawServer('hang.sock', () => undefined);
    expect(await reason(shimRequest(p, '/metrics', { ...opts, timeoutMs: 200 }))).toBe('timeout');
    const ac = new AbortController();
    const pending = shimRequest(p, '/metrics', { ...opts, timeoutMs: 60000, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    expect(await reason(pending)).toBe('timeout');
  });

  it('says gone for a missing socket and refused for a file nobody listens on', async () => {
    expect(await reason(shimRequest(path.join(dir, 'none.sock'), '/metrics', opts))).toBe('gone');
    const notSocket = path.join(dir, 'plain-file');
    fs.writeFileSync(notSocket, '');
    expect(await reason(shimRequest(notSocket, '/metrics', opts))).toBe('refused');
  });

  it('reaches a socket whose path is longer than the kernel limit', async () => {
    const deep = path.join(dir, 'd'.repeat(60), 'e'.repeat(60));
    fs.mkdirSync(deep, { recursive: true });
    const p = path.join(deep, 'shim-monitor.sock');
    expect(Buffer.byteLength(p)).toBeGreaterThan(107);
    const server = net.createServer(s => {
      sockets.add(s);
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    });
    servers.push(server);
    // bind through the same /proc/self/fd route the client uses
    const fd = fs.openSync(deep, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    await new Promise<void>(r => server.listen(`/proc/self/fd/${fd}/shim-monitor.sock`, r));
    fs.closeSync(fd);
    expect((await shimRequest(p, '/metrics', opts)).body.toString()).toBe('ok');
  });
});
