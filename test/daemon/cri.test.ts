import * as path from 'node:path';
import { CriClient } from '../../src/cri/cri-client';
import { MetadataSync } from '../../src/cri/metadata-sync';
import { SandboxStore } from '../../src/discovery/sandbox-store';
import { silentLogger } from '../../src/log';
import { createSelfMetrics } from '../../src/metrics/self-metrics';
import { buildInfo } from '../../src/version';
import { rmrf, tmpDir, waitFor } from '../helpers/util';
import { FakeCri, hexId } from './fixtures';

const ROOT = '/nonexistent/vc/sbs';

describe('CRI metadata', () => {
  let dir: string;
  let cri: FakeCri | undefined;
  let client: CriClient | undefined;
  let sync: MetadataSync | undefined;
  let store: SandboxStore;
  let self: ReturnType<typeof createSelfMetrics>;

  beforeEach(() => {
    dir = tmpDir('km-cri-');
    store = new SandboxStore([{ path: ROOT, runtime: 'go' }]);
    self = createSelfMetrics(buildInfo(), { defaultMetrics: false });
  });
  afterEach(async () => {
    await sync?.stop();
    client?.close();
    await cri?.stop();
    sync = client = cri = undefined;
    rmrf(dir);
  });

  const sock = (): string => path.join(dir, 'cri.sock');
  const pod = (n: number): { id: string; name: string; namespace: string; uid: string } => ({
    id: hexId(n),
    name: `pod-${n}`,
    namespace: 'ns',
    uid: `uid-${n}`,
  });
  const value = async (name: string): Promise<number | undefined> =>
    (await self.registry.getSingleMetric(name)?.get())?.values[0]?.value;

  function startSync(): void {
    client = new CriClient({ target: `unix://${sock()}`, deadlineMs: 1000 });
    sync = new MetadataSync({ store, cri: client, logger: silentLogger, self });
    sync.start();
  }

  it('labels a new sandbox right away with one PodSandboxStatus', async () => {
    cri = await new FakeCri(sock()).start();
    cri.pods.set(hexId(1), pod(1));
    startSync();
    store.add(ROOT, hexId(1));
    await waitFor(() => store.get(hexId(1))?.cri, 1000, 10, 'labels within 1 s');
    expect(store.get(hexId(1))?.cri).toEqual({ uid: 'uid-1', name: 'pod-1', namespace: 'ns' });
    expect(cri.calls).toEqual([{ method: 'PodSandboxStatus', id: hexId(1), version: 'v1' }]);
    expect(await value('kata_monitor_cri_up')).toBe(1);
    expect(await value('kata_monitor_sandboxes_without_metadata')).toBe(0);
  });

  it('labels existing sandboxes with one READY-filtered ListPodSandbox, and a lagging one later', async () => {
    cri = await new FakeCri(sock()).start();
    for (const n of [1, 2, 3]) {
      cri.pods.set(hexId(n), pod(n));
      store.add(ROOT, hexId(n));
    }
    cri.hidden.add(hexId(3));
    startSync();
    await waitFor(() => store.get(hexId(1))?.cri && store.get(hexId(2))?.cri, 1000);
    expect(cri.calls[0]).toEqual({ method: 'ListPodSandbox', version: 'v1' });
    expect(store.get(hexId(3))?.cri).toBeUndefined();
    expect(store.has(hexId(3))).toBe(true);
    expect(await value('kata_monitor_sandboxes_without_metadata')).toBe(1);
    cri.hidden.delete(hexId(3));
    await waitFor(() => store.get(hexId(3))?.cri, 4000, 25, 'lagging sandbox labelled on retry');
    expect(await value('kata_monitor_sandboxes_without_metadata')).toBe(0);
  });

  it('backs off for a sandbox CRI does not know, never dropping it', async () => {
    cri = await new FakeCri(sock()).start();
    startSync();
    store.add(ROOT, hexId(7));
    const t0 = Date.now();
    // attempts at ~0, 1, 3, 7 s: four calls in the first ~7.5 s, where a 1 s poll would make eight. Wait
    // for the sync to have counted the fourth answer, not only for the fake to have seen the call (under
    // load the answer is processed a moment later).
    await waitFor(
      () => cri && cri.calls.length >= 4 && sync?.pendingState().get(hexId(7))?.attempts === 4,
      10_000,
      50,
      'fourth CRI attempt counted',
    );
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(6000);
    expect(cri.calls.map(c => c.method)).toEqual([
      'PodSandboxStatus',
      'ListPodSandbox',
      'ListPodSandbox',
      'ListPodSandbox',
    ]);
    expect(store.has(hexId(7))).toBe(true);
    expect(sync?.pendingState().get(hexId(7))?.attempts).toBe(4);
    expect(await value('kata_monitor_cri_up')).toBe(1);
  }, 20_000);

  it('keeps going while CRI is down and labels once it is up', async () => {
    startSync();
    store.add(ROOT, hexId(1));
    await new Promise(r => setTimeout(r, 300));
    expect(await value('kata_monitor_cri_up')).toBe(0);
    expect(await value('kata_monitor_sandboxes_without_metadata')).toBe(1);
    cri = new FakeCri(sock());
    cri.pods.set(hexId(1), pod(1));
    await cri.start();
    await waitFor(() => store.get(hexId(1))?.cri, 8000, 50, 'labels after CRI came up');
    expect(await value('kata_monitor_cri_up')).toBe(1);
  }, 15_000);

  it('falls back to v1alpha2 when v1 is UNIMPLEMENTED, and remembers it', async () => {
    cri = await new FakeCri(sock(), ['v1alpha2']).start();
    cri.pods.set(hexId(1), pod(1));
    cri.pods.set(hexId(2), pod(2));
    startSync();
    store.add(ROOT, hexId(1));
    await waitFor(() => store.get(hexId(1))?.cri, 2000);
    expect(client?.apiVersion()).toBe('v1alpha2');
    store.add(ROOT, hexId(2));
    await waitFor(() => store.get(hexId(2))?.cri, 2000);
    expect(cri.calls.map(c => c.version)).toEqual(['v1alpha2', 'v1alpha2']);
  });
});
