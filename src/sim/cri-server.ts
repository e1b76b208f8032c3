/**
 * A simulated CRI runtime (containerd's RuntimeService subset kata-monitor uses): a real grpc-js server on a
 * unix socket serving `runtime.v1` and/or `runtime.v1alpha2` `Version`, `ListPodSandbox` and
 * `PodSandboxStatus` from an in-memory table.
 *
 * Knobs for tests: served API versions (an unserved one answers UNIMPLEMENTED, as grpc-js does for unknown
 * services), `lagMs` (an entry is visible only `lagMs` after it was added), `delayMs` (every call answers that
 * much later), hidden entries (sandboxes CRI does not know), stop()/start() on the same path, and call counters
 * per method and per requested sandbox id.
 */
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { asServiceDefinition, criService, type CriApiVersion } from '../cri/cri-proto';

export type { CriApiVersion } from '../cri/cri-proto';
export type CriSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';

/** One pod sandbox as the CRI runtime knows it. */
export interface CriPodEntry {
  id: string;
  name: string;
  namespace: string;
  uid: string;
  attempt?: number;
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  runtimeHandler: string;
  /** Ids of the pod's app containers (the sandbox's own pause container is not listed, as in CRI). */
  containers?: string[];
  state?: CriSandboxState;
  /** Creation time in ns since the epoch (decimal string); defaults to when it was added. */
  createdAtNs?: string;
  ip?: string;
  /** Hidden entries are in the table but never answered (a sandbox CRI does not know). */
  hidden?: boolean;
}

export interface CriServerOptions {
  /** Unix socket path, e.g. `<dir>/cri.sock`. */
  socketPath: string;
  apis?: CriApiVersion[];
  lagMs?: number;
  delayMs?: number;
  /** Clock (ms); injectable for tests. */
  now?: () => number;
}

interface StoredEntry extends CriPodEntry {
  addedAt: number;
}

/** A generic client class of one API version's RuntimeService (its `.service` is what the server adds). */
export function loadRuntimeService(api: CriApiVersion): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(
    asServiceDefinition(criService(api)),
    `runtime.${api}.RuntimeService`,
  );
}

interface ListRequest {
  filter: null | {
    id: string;
    state: null | { state: CriSandboxState };
    label_selector: Record<string, string>;
  };
}

export class SimCriServer {
  private server: grpc.Server | undefined;
  private readonly entries = new Map<string, StoredEntry>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly methodCalls = new Map<string, number>();
  private readonly idCalls = new Map<string, number>();
  private readonly apis: CriApiVersion[];
  private readonly now: () => number;
  lagMs: number;
  delayMs: number;

  private constructor(readonly opts: CriServerOptions) {
    this.apis = opts.apis ?? ['v1', 'v1alpha2'];
    this.now = opts.now ?? Date.now;
    this.lagMs = opts.lagMs ?? 0;
    this.delayMs = opts.delayMs ?? 0;
  }

  static async start(opts: CriServerOptions): Promise<SimCriServer> {
    const s = new SimCriServer(opts);
    await s.start();
    return s;
  }

  get socketPath(): string {
    return this.opts.socketPath;
  }

