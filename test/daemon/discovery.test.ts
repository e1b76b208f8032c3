import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { silentLogger } from '../../src/log';
import { SandboxStore } from '../../src/discovery/sandbox-store';
import { SandboxWatcher } from '../../src/discovery/sandbox-watcher';
import { createSelfMetrics } from '../../src/metrics/self-metrics';
import { buildInfo } from '../../src/version';
import { rmrf, tmpDir, waitFor } from '../helpers/util';
import { hexId, makeGoSandbox, makeRsSandbox } from './fixtures';

describe('SandboxWatcher', () => {
  let dir: string;
  let goRoot: string;
  let rsRoot: string;
  let watcher: SandboxWatcher | undefined;
  let store: SandboxStore;
  const servers: net.Server[] = [];
  const self = createSelfMetrics(buildInfo(), { defaultMetrics: false });

  beforeEach(() => {
    dir = tmpDir('km-disc-');
    goRoot = path.join(dir, 'vc', 'sbs');
    rsRoot = path.join(dir, 'kata');
  });
  afterEach(async () => {
    watcher?.stop();
    watcher = undefined;
    await Promise.all(servers.splice(0).map(s => new Promise(r => s.close(r))));
    rmrf(dir);
  });

  async function start(): Promise<SandboxWatcher> {
    const roots = [
      { path: goRoot, runtime: 'go' as const },
      { path: rsRoot, runtime: 'rs' as const },
    ];
    store = new SandboxStore(roots);
    watcher = new SandboxWatcher({ roots, store, logger: silentLogger, self, tickMs: 200, stateRetryMs: 50 });
    await watcher.start();
    return watcher;
  }

  const gauge = async (name: string, labels: Record<string, string> = {}): Promise<number | undefined> => {
    const m = await self.registry.getSingleMetric(name)?.get();
    return m?.values.find(v => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value;
  };

  it('finds existing sandboxes on start, with runtime, hypervisor and agent URL', async () => {
    makeGoSandbox(goRoot, hexId(1), 'clh', 'hvsock:///run/vc/vm/x/clh.sock:1024');
    makeRsSandbox(rsRoot, hexId(2), 'dragonball');
    fs.writeFileSync(path.join(goRoot, 'stray-file'), '');
    await start();
    expect(store.ids()).toEqual([hexId(1), hexId(2)]);
    await waitFor(() => store.get(hexId(2))?.hypervisor, 2000, 25, 'state.json read');
    expect(store.get(hexId(1))).toMatchObject({
      runtime: 'go',
      dir: path.join(goRoot, hexId(1)),
      hypervisor: 'clh',
      agentUrl: 'hvsock:///run/vc/vm/x/clh.sock:1024',
    });
    expect(store.get(hexId(2))).toMatchObject({ runtime: 'rs', hypervisor: 'dragonball' });
    expect(watcher?.readinessProblems()).toEqual([]);
    expect(await gauge('kata_monitor_sandboxes', { runtime: 'go' })).toBe(1);
    expect(await gauge('kata_monitor_sandbox_root_watch_up', { path: rsRoot })).toBe(1);
  });

  it('sees adds and removes, and reads persist.json written after the directory', async () => {
    fs.mkdirSync(goRoot, { recursive: true });
    fs.mkdirSync(rsRoot, { recursive: true });
    await start();
    const id = hexId(3);
    fs.mkdirSync(path.join(goRoot, id));
    await waitFor(() => store.has(id), 1000, 10, 'add within 1 s');
    expect(store.get(id)?.hypervisor).toBeUndefined();
    fs.writeFileSync(
      path.join(goRoot, id, 'persist.json'),
      JSON.stringify({ HypervisorState: { Type: 'qemu' }, AgentState: { URL: 'vsock://3:1024' } }),
    );
    await waitFor(() => store.get(id)?.hypervisor === 'qemu', 3000, 25, 'late persist.json');
    rmrf(path.join(goRoot, id));
    await waitFor(() => !store.has(id), 1000, 10, 'remove within 1 s');
  });

  it('ignores runtime-rs helper dirs (kata/firecracker) and invalid names until proven', async () => {
    fs.mkdirSync(path.join(rsRoot, 'firecracker', hexId(9), 'root'), { recursive: true });
    fs.mkdirSync(path.join(rsRoot, '.tmp'), { recursive: true });
    fs.mkdirSync(path.join(goRoot, 'bad name'), { recursive: true });
    makeRsSandbox(rsRoot, 'mypod');
    const sockDir = path.join(rsRoot, 'sockonly');
    fs.mkdirSync(sockDir);
    await start();
    expect(store.ids()).toEqual(['mypod']);
    // A listening shim socket appearing later proves the directory.
    const srv = net.createServer();
    servers.push(srv);
    await new Promise<void>(r => srv.listen(path.join(sockDir, 'shim-monitor.sock'), () => r()));
    await waitFor(() => store.has('sockonly'), 2000, 25, 'dir proven by its socket');
    expect(store.has('firecracker')).toBe(false);
  });

  it('picks up a root created late, and a root removed and recreated', async () => {
    await start();
    expect(watcher?.readinessProblems()).toEqual([
      `sandbox_root_missing:${goRoot}`,
      `sandbox_root_missing:${rsRoot}`,
    ]);
    expect(await gauge('kata_monitor_sandbox_root_watch_up', { path: goRoot })).toBe(0);
    makeGoSandbox(goRoot, hexId(4));
    await waitFor(() => store.has(hexId(4)), 2000, 25, 'late root within 2 s');
    // One root watched: the other one missing is a node without that runtime, not a problem.
    expect(watcher?.readinessProblems()).toEqual([]);
    expect(await gauge('kata_monitor_sandbox_root_watch_up', { path: rsRoot })).toBe(0);

    rmrf(goRoot);
    await waitFor(() => !store.has(hexId(4)), 2000, 25, 'removed root drops its sandboxes');
    await waitFor(() => watcher?.readinessProblems().includes(`sandbox_root_missing:${goRoot}`), 2000);
    makeGoSandbox(goRoot, hexId(5));
    await waitFor(() => store.has(hexId(5)), 2000, 25, 'recreated root watched again');
    // The new watch works for events too, not just the rescan.
    fs.mkdirSync(path.join(goRoot, hexId(6)));
    await waitFor(() => store.has(hexId(6)), 1000, 10, 'add after re-watch');
  });

  it('prefers the Go entry for an id present under both roots', async () => {
    makeRsSandbox(rsRoot, hexId(8));
    makeGoSandbox(goRoot, hexId(8));
    await start();
    expect(store.list()).toHaveLength(1);
    expect(store.get(hexId(8))?.runtime).toBe('go');
  });

  it('reports an unreadable root instead of failing', async () => {
    if (process.getuid?.() === 0) {
      // root reads any directory; use a file where a directory is expected instead
      fs.mkdirSync(path.dirname(goRoot), { recursive: true });
      fs.writeFileSync(goRoot, 'not a dir');
      await start();
      expect(watcher?.readinessProblems()).toContain(`sandbox_root_watch_failed:${goRoot}`);
      return;
    }
    fs.mkdirSync(goRoot, { recursive: true });
    fs.chmodSync(goRoot, 0o000);
    try {
      await start();
      expect(watcher?.readinessProblems()).toContain(`sandbox_root_unreadable:${goRoot}`);
    } finally {
      fs.chmodSync(goRoot, 0o755);
    }
  });
});
