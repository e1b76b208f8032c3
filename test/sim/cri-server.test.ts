import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  SimCriServer,
  loadRuntimeService,
  type CriApiVersion,
  type CriServerOptions,
} from '../../src/sim/cri-server';
import { rmrf, tmpDir, waitFor } from '../helpers/util';

type Client = grpc.Client &
  Record<string, (req: object, cb: (err: grpc.ServiceError | null, res: never) => void) => void>;

function client(server: SimCriServer, api: CriApiVersion = 'v1'): Client {
  const Svc = loadRuntimeService(api);
  return new Svc(server.endpoint, grpc.credentials.createInsecure()) as unknown as Client;
}

function call<T>(c: Client, method: string, req: object): Promise<T> {
  return new Promise((resolve, reject) =>
    c[method]!(req, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

interface Item {
  id: string;
  metadata: { name: string; uid: string; namespace: string };
  runtime_handler: string;
}

const READY = { filter: { state: { state: 'SANDBOX_READY' } } };

function pod(id: string, extra: Partial<Parameters<SimCriServer['upsert']>[0]> = {}) {
  return {
    id,
    name: `web-${id}`,
    namespace: 'default',
    uid: `uid-${id}`,
    labels: { 'io.kubernetes.pod.name': `web-${id}`, app: id === 'a' ? 'web' : 'db' },
    runtimeHandler: 'kata-clh',
    ...extra,
  };
}

describe('SimCriServer', () => {
  let dir: string;
  let server: SimCriServer | undefined;
  const clients: Client[] = [];
  let now = 1_000_000;

  beforeEach(() => {
    dir = tmpDir('km-cri-');
    now = 1_000_000;
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await server?.stop();
    server = undefined;
    rmrf(dir);
  });

  async function start(opts: Partial<CriServerOptions> = {}): Promise<SimCriServer> {
    server = await SimCriServer.start({ socketPath: path.join(dir, 'cri.sock'), now: () => now, ...opts });
    return server;
  }
  function cl(api: CriApiVersion = 'v1'): Client {
    const c = client(server!, api);
    clients.push(c);
    return c;
  }

  it('lists READY sandboxes with the filter kata-monitor sends, honours id and label selector', async () => {
    const s = await start();
    s.upsert(pod('a'));
    s.upsert(pod('b', { state: 'SANDBOX_NOTREADY' }));
    s.upsert(pod('c'));
    const c = cl();
    const ready = await call<{ items: Item[] }>(c, 'ListPodSandbox', READY);
    expect(ready.items.map(i => i.id).sort()).toEqual(['a', 'c']);
    expect(ready.items.find(i => i.id === 'a')!.metadata).toMatchObject({
      name: 'web-a',
      uid: 'uid-a',
      namespace: 'default',
    });
    const all = await call<{ items: Item[] }>(c, 'ListPodSandbox', {});
    expect(all.items).toHaveLength(3);
    const byId = await call<{ items: Item[] }>(c, 'ListPodSandbox', { filter: { id: 'c' } });
    expect(byId.items.map(i => i.id)).toEqual(['c']);
    const sel = await call<{ items: Item[] }>(c, 'ListPodSandbox', {
      filter: { label_selector: { app: 'web' } },
    });
    expect(sel.items.map(i => i.id)).toEqual(['a']);
    expect(s.callCount('ListPodSandbox')).toBe(4);
    expect(s.idCallCount('c')).toBe(1);
  });

  it('PodSandboxStatus answers known ids and NOT_FOUND for unknown and hidden ones', async () => {
    const s = await start();
    s.upsert(pod('a'));
    s.upsert(pod('h', { hidden: true }));
    const c = cl();
    const st = await call<{ status: Item }>(c, 'PodSandboxStatus', { pod_sandbox_id: 'a' });
    expect(st.status.metadata.name).toBe('web-a');
    expect(st.status.runtime_handler).toBe('kata-clh');
    await expect(call(c, 'PodSandboxStatus', { pod_sandbox_id: 'zzz' })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
    await expect(call(c, 'PodSandboxStatus', { pod_sandbox_id: 'h' })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
    const list = await call<{ items: Item[] }>(c, 'ListPodSandbox', READY);
    expect(list.items.map(i => i.id)).toEqual(['a']);
    expect(s.idCallCount('zzz')).toBe(1);
  });

  it('serves v1alpha2 only when asked: v1 calls are UNIMPLEMENTED', async () => {
    const s = await start({ apis: ['v1alpha2'] });
    s.upsert(pod('a'));
    await expect(call(cl('v1'), 'ListPodSandbox', READY)).rejects.toMatchObject({
      code: grpc.status.UNIMPLEMENTED,
    });
    const res = await call<{ items: Item[] }>(cl('v1alpha2'), 'ListPodSandbox', READY);
    expect(res.items.map(i => i.id)).toEqual(['a']);
    const v = await call<{ runtime_api_version: string }>(cl('v1alpha2'), 'Version', {});
    expect(v.runtime_api_version).toBe('v1alpha2');
  });

  it('makes entries visible only lagMs after they were added', async () => {
    const s = await start({ lagMs: 500 });
    s.upsert(pod('a'));
    const c = cl();
    expect((await call<{ items: Item[] }>(c, 'ListPodSandbox', READY)).items).toHaveLength(0);
    now += 499;
    expect((await call<{ items: Item[] }>(c, 'ListPodSandbox', READY)).items).toHaveLength(0);
    now += 1;
    expect((await call<{ items: Item[] }>(c, 'ListPodSandbox', READY)).items).toHaveLength(1);
  });

  it('delays answers when slow and goes down and up again on the same path', async () => {
    const s = await start({ delayMs: 300 });
    s.upsert(pod('a'));
    const c = cl();
    const slow = await call<{ items: Item[] }>(c, 'ListPodSandbox', READY);
    expect(slow.items.map(i => i.id)).toEqual(['a']);
    const deadline = new Date(Date.now() + 100);
    // a call with a deadline shorter than the delay fails with DEADLINE_EXCEEDED
    const Svc = loadRuntimeService('v1');
    const c2 = new Svc(s.endpoint, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      ListPodSandbox: (
        r: object,
        m: grpc.Metadata,
        o: grpc.CallOptions,
        cb: (e: grpc.ServiceError | null) => void,
      ) => void;
    };
    clients.push(c2 as unknown as Client);
    const err = await new Promise<grpc.ServiceError | null>(resolve =>
      c2.ListPodSandbox(READY, new grpc.Metadata(), { deadline }, e => resolve(e)),
    );
    expect(err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    s.delayMs = 0;

    await s.stop();
    expect(fs.existsSync(s.socketPath)).toBe(false);
    const down = await new Promise<grpc.ServiceError | null>(resolve =>
      c2.ListPodSandbox(READY, new grpc.Metadata(), { deadline: new Date(Date.now() + 1000) }, e =>
        resolve(e),
      ),
    );
    expect(down?.code).toBe(grpc.status.UNAVAILABLE);
    await s.start();
    // the client reconnects after its backoff; retry as kata-monitor's sync loop does
    const back = await waitFor(
      () => call<{ items: Item[] }>(cl(), 'ListPodSandbox', READY),
      10000,
      200,
      'CRI back up',
    );
    expect(back.items.map(i => i.id)).toEqual(['a']);
  });
});
