/**
 * A fake shim management server for the /metrics tests: node:http on `<root>/<id>/shim-monitor.sock`,
 * serving a fixture body or misbehaving on purpose. Counts the requests it gets.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { Socket } from 'node:net';
import * as path from 'node:path';
import type { SandboxInfo } from '../../src/types';
import { usableUnixPath } from '../../src/util/unix-path';

export type FakeBehaviour =
  | { kind: 'body'; body: string }
  | { kind: 'slow'; ms: number; body: string }
  | { kind: 'hang' }
  | { kind: 'http500' }
  | { kind: 'disconnect'; body: string }
  | { kind: 'gone' };

export interface FakeShim {
  sb: SandboxInfo;
  requests: number;
  behaviour: FakeBehaviour;
  close(): Promise<void>;
}

export async function startFakeShim(
  root: string,
  id: string,
  behaviour: FakeBehaviour,
  extra: Partial<SandboxInfo> = {},
): Promise<FakeShim> {
  const dir = path.join(root, id);
  fs.mkdirSync(dir, { recursive: true });
  const sb: SandboxInfo = { id, runtime: 'go', root, dir, ...extra };
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const shim: FakeShim = { sb, requests: 0, behaviour, close: async () => undefined };
  if (behaviour.kind === 'gone') return shim;
  const server = http.createServer((req, res) => {
    shim.requests++;
    const b = shim.behaviour;
    switch (b.kind) {
      case 'body':
        res.setHeader('Content-Type', 'text/plain; version=0.0.4');
        res.end(b.body);
        return;
      case 'slow': {
        const t = setTimeout(() => {
          timers.delete(t);
          res.end(b.body);
        }, b.ms);
        timers.add(t);
        return;
      }
      case 'hang':
        return;
      case 'http500':
        res.statusCode = 500;
        res.end('internal error: agent unreachable\n');
        return;
      case 'disconnect':
        res.setHeader('Content-Length', String(b.body.length * 2));
        res.write(b.body);
        setImmediate(() => req.socket.destroy());
        return;
      default:
        res.end();
    }
  });
  server.on('connection', s => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const bind = usableUnixPath(path.join(dir, 'shim-monitor.sock'));
    server.listen(bind.path, () => {
      bind.release();
      resolve();
    });
  });
  shim.close = () =>
    new Promise<void>(resolve => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return shim;
}
