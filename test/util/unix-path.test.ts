import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { UNIX_PATH_MAX, usableUnixPath } from '../../src/util/unix-path';
import { rmrf, tmpDir } from '../helpers/util';

describe('usableUnixPath', () => {
  let dir: string;
  const servers: net.Server[] = [];
  beforeEach(() => {
    dir = tmpDir('up-');
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map(s => new Promise(r => s.close(r))));
    rmrf(dir);
  });

  it('returns short paths unchanged', () => {
    const p = path.join(dir, 'a.sock');
    const u = usableUnixPath(p);
    expect(u.path).toBe(p);
    u.release();
  });

  it('reaches a socket whose path is longer than the kernel limit, both for bind and connect', async () => {
    const deep = path.join(dir, 'x'.repeat(60), 'y'.repeat(60));
    fs.mkdirSync(deep, { recursive: true });
    const sock = path.join(deep, 'kata.hvsock');
    expect(Buffer.byteLength(sock)).toBeGreaterThan(UNIX_PATH_MAX);

    // With the plain path the socket does not end up where it was asked for (Node binds a truncated path).
    const plain = net.createServer();
    servers.push(plain);
    await new Promise<void>(resolve => {
      plain.once('error', () => resolve());
      plain.listen(sock, () => resolve());
    });
    expect(fs.existsSync(sock)).toBe(false);

    const bindPath = usableUnixPath(sock);
    expect(bindPath.path).toMatch(/^\/proc\/self\/fd\/\d+\/kata\.hvsock$/);
    const server = net.createServer(c => c.end('hello'));
    servers.push(server);
    await new Promise<void>(r => server.listen(bindPath.path, () => r()));
    bindPath.release();
    expect(fs.statSync(sock).isSocket()).toBe(true);

    const connectPath = usableUnixPath(sock);
    const got = await new Promise<string>((resolve, reject) => {
      const c = net.connect(connectPath.path);
      let data = '';
      c.on('data', d => (data += d.toString()));
      c.on('end', () => resolve(data));
      c.on('error', reject);
    });
    connectPath.release();
    connectPath.release();
    expect(got).toBe('hello');
  });

  it('throws ENOENT when the directory of a long path does not exist', () => {
    const p = path.join(dir, 'z'.repeat(120), 's.sock');
    expect(() => usableUnixPath(p)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});
