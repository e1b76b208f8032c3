import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseFaultSpec } from '../../src/sim/faults';
import { SimNode } from '../../src/sim/node';
import { goHypervisor, rsHypervisor, sandboxLayout } from '../../src/sim/plan';
import type { SimProcesses } from '../../src/sim/types';
import { rmrf, tmpDir, waitFor } from '../helpers/util';

function get(socketPath: string, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: p, agent: false }, res => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', c => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(3000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('fault spec and layout plan (pure)', () => {
  it('parses index and id-prefix targets, shim and agent faults', () => {
    expect(parseFaultSpec('0:hang,3:slow:2000,5:garbage,7:agent:deny,ab12:gone')).toEqual([
      { target: { index: 0 }, shim: { kind: 'hang' } },
      { target: { index: 3 }, shim: { kind: 'slow', ms: 2000 } },
      { target: { index: 5 }, shim: { kind: 'garbage' } },
      { target: { index: 7 }, agent: { kind: 'deny' } },
      { target: { idPrefix: 'ab12' }, shim: { kind: 'gone' } },
    ]);
    expect(parseFaultSpec('')).toEqual([]);
  });

  it.each(['hang', '0:nope', '0:slow', '0:slow:-5', '0:slow:x', '0:agent:zap', 'zz:hang', '0:hang:3'])(
    'rejects %s with CONFIG_INVALID',
    spec => {
      expect(() => parseFaultSpec(spec)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    },
  );

  it('chooses hypervisors and agent addresses as the real runtimes do', () => {
    expect([0, 1, 2, 3, 4, 5].map(i => goHypervisor(i))).toEqual([
      'clh',
      'clh',
      'clh',
      'clh',
      'firecracker',
      'clh',
    ]);
    expect([0, 1, 2, 3, 4].map(i => rsHypervisor(i))).toEqual([
      'dragonball',
      'dragonball',
      'clh',
      'qemu',
      'firecracker',
    ]);
    const id = 'f'.repeat(64);
    expect(sandboxLayout('/r', 'go', 'clh', id, 9).agentUrl).toBe(`hvsock:///r/vc/vm/${id}/clh.sock:1024`);
    expect(sandboxLayout('/r', 'go', 'qemu', id, 9).agentUrl).toBe('vsock://9:1024');
    expect(sandboxLayout('/r', 'go', 'qemu', id, 9).agentSocketPath).toBeUndefined();
    expect(sandboxLayout('/r', 'go', 'firecracker', id, 9).agentSocketPath).toBe(
      `/r/vc/firecracker/${id}/root/kata.hvsock`,
    );
    expect(sandboxLayout('/r', 'rs', 'dragonball', id, 9).agentUrl).toBe(
      `hvsock:///r/kata/${id}/root/kata.hvsock:1024`,
    );
    expect(sandboxLayout('/r', 'rs', 'clh', id, 9).agentSocketPath).toBe(`/r/kata/${id}/ch-vm.sock`);
    expect(sandboxLayout('/r', 'rs', 'qemu', id, 9).shimSocketPath).toBe(`/r/kata/${id}/shim-monitor.sock`);
  });
});