  /** `unix://<path>`: what a CRI client dials. */
  get endpoint(): string {
    return `unix://${this.opts.socketPath}`;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** (Re)start serving on the same socket path (CRI back up). */
  async start(): Promise<void> {
    if (this.server) return;
    try {
      fs.unlinkSync(this.opts.socketPath);
    } catch {
      /* no stale socket */
    }
    const server = new grpc.Server();
    for (const api of this.apis) {
      server.addService(loadRuntimeService(api).service, {
        Version: this.wrap('Version', (_req: unknown) => ({
          version: '0.1.0',
          runtime_name: 'containerd',
          runtime_version: 'v2.0.5',
          runtime_api_version: api,
        })),
        ListPodSandbox: this.wrap('ListPodSandbox', (req: ListRequest) => ({ items: this.list(req) })),
        ListContainers: this.wrap(
          'ListContainers',
          (req: { filter: null | { id: string; pod_sandbox_id: string } }) => ({
            containers: this.containers(req.filter?.pod_sandbox_id ?? '', req.filter?.id ?? ''),
          }),
        ),
        PodSandboxStatus: this.wrap('PodSandboxStatus', (req: { pod_sandbox_id: string }) => {
          const e = this.visible(req.pod_sandbox_id);
          if (!e) {
            const err: Partial<grpc.StatusObject> = {
              code: grpc.status.NOT_FOUND,
              details: `an error occurred when try to find sandbox "${req.pod_sandbox_id}": not found`,
            };
            throw err;
          }
          return {
            status: {
              id: e.id,
              metadata: this.metadata(e),
              state: e.state ?? 'SANDBOX_READY',
              created_at: this.createdAt(e),
              network: { ip: e.ip ?? '', additional_ips: [] },
              labels: e.labels,
              annotations: e.annotations ?? {},
              runtime_handler: e.runtimeHandler,
            },
            info: {},
            timestamp: String(BigInt(this.now()) * 1000000n),
          };
        }),
      });
    }
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix:${this.opts.socketPath}`, grpc.ServerCredentials.createInsecure(), err =>
        err ? reject(err) : resolve(),
      );
    });
    this.server = server;
  }

  /** Stop serving (CRI down); the table and counters are kept. The socket file is removed. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>(resolve => {
      const t = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 200);
      server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
    try {
      fs.unlinkSync(this.opts.socketPath);
    } catch {
      /* gone already */
    }
  }

  /** Add or replace an entry; it becomes visible `lagMs` from now. */
  upsert(entry: CriPodEntry): void {
    const prev = this.entries.get(entry.id);
    this.entries.set(entry.id, { ...entry, addedAt: prev?.addedAt ?? this.now() });
  }

  remove(id: string): void {
    this.entries.delete(id);
  }

  setHidden(id: string, hidden: boolean): void {
    const e = this.entries.get(id);
    if (e) e.hidden = hidden;
  }

  /** All entries, visible or not. */
  all(): CriPodEntry[] {
    return [...this.entries.values()].map(({ addedAt: _a, ...e }) => e);
  }

  /** Calls served (or delayed) per method name (`ListPodSandbox`, `PodSandboxStatus`, `Version`). */
  callCount(method: string): number {
    return this.methodCalls.get(method) ?? 0;
  }

  /** Calls that named this sandbox id (filter.id of ListPodSandbox, or PodSandboxStatus). */
  idCallCount(id: string): number {
    return this.idCalls.get(id) ?? 0;
  }

  resetCounters(): void {
    this.methodCalls.clear();
    this.idCalls.clear();
  }

  private containers(podSandboxId: string, id: string): object[] {
    const out: object[] = [];
    for (const e of this.entries.values()) {
      if (podSandboxId !== '' && e.id !== podSandboxId) continue;
      if (!this.visible(e.id)) continue;
      for (const [i, cid] of (e.containers ?? []).entries()) {
        if (id !== '' && cid !== id) continue;
        out.push({
          id: cid,
          pod_sandbox_id: e.id,
          metadata: { name: `c${i}`, attempt: 0 },
          state: 'CONTAINER_RUNNING',
        });
      }
    }
    return out;
  }

  private visible(id: string): StoredEntry | undefined {
    const e = this.entries.get(id);
    if (!e || e.hidden) return undefined;
    if (this.now() - e.addedAt < this.lagMs) return undefined;
    return e;
  }

  private metadata(e: StoredEntry): object {
    return { name: e.name, uid: e.uid, namespace: e.namespace, attempt: e.attempt ?? 0 };
  }

  private createdAt(e: StoredEntry): string {
    return e.createdAtNs ?? String(BigInt(e.addedAt) * 1000000n);
  }

  private list(req: ListRequest): object[] {
    const f = req.filter;
    const out: object[] = [];
    for (const id of this.entries.keys()) {
      const e = this.visible(id);
      if (!e) continue;
      if (f) {
        if (f.id && f.id !== e.id) continue;
        if (f.state && f.state.state !== (e.state ?? 'SANDBOX_READY')) continue;
        const sel = f.label_selector ?? {};
        if (Object.entries(sel).some(([k, v]) => e.labels[k] !== v)) continue;
      }
      out.push({
        id: e.id,
        metadata: this.metadata(e),
        state: e.state ?? 'SANDBOX_READY',
        created_at: this.createdAt(e),
        labels: e.labels,
        annotations: e.annotations ?? {},
        runtime_handler: e.runtimeHandler,
      });
    }
    return out;
  }

  private wrap<Req, Res>(
    method: string,
    fn: (req: Req) => Res,
  ): (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => void {
    return (call, cb) => {
      this.methodCalls.set(method, (this.methodCalls.get(method) ?? 0) + 1);
      const req = call.request as Req & { pod_sandbox_id?: string; filter?: { id?: string } | null };
      const id = req.pod_sandbox_id || req.filter?.id;
      if (id) this.idCalls.set(id, (this.idCalls.get(id) ?? 0) + 1);
      const answer = (): void => {
        try {
          cb(null, fn(call.request));
        } catch (err) {
          cb(err as Partial<grpc.StatusObject>, null);
        }
      };
      if (this.delayMs > 0) {
        const t = setTimeout(() => {
          this.timers.delete(t);
          answer();
        }, this.delayMs);
        this.timers.add(t);
      } else {
        answer();
      }
    };
  }
}
