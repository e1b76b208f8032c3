/**
 * Real servers for the daemon tests: sandbox trees in tmp dirs, node:http shims on
 * `<dir>/shim-monitor.sock`, and a grpc-js CRI server on a unix socket.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { asServiceDefinition, criService } from '../../src/cri/cri-proto';
import { usableUnixPath } from '../../src/util/unix-path';

export const hexId = (n: number): string => n.toString(16).padStart(64, '0');

/** A fake shim on `<dir>/shim-monitor.sock`; `routes` maps a path to a handler. */
export class FakeShim {
  readonly server: http.Server;
  readonly requests: string[] = [];
  private readonly sockets = new Set<import('node:net').Socket>();
  constructor(
    readonly socketPath: string,
    routes: Record<string, (req: http.IncomingMessage, res: http.ServerResponse) => void>,
  ) {
    this.server = http.createServer((req, res) => {
      this.requests.push(req.url ?? '');
      const p = new URL(req.url ?? '/', 'http://shim').pathname;
      const h = routes[p];
      if (h) h(req, res);
      else {
        res.statusCode = 404;
        res.setHeader('Content-Type', 'text/plain; charset=utf-8');
        res.end('404 page not found\n');
      }
    });
    this.server.on('connection', s => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }
  listen(): Promise<this> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      // Bound like the real shims and the simulator: a path over sun_path goes through its directory.
      const bind = usableUnixPath(this.socketPath);
      this.server.listen(bind.path, () => {
        bind.release();
        resolve(this);
      });
    });
  }
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise(resolve => this.server.close(() => resolve()));
  }
}

/** Go-runtime sandbox directory with persist.json. */
export function makeGoSandbox(
  root: string,
  id: string,
  hypervisor = 'qemu',
  agentUrl = 'vsock://42:1024',
): string {
  const dir = path.join(root, id);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'persist.json'),
    JSON.stringify({
      State: 'running',
      HypervisorState: { Type: hypervisor, Pid: 1 },
      AgentState: { URL: agentUrl },
    }),
  );
  return dir;
}

/** runtime-rs sandbox directory with state.json. */
export function makeRsSandbox(root: string, id: string, hypervisor = 'dragonball'): string {
  const dir = path.join(root, id);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'state.json'),
    JSON.stringify(
      { sandbox_type: 'virt_container', hypervisor: { hypervisor_type: hypervisor, pid: null } },
      null,
      2,
    ),
  );
  return dir;
}

export interface FakePod {
  id: string;
  name: string;
  namespace: string;
  uid: string;
}

type Unary = (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => void;

/** A CRI RuntimeService on a unix socket. Counts calls; pods can be hidden; v1 can be left out. */
export class FakeCri {
  readonly pods = new Map<string, FakePod>();
  /** Ids answered as unknown (not listed, NOT_FOUND on status). */
  readonly hidden = new Set<string>();
  readonly calls: { method: string; id?: string; version: string }[] = [];
  private server?: grpc.Server;

  constructor(
    readonly socketPath: string,
    readonly versions: ('v1' | 'v1alpha2')[] = ['v1'],
  ) {}

  callsFor(id: string): number {
    return this.calls.filter(c => c.id === id || (c.method === 'ListPodSandbox' && c.id === undefined))
      .length;
  }

  async start(): Promise<this> {
    const server = new grpc.Server();
    for (const version of this.versions) {
      const svc = asServiceDefinition(criService(version));
      const list: Unary = (call, cb) => {
        this.calls.push({ method: 'ListPodSandbox', version });
        const req = call.request as { filter?: { state?: { state?: string } } };
        if (req.filter?.state?.state !== 'SANDBOX_READY') {
          cb({ code: grpc.status.INVALID_ARGUMENT, details: 'expected the READY filter' });
          return;
        }
        const items = [...this.pods.values()]
          .filter(p => !this.hidden.has(p.id))
          .map(p => ({
            id: p.id,
            metadata: { name: p.name, uid: p.uid, namespace: p.namespace, attempt: 0 },
            state: 'SANDBOX_READY',
          }));
        cb(null, { items });
      };
      const status: Unary = (call, cb) => {
        const id = (call.request as { pod_sandbox_id: string }).pod_sandbox_id;
        this.calls.push({ method: 'PodSandboxStatus', id, version });
        const p = this.pods.get(id);
        if (!p || this.hidden.has(id)) {
          cb({
            code: grpc.status.NOT_FOUND,
            details: `an error occurred when try to find sandbox ${id}: not found`,
          });
          return;
        }
        cb(null, {
          status: {
            id,
            metadata: { name: p.name, uid: p.uid, namespace: p.namespace },
            state: 'SANDBOX_READY',
          },
        });
      };
      const ver: Unary = (_call, cb) => cb(null, { version: '0.1.0', runtime_name: 'fake' });
      server.addService(svc, { ListPodSandbox: list, PodSandboxStatus: status, Version: ver });
    }
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${this.socketPath}`, grpc.ServerCredentials.createInsecure(), err =>
        err ? reject(err) : resolve(),
      ),
    );
    this.server = server;
    return this;
  }

  stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return Promise.resolve();
    return new Promise(resolve => {
      s.forceShutdown();
      resolve();
    });
  }
}

/** GET over loopback, returning status, headers and body. */
export function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, res => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** GET with a raw, unnormalised request path (for `..` and `%2e%2e` probes). */
export function rawGet(
  port: number,
  rawPath: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: rawPath, method: 'GET', agent: false }, res => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}