describe('SimNode', () => {
  let dir: string;
  const nodes: SimNode[] = [];

  beforeEach(() => {
    // short: <dir>/n/vc/sbs/<64 hex>/shim-monitor.sock must fit in 107 bytes
    dir = tmpDir('k-');
  });
  afterEach(async () => {
    for (const n of nodes.splice(0)) await n.stop();
    rmrf(dir);
  });

  async function start(opts: Partial<Parameters<typeof SimNode.start>[0]> = {}): Promise<SimNode> {
    const n = await SimNode.start({ dir: path.join(dir, 'n'), ...opts });
    nodes.push(n);
    return n;
  }

  it('lays out the tree of both runtimes and answers on every shim socket', async () => {
    const node = await start({ sandboxes: 5, rs: 2, seed: 3 });
    const d = node.dir;
    const sbs = node.sandboxes();
    expect(sbs).toHaveLength(7);
    for (const sb of sbs) {
      expect(sb.id).toMatch(/^[0-9a-f]{64}$/);
      expect(sb.containers[0]).toBe(sb.id);
      expect(fs.statSync(sb.shimSocketPath).isSocket()).toBe(true);
      expect((await get(sb.shimSocketPath, '/agent-url')).body).toBe(sb.agentUrl);
      const bundle = path.join(d, 'containerd', 'io.containerd.runtime.v2.task', 'k8s.io', sb.id);
      expect(Number(fs.readFileSync(path.join(bundle, 'shim.pid'), 'utf8'))).toBeGreaterThan(0);
    }
    const go = sbs.filter(s => s.runtime === 'go');
    expect(go.map(s => s.hypervisor)).toEqual(['clh', 'clh', 'clh', 'clh', 'firecracker']);
    const p = JSON.parse(fs.readFileSync(path.join(d, 'vc', 'sbs', go[0]!.id, 'persist.json'), 'utf8'));
    expect(p).toMatchObject({
      State: 'running',
      SandboxContainer: go[0]!.id,
      HypervisorState: { Type: 'clh' },
      AgentState: { URL: go[0]!.agentUrl },
      Config: { HypervisorType: 'clh' },
    });
    expect(typeof p.HypervisorState.Pid).toBe('number');
    expect(p.PersistVersion).toBeDefined();
    for (const c of go[0]!.containers)
      expect(fs.existsSync(path.join(d, 'vc', 'sbs', go[0]!.id, c, 'persist.json'))).toBe(true);
    expect(fs.statSync(path.join(d, 'vc', 'sbs', go[0]!.id)).mode & 0o777).toBe(0o700);
    expect(fs.existsSync(path.join(d, 'vc', 'vm', go[0]!.id))).toBe(true);
    expect(fs.existsSync(path.join(d, 'vc', 'firecracker', go[4]!.id, 'root'))).toBe(true);
    const rs = sbs.filter(s => s.runtime === 'rs');
    expect(rs.map(s => s.hypervisor)).toEqual(['dragonball', 'dragonball']);
    const st = JSON.parse(fs.readFileSync(path.join(d, 'kata', rs[0]!.id, 'state.json'), 'utf8'));
    expect(st.hypervisor).toMatchObject({ hypervisor_type: 'dragonball', pid: null });
    expect(fs.readFileSync(path.join(d, 'kata', rs[0]!.id, 'state.json'), 'utf8')).toContain('\n  "');
    expect(fs.statSync(path.join(d, 'kata', 'firecracker')).isDirectory()).toBe(true);
    expect(go.filter(s => s.pprof)).toHaveLength(3);

    // CRI: every sandbox plus one runc pod without a directory
    const entries = node.cri.all();
    expect(entries.map(e => e.id).sort()).toEqual(
      [...sbs.map(s => s.id), node.summary().runcPods[0]!.id].sort(),
    );
    const runc = entries.find(e => e.runtimeHandler === 'runc')!;
    expect(fs.existsSync(path.join(d, 'vc', 'sbs', runc.id))).toBe(false);
    expect(entries.find(e => e.id === go[0]!.id)!.labels['io.kubernetes.pod.name']).toBe(go[0]!.pod.name);
    expect(go[0]!.pod.name).toMatch(/^[a-z]+-[a-z0-9]{9,10}-[a-z0-9]{5}$/);
  });

  it('is deterministic under a seed', async () => {
    const a = await start({ sandboxes: 3, rs: 1, seed: 11 });
    const ids = a.sandboxes().map(s => [s.id, s.pod.name, s.pod.uid, s.hypervisor]);
    const body = (await get(a.sandboxes()[0]!.shimSocketPath, '/metrics')).body;
    await a.stop();
    nodes.splice(0);
    const b = await start({ sandboxes: 3, rs: 1, seed: 11 });
    expect(b.sandboxes().map(s => [s.id, s.pod.name, s.pod.uid, s.hypervisor])).toEqual(ids);
    expect((await get(b.sandboxes()[0]!.shimSocketPath, '/metrics')).body).toBe(body);
    const c = await start({ dir: path.join(dir, 'c'), sandboxes: 3, seed: 12 });
    expect(c.sandboxes()[0]!.id).not.toBe(ids[0]![0]);
  });

  it('creates in the real order (directory, then socket, then CRI) and removes everything', async () => {
    const node = await start({ sandboxes: 0, socketDelayMs: [150, 150], criDelayAfterSocketMs: [150, 150] });
    const adding = node.addSandbox();
    const sb = (await waitFor(() => node.sandboxes()[0], 2000, 5, 'sandbox registered'))!;
    const seen: string[] = [];
    await waitFor(
      () => {
        const dirThere = fs.existsSync(path.join(sb.sandboxDir, 'persist.json'));
        const sock = fs.existsSync(sb.shimSocketPath);
        const cri = node.cri.all().some(e => e.id === sb.id);
        const state = `${dirThere ? 'D' : '-'}${sock ? 'S' : '-'}${cri ? 'C' : '-'}`;
        if (seen[seen.length - 1] !== state) seen.push(state);
        return cri;
      },
      3000,
      5,
      'CRI entry',
    );
    await adding;
    expect(seen).toEqual(['D--', 'DS-', 'DSC']);

    expect(await node.removeSandbox(sb.id)).toBe(true);
    expect(fs.existsSync(sb.sandboxDir)).toBe(false);
    expect(fs.existsSync(path.join(node.dir, 'vc', 'vm', sb.id))).toBe(false);
    expect(node.cri.all().some(e => e.id === sb.id)).toBe(false);
  });

  it('applies faults from the spec and at run time; hides unknownToCri sandboxes', async () => {
    const node = await start({
      sandboxes: 3,
      faults: parseFaultSpec('1:http500,2:agent:deny'),
      unknownToCri: [0],
    });
    const [s0, s1, s2] = node.sandboxes();
    expect((await get(s1!.shimSocketPath, '/metrics')).status).toBe(500);
    expect(s2!.agentFault).toEqual({ kind: 'deny' });
    expect((await get(s2!.shimSocketPath, '/metrics')).body).not.toContain('kata_agent_');
    expect(node.cri.all().find(e => e.id === s0!.id)!.hidden).toBe(true);
    await node.setShimFault(s0!.id, { kind: 'gone' });
    expect(fs.existsSync(s0!.shimSocketPath)).toBe(false);
    await node.setShimFault(s0!.id, undefined);
    expect((await get(s0!.shimSocketPath, '/metrics')).status).toBe(200);
    node.setAgentFault(s2!.id, undefined);
    expect((await get(s2!.shimSocketPath, '/metrics')).body).toContain('kata_agent_');
    const sum = node.summary();
    expect(sum.sandboxes[1]).toMatchObject({ shimFault: 'http500' });
    expect(sum.criSocket).toBe(path.join(node.dir, 'cri.sock'));
  });

  it('churns: replaces a sandbox every period, keeping the count', async () => {
    const node = await start({
      sandboxes: 2,
      churnEverySec: 1,
      socketDelayMs: [10, 20],
      criDelayAfterSocketMs: [10, 20],
    });
    const before = node.sandboxes().map(s => s.id);
    await waitFor(() => node.sandboxes().some(s => !before.includes(s.id)), 5000, 50, 'a new sandbox');
    await waitFor(() => node.sandboxes().length === 2, 3000, 20, 'two sandboxes');
    const gone = before.find(id => !node.sandboxes().some(s => s.id === id))!;
    expect(fs.existsSync(path.join(node.dir, 'vc', 'sbs', gone))).toBe(false);
  });

  it('calls hooks: processes before persist.json, agent after the socket dirs, stops them on removal', async () => {
    const events: string[] = [];
    const node = await start({
      sandboxes: 1,
      hooks: {
        startProcesses: async sb => {
          events.push(`proc:${fs.existsSync(path.join(sb.sandboxDir, 'persist.json'))}`);
          const p: SimProcesses = {
            shimPid: 4242,
            hypervisorPid: 4343,
            virtiofsdPid: 4444,
            sandboxCgroupPath: '/sim/cg',
            stop: async () => void events.push('proc-stop'),
          };
          return p;
        },
        startAgent: async sb => {
          events.push(`agent:${fs.existsSync(path.dirname(sb.agentSocketPath!))}`);
          return { stop: async () => void events.push('agent-stop') };
        },
      },
    });
    const sb = node.sandboxes()[0]!;
    const p = JSON.parse(fs.readFileSync(path.join(sb.sandboxDir, 'persist.json'), 'utf8'));
    expect(p.HypervisorState).toMatchObject({ Pid: 4343, VirtiofsDaemonPid: 4444 });
    expect(p.SandboxCgroupPath).toBe('/sim/cg');
    const bundle = path.join(node.dir, 'containerd', 'io.containerd.runtime.v2.task', 'k8s.io', sb.id);
    expect(fs.readFileSync(path.join(bundle, 'shim.pid'), 'utf8')).toBe('4242');
    await node.removeSandbox(sb.id);
    expect(events).toEqual(['proc:false', 'agent:true', 'agent-stop', 'proc-stop']);
  });

  it('stop() removes everything it made', async () => {
    const node = await start({ sandboxes: 2, rs: 1 });
    await node.stop();
    expect(fs.existsSync(node.dir)).toBe(false);
    fs.mkdirSync(path.join(dir, 'k'));
    fs.writeFileSync(path.join(dir, 'k', 'mine'), 'x');
    const n2 = await start({ dir: path.join(dir, 'k'), sandboxes: 1 });
    await n2.stop();
    expect(fs.readdirSync(path.join(dir, 'k'))).toEqual(['mine']);
  });
});
