/**
 * One long-lived grpc-js channel to the CRI runtime (`runtime.v1.RuntimeService`, falling back to
 * `runtime.v1alpha2` once the runtime answers UNIMPLEMENTED). Every call has a deadline.
 */
import * as grpc from '@grpc/grpc-js';
import { KataMonitorError } from '../errors';
import type { CriMetadata } from '../types';
import { criService, type CriApiVersion, type CriMethodName } from './cri-proto';

export type { CriApiVersion } from './cri-proto';

/** The READY filter kata-monitor sends (wire bytes `0a 02 12 00`: filter{ state{ state: READY(0) } }). */
export const READY_FILTER_REQUEST = { filter: { state: { state: 'SANDBOX_READY' } } };

export interface CriPod extends CriMetadata {
  id: string;
}

export type CriStatusResult = { found: true; pod: CriPod } | { found: false };

export class CriError extends KataMonitorError {
  readonly grpcCode: number;
  constructor(grpcCode: number, message: string, cause?: unknown) {
    super(grpcCode === grpc.status.DEADLINE_EXCEEDED ? 'CRI_DEADLINE' : 'CRI_UNAVAILABLE', message, {
      cause,
    });
    this.name = 'CriError';
    this.grpcCode = grpcCode;
  }
}

interface RawMeta {
  name?: string;
  uid?: string;
  namespace?: string;
}

function toPod(id: unknown, meta: RawMeta | null | undefined): CriPod {
  return {
    id: typeof id === 'string' ? id : '',
    uid: meta?.uid ?? '',
    name: meta?.name ?? '',
    namespace: meta?.namespace ?? '',
  };
}

export interface CriClientOptions {
  /** grpc target, e.g. `unix:///run/containerd/containerd.sock`. */
  target: string;
  /** Per-call deadline, ms. */
  deadlineMs?: number;
}

export class CriClient {
  private readonly client: grpc.Client;
  private readonly deadlineMs: number;
  private version: CriApiVersion = 'v1';

  constructor(opts: CriClientOptions) {
    this.deadlineMs = opts.deadlineMs ?? 2000;
    this.client = new grpc.Client(opts.target, grpc.credentials.createInsecure(), {
      // Reconnect quickly after the runtime restarts; the default backoff grows to 120 s.
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
    });
  }

  /** The API version in use (switches to v1alpha2 after the runtime answered UNIMPLEMENTED for v1). */
  apiVersion(): CriApiVersion {
    return this.version;
  }

  close(): void {
    this.client.close();
  }

  private unary(method: CriMethodName, request: unknown): Promise<unknown> {
    const call = (version: CriApiVersion): Promise<unknown> =>
      new Promise((resolve, reject) => {
        const m = criService(version)[method];
        this.client.makeUnaryRequest(
          m.path,
          m.requestSerialize,
          m.responseDeserialize,
          request,
          new grpc.Metadata(),
          { deadline: Date.now() + this.deadlineMs },
          (err, value) => (err ? reject(err) : resolve(value)),
        );
      });
    return call(this.version).catch((err: grpc.ServiceError) => {
      if (err.code === grpc.status.UNIMPLEMENTED && this.version === 'v1') {
        // containerd 1.x before 1.7 / old CRI-O only serve v1alpha2; remember the switch.
        return call('v1alpha2').then(v => {
          this.version = 'v1alpha2';
          return v;
        });
      }
      throw err;
    });
  }

  private wrap(err: unknown, what: string): CriError {
    const e = err as Partial<grpc.ServiceError>;
    const code = typeof e.code === 'number' ? e.code : grpc.status.UNKNOWN;
    return new CriError(code, `CRI ${what} failed: ${e.details ?? e.message ?? String(err)}`, err);
  }

  /** READY pod sandboxes known to the runtime. */
  async listReadySandboxes(): Promise<CriPod[]> {
    let res: unknown;
    try {
      res = await this.unary('ListPodSandbox', READY_FILTER_REQUEST);
    } catch (err) {
      throw this.wrap(err, 'ListPodSandbox');
    }
    const items = (res as { items?: { id?: string; metadata?: RawMeta | null }[] }).items ?? [];
    return items.map(i => toPod(i.id, i.metadata));
  }

  /** Ids of the containers of one pod sandbox that are created or running (not exited). */
  async listContainerIds(podSandboxId: string): Promise<string[]> {
    let res: unknown;
    try {
      res = await this.unary('ListContainers', { filter: { pod_sandbox_id: podSandboxId } });
    } catch (err) {
      throw this.wrap(err, 'ListContainers');
    }
    const items = (res as { containers?: { id?: string; state?: string }[] }).containers ?? [];
    return items
      .filter(c => typeof c.id === 'string' && c.id !== '' && c.state !== 'CONTAINER_EXITED')
      .map(c => c.id as string)
      .sort();
  }

  /** One sandbox by id; `{found: false}` when the runtime does not know it (gRPC NOT_FOUND). */
  async podSandboxStatus(id: string): Promise<CriStatusResult> {
    try {
      const res = (await this.unary('PodSandboxStatus', { pod_sandbox_id: id, verbose: false })) as {
        status?: { id?: string; metadata?: RawMeta | null } | null;
      };
      if (!res.status) return { found: false };
      return { found: true, pod: toPod(res.status.id || id, res.status.metadata) };
    } catch (err) {
      if ((err as Partial<grpc.ServiceError>).code === grpc.status.NOT_FOUND) return { found: false };
      throw this.wrap(err, 'PodSandboxStatus');
    }
  }
}
