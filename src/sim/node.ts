/**
 * A simulated Kata node: sandbox directories laid out as the Go runtime and runtime-rs do (§6), a shim
 * management server per sandbox, a CRI runtime, churn and faults. Hooks start real processes and agents when
 * provided (vm-process.ts, agent-server.ts).
 *
 * Creation order (as on a real node): directories + persist/state files, then (100-300 ms later) the shim
 * socket, then (later still) the CRI entry. Removal deletes the sandbox's directories and drops the CRI entry.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Runtime } from '../types';
import { type CriApiVersion, SimCriServer } from './cri-server';
import { type FaultSpecEntry, faultMatches, formatFault } from './faults';
import {
  type SandboxLayout,
  drawRuncPod,
  drawSandbox,
  goHypervisor,
  rsHypervisor,
  runtimeHandler,
  sandboxLayout,
} from './plan';
import { Rng, hashString } from './rng';
import { SimShimServer } from './shim-server';
import type { AgentFault, ShimFault, SimAgentHandle, SimHooks, SimSandbox } from './types';

export interface SimNodeOptions {
  /** Node directory: stands for `/run` (`<dir>/vc/sbs`, `<dir>/kata`, `<dir>/cri.sock`, ...). */
  dir: string;
  /** Number of Go-runtime sandboxes at start (default 3). */
  sandboxes?: number;
  /** Number of runtime-rs sandboxes at start (default 0). */
  rs?: number;
  seed?: number;
  faults?: FaultSpecEntry[];
  /** Every N seconds remove one sandbox and add one of the same runtime (0/undefined: no churn). */
  churnEverySec?: number;
  /** CRI entries become visible this long after they were added. */
  criLagMs?: number;
  criApis?: CriApiVersion[];
  /** Per-call delay of the CRI server (slow CRI). */
  criDelayMs?: number;
  /** Sandbox indexes CRI never reports. */
  unknownToCri?: number[];
  /** Which Go sandboxes mount pprof: by index, or every other Go sandbox (default), or all / none. */
  pprof?: 'alternate' | 'all' | 'none' | number[];
  hypervisors?: { go?: string[]; rs?: string[] };
  hooks?: SimHooks;
  /** Delay between directory and shim socket, and between socket and CRI entry, for sandboxes added later. */
  socketDelayMs?: [number, number];
  criDelayAfterSocketMs?: [number, number];
  /** Ceiling for pprof profile/trace waits. */
  profileCapMs?: number;
  /** Called with errors from hooks or churn (default: ignored). */
  onError?: (err: unknown, what: string) => void;
}

export interface AddSandboxSpec {
  runtime?: Runtime;
  hypervisor?: string;
  /** Follow the real timing (socket later, CRI later still); default true. */
  delays?: boolean;
  shimFault?: ShimFault;
  agentFault?: AgentFault;
  unknownToCri?: boolean;
}

interface Entry {
  sb: SimSandbox;
  layout: SandboxLayout;
  shim?: SimShimServer;
  agent?: SimAgentHandle;
  unknownToCri: boolean;
  removed: boolean;
  timers: Set<NodeJS.Timeout>;
  agentError?: string;
}

export interface SimNodeSummary {
  dir: string;
  seed: number;
  criSocket: string;
  criEndpoint: string;
  sandboxes: Array<{
    id: string;
    index: number;
    runtime: Runtime;
    hypervisor: string;
    sandboxDir: string;
    shimSocket: string;
    agentUrl: string;
    agentSocket?: string;
    pprof: boolean;
    pod: { name: string; namespace: string; uid: string; runtimeHandler: string };
    unknownToCri: boolean;
    shimFault?: string;
    agentFault?: string;
  }>;
  runcPods: Array<{ id: string; name: string; namespace: string }>;
}

function sleep(ms: number, timers: Set<NodeJS.Timeout>): Promise<void> {
  return new Promise(resolve => {
    const t = setTimeout(() => {
      timers.delete(t);
      resolve();
    }, ms);
    timers.add(t);
  });
}

/** Go `persist.json` of a sandbox (field names as the Go structs, no json tags). */
export function goPersistJson(
  sb: SimSandbox,
  layout: SandboxLayout,
  hypervisorPid: number,
  uuid: string,
): object {
  const p = sb.processes;
  return {
    PersistVersion: 2,
    State: 'running',
    GuestMemoryBlockSizeMB: 128,
    GuestMemoryHotplugProbe: false,
    SandboxContainer: sb.id,
    SandboxCgroupPath: p?.sandboxCgroupPath ?? `/kubepods/burstable/pod${sb.pod.uid}/kata_${sb.id}`,
    OverheadCgroupPath: p?.overheadCgroupPath ?? '',
    CgroupPaths: {},
    Devices: [],
    HypervisorState: {
      BlockIndexMap: {},
      Type: sb.hypervisor,
      UUID: uuid,
      APISocket: layout.vmDir && sb.hypervisor === 'clh' ? path.join(layout.vmDir, 'clh-api.sock') : '',
      Bridges: [],
      HotpluggedVCPUs: [],
      HotpluggedMemory: 0,
      VirtiofsDaemonPid: sb.hypervisor === 'firecracker' ? 0 : (p?.virtiofsdPid ?? 0),
      Pid: hypervisorPid,
      HotPlugVFIO: 'no-port',
      ColdPlugVFIO: 'no-port',
      PCIeRootPort: 0,
      PCIeSwitchPort: 0,
    },
    AgentState: { URL: sb.agentUrl },
    Network: { NetworkID: `/var/run/netns/cni-${uuid}`, NetworkCreated: false, Endpoints: [] },
    Config: {
      HypervisorType: sb.hypervisor,
      HypervisorConfig: { NumVCPUsF: sb.vcpus, DefaultMaxVCPUs: 4, MemorySize: 2048, SharedFS: 'virtio-fs' },
      KataAgentConfig: { LongLiveConn: true, Debug: false, Trace: false, DialTimeout: 30 },
      KataShimConfig: null,
      ContainerConfigs: sb.containers.map(c => ({ ID: c, Annotations: {}, RootFs: '', Resources: {} })),
      SandboxCgroupOnly: true,
    },
  };
}

/** runtime-rs `state.json` (pretty JSON; `hypervisor.pid` is null, as at HEAD). */
export function rsStateJson(sb: SimSandbox, uuid: string): object {
  return {
    sandbox_type: 'virt_container',
    resource: {
      cgroup_state: { path: `/kubepods/burstable/pod${sb.pod.uid}/kata_${sb.id}`, overhead_path: '' },
    },
    hypervisor: {
      id: sb.id,
      vm_path: '',
      jailed: false,
      jailer_root: '',
      netns: `/var/run/netns/cni-${uuid}`,
      config: {},
      run_dir: sb.sandboxDir,
      cached_block_devices: [],
      virtiofs_daemon_pid: 0,
      pid: null,
      passfd_listener_port: null,
      hypervisor_type: sb.hypervisor,
      uuid,
      api_socket: '',
    },
  };
}

export class SimNode {
  readonly dir: string;
  readonly seed: number;
  readonly cri: SimCriServer;
  private readonly entries = new Map<string, Entry>();
  private readonly made: string[] = [];
  private readonly dirPreexisted: boolean;
  private nextIndex = 0;
  private goOrdinal = 0;
  private rsOrdinal = 0;
  private churnTimer: NodeJS.Timeout | undefined;
  private churnCount = 0;
  private readonly runc: Array<ReturnType<typeof drawRuncPod>> = [];
  private readonly pending = new Set<Promise<unknown>>();
  private stopped = false;

  private constructor(
    private readonly opts: SimNodeOptions,
    cri: SimCriServer,
    preexisted: boolean,
  ) {
    this.dir = opts.dir;
    this.seed = opts.seed ?? 1;
    this.cri = cri;
    this.dirPreexisted = preexisted;
  }

  static async start(opts: SimNodeOptions): Promise<SimNode> {
    const dir = path.resolve(opts.dir);
    const preexisted = fs.existsSync(dir);
    fs.mkdirSync(dir, { recursive: true });
    const cri = await SimCriServer.start({
      socketPath: path.join(dir, 'cri.sock'),
      apis: opts.criApis,
      lagMs: opts.criLagMs,
      delayMs: opts.criDelayMs,
    });
    const node = new SimNode({ ...opts, dir }, cri, preexisted);
    try {
      await node.init();
    } catch (err) {
      await node.stop();
      throw err;
    }
    return node;
  }

  private async init(): Promise<void> {
    for (const sub of ['vc', 'kata', 'containerd']) {
      const p = path.join(this.dir, sub);
      if (!fs.existsSync(p)) this.made.push(p);
    }
    fs.mkdirSync(path.join(this.dir, 'vc', 'sbs'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.join(this.dir, 'vc', 'vm'), { recursive: true });
    // What jailed Firecracker leaves under /run/kata: a directory that is not a sandbox.
    fs.mkdirSync(path.join(this.dir, 'kata', 'firecracker'), { recursive: true });
    fs.mkdirSync(path.join(this.dir, 'containerd', 'io.containerd.runtime.v2.task', 'k8s.io'), {
      recursive: true,
    });

    const runc = drawRuncPod(this.seed, 0);
    this.runc.push(runc);
    this.cri.upsert({ ...runc });

    const adds: Array<Promise<SimSandbox>> = [];
    for (let i = 0; i < (this.opts.sandboxes ?? 3); i++)
      adds.push(this.addSandbox({ runtime: 'go', delays: false }));
    for (let i = 0; i < (this.opts.rs ?? 0); i++)
      adds.push(this.addSandbox({ runtime: 'rs', delays: false }));
    await Promise.all(adds);
    if (this.opts.churnEverySec && this.opts.churnEverySec > 0) {
      this.churnTimer = setInterval(() => this.track(this.churn()), this.opts.churnEverySec * 1000);
    }
  }

  private track<T>(p: Promise<T>): void {
    const q = p.catch(err => this.opts.onError?.(err, 'churn'));
    this.pending.add(q);
    void q.finally(() => this.pending.delete(q));
  }

  private async churn(): Promise<void> {
    if (this.stopped) return;
    const list = [...this.entries.values()].filter(e => !e.removed);
    if (list.length === 0) return;
    const rng = new Rng(hashString(`churn/${this.churnCount++}`, this.seed));
    const victim = rng.pick(list);
    const runtime = victim.sb.runtime;
    await this.removeSandbox(victim.sb.id);
    if (!this.stopped) await this.addSandbox({ runtime });
  }

  private pprofFor(index: number, goOrdinal: number): boolean {
    const p = this.opts.pprof ?? 'alternate';
    if (p === 'all') return true;
    if (p === 'none') return false;
    if (p === 'alternate') return goOrdinal % 2 === 0;
    return p.includes(index);
  }

  /** Create a sandbox; resolves when its socket and CRI entry are in place. */
  async addSandbox(spec: AddSandboxSpec = {}): Promise<SimSandbox> {
    if (this.stopped) throw new Error('SimNode stopped');
    const runtime = spec.runtime ?? 'go';
    const index = this.nextIndex++;
    const draw = drawSandbox(this.seed, index);
    let hypervisor: string;
    let pprof = false;
    if (runtime === 'go') {
      const ord = this.goOrdinal++;
      hypervisor = spec.hypervisor ?? goHypervisor(ord, this.opts.hypervisors?.go);
      pprof = this.pprofFor(index, ord);
    } else {
      hypervisor = spec.hypervisor ?? rsHypervisor(this.rsOrdinal++, this.opts.hypervisors?.rs);
    }
    const layout = sandboxLayout(this.dir, runtime, hypervisor, draw.id, draw.cid);
    const sb: SimSandbox = {
      id: draw.id,
      index,
      runtime,
      hypervisor,
      sandboxDir: layout.sandboxDir,
      shimSocketPath: layout.shimSocketPath,
      agentUrl: layout.agentUrl,
      agentSocketPath: layout.agentSocketPath,
      containers: draw.containers,
      vcpus: draw.vcpus,
      pod: { ...draw.pod, runtimeHandler: runtimeHandler(runtime, hypervisor) },
      pprof,
      seed: draw.seed,
    };
    for (const f of this.opts.faults ?? []) {
      if (!faultMatches(f.target, index, sb.id)) continue;
      if (f.shim) sb.shimFault = f.shim;
      if (f.agent) sb.agentFault = f.agent;
    }
    if (spec.shimFault) sb.shimFault = spec.shimFault;
    if (spec.agentFault) sb.agentFault = spec.agentFault;
    const entry: Entry = {
      sb,
      layout,
      unknownToCri: spec.unknownToCri ?? (this.opts.unknownToCri ?? []).includes(index),
      removed: false,
      timers: new Set(),
    };
    this.entries.set(sb.id, entry);

    // 1. directories and on-disk state
    fs.mkdirSync(layout.sandboxDir, { recursive: true, mode: 0o700 });
    for (const d of layout.socketDirs) fs.mkdirSync(d, { recursive: true });
    if (layout.vmDir) fs.mkdirSync(layout.vmDir, { recursive: true });
    fs.mkdirSync(layout.bundleDir, { recursive: true });
    const hooks = this.opts.hooks;
    if (hooks?.startProcesses) {
      sb.processes = await hooks.startProcesses(sb, this.dir);
      if (entry.removed) {
        await sb.processes.stop();
        return sb;
      }
    }
    this.writeState(entry);
    if (hooks?.startAgent) {
      try {
        entry.agent = await hooks.startAgent(sb);
      } catch (err) {
        entry.agentError = err instanceof Error ? err.message : String(err);
        this.opts.onError?.(err, `agent ${sb.id}`);
      }
    }
    if (entry.removed) return sb;

    // 2. the management socket, a little later
    const delays = spec.delays ?? true;
    const rng = new Rng(hashString(`timing/${index}`, this.seed));
    const [s0, s1] = this.opts.socketDelayMs ?? [100, 300];
    const [c0, c1] = this.opts.criDelayAfterSocketMs ?? [150, 400];
    if (delays) await sleep(rng.int(s0, s1), entry.timers);
    if (entry.removed || this.stopped) return sb;
    entry.shim = await SimShimServer.start(sb, { profileCapMs: this.opts.profileCapMs });
    if (entry.removed || this.stopped) {
      await entry.shim.stop();
      return sb;
    }

    // 3. the CRI entry, later still
    if (delays) await sleep(rng.int(c0, c1), entry.timers);
    if (entry.removed || this.stopped) return sb;
    this.cri.upsert({
      id: sb.id,
      name: sb.pod.name,
      namespace: sb.pod.namespace,
      uid: sb.pod.uid,
      labels: sb.pod.labels,
      annotations: { 'io.kubernetes.cri.sandbox-name': sb.pod.name },
      runtimeHandler: sb.pod.runtimeHandler,
      containers: sb.containers.filter(c => c !== sb.id),
      ip: `10.244.0.${(index % 250) + 2}`,
      hidden: entry.unknownToCri,
    });
    return sb;
  }

  private writeState(entry: Entry): void {
    const { sb, layout } = entry;
    const rng = new Rng(hashString(`state/${sb.index}`, this.seed));
    const uuid = rng.uuid();
    const shimPid = sb.processes?.shimPid ?? process.pid;
    const hvPid = sb.processes?.hypervisorPid ?? process.pid;
    if (sb.runtime === 'go') {
      fs.writeFileSync(
        path.join(layout.sandboxDir, 'persist.json'),
        JSON.stringify(goPersistJson(sb, layout, hvPid, uuid)),
        {
          mode: 0o600,
        },
      );
      for (const c of sb.containers) {
        const cdir = path.join(layout.sandboxDir, c);
        fs.mkdirSync(cdir, { recursive: true, mode: 0o700 });
        const state = {
          State: {
            State: 'running',
            BlockDeviceID: '',
            Fstype: '',
            CgroupPath: `/kubepods/burstable/pod${sb.pod.uid}/${c}`,
          },
          Mounts: {},
          Process: { Token: rng.uuid(), StartTime: '2026-01-01T00:00:00Z', Pid: hvPid },
          BundlePath: path.join(this.dir, 'containerd', 'io.containerd.runtime.v2.task', 'k8s.io', c),
          Rootfs: { Target: '', Source: '', Type: 'overlay', Options: [], Mounted: true },
        };
        fs.writeFileSync(path.join(cdir, 'persist.json'), JSON.stringify(state), { mode: 0o600 });
      }
      if (sb.hypervisor === 'qemu' && layout.vmDir)
        fs.writeFileSync(path.join(layout.vmDir, 'pid'), String(hvPid));
    } else {
      fs.writeFileSync(
        path.join(layout.sandboxDir, 'state.json'),
        JSON.stringify(rsStateJson(sb, uuid), null, 2),
      );
    }
    fs.writeFileSync(path.join(layout.bundleDir, 'shim.pid'), String(shimPid));
    fs.writeFileSync(
      path.join(layout.bundleDir, 'address'),
      `unix:///run/containerd/s/${sb.id.slice(0, 64)}`,
    );
    if (sb.runtime === 'go') {
      fs.writeFileSync(path.join(layout.bundleDir, 'monitor_address'), `unix://${sb.shimSocketPath}`);
    }
  }

  /** Remove a sandbox: its servers and processes stop, its directories go, CRI forgets it. */
  async removeSandbox(id: string): Promise<boolean> {
    const entry = this.entries.get(id);
    if (!entry || entry.removed) return false;
    entry.removed = true;
    for (const t of entry.timers) clearTimeout(t);
    entry.timers.clear();
    this.entries.delete(id);
    await entry.shim?.stop();
    await entry.agent?.stop().catch(err => this.opts.onError?.(err, `agent stop ${id}`));
    await entry.sb.processes?.stop().catch(err => this.opts.onError?.(err, `processes stop ${id}`));
    const { layout } = entry;
    fs.rmSync(layout.sandboxDir, { recursive: true, force: true });
    if (layout.vmDir) fs.rmSync(layout.vmDir, { recursive: true, force: true });
    if (layout.fcDir) fs.rmSync(layout.fcDir, { recursive: true, force: true });
    fs.rmSync(layout.bundleDir, { recursive: true, force: true });
    this.cri.remove(id);
    return true;
  }

  private entry(id: string): Entry {
    const e = this.entries.get(id);
    if (!e) throw new Error(`no simulated sandbox ${id}`);
    return e;
  }

  async setShimFault(id: string, fault: ShimFault | undefined): Promise<void> {
    const e = this.entry(id);
    e.sb.shimFault = fault;
    await e.shim?.applyFault();
  }

  setAgentFault(id: string, fault: AgentFault | undefined): void {
    this.entry(id).sb.agentFault = fault;
  }

  /** Live sandboxes, in creation order. */
  sandboxes(): SimSandbox[] {
    return [...this.entries.values()].map(e => e.sb).sort((a, b) => a.index - b.index);
  }

  /** The shim server of a sandbox (undefined until its socket appeared). */
  shimServer(id: string): SimShimServer | undefined {
    return this.entries.get(id)?.shim;
  }

  summary(): SimNodeSummary {
    return {
      dir: this.dir,
      seed: this.seed,
      criSocket: this.cri.socketPath,
      criEndpoint: this.cri.endpoint,
      sandboxes: this.sandboxes().map(sb => {
        const e = this.entries.get(sb.id)!;
        return {
          id: sb.id,
          index: sb.index,
          runtime: sb.runtime,
          hypervisor: sb.hypervisor,
          sandboxDir: sb.sandboxDir,
          shimSocket: sb.shimSocketPath,
          agentUrl: sb.agentUrl,
          ...(sb.agentSocketPath ? { agentSocket: sb.agentSocketPath } : {}),
          pprof: sb.pprof,
          pod: {
            name: sb.pod.name,
            namespace: sb.pod.namespace,
            uid: sb.pod.uid,
            runtimeHandler: sb.pod.runtimeHandler,
          },
          unknownToCri: e.unknownToCri,
          ...(sb.shimFault ? { shimFault: formatFault(sb.shimFault) } : {}),
          ...(sb.agentFault ? { agentFault: formatFault(sb.agentFault, true) } : {}),
        };
      }),
      runcPods: this.runc.map(p => ({ id: p.id, name: p.name, namespace: p.namespace })),
    };
  }

  /** Stop everything and remove every file and directory the node made. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.churnTimer) clearInterval(this.churnTimer);
    await Promise.all([...this.pending]);
    for (const id of [...this.entries.keys()]) await this.removeSandbox(id);
    await this.cri.stop();
    for (const p of this.made) fs.rmSync(p, { recursive: true, force: true });
    if (!this.dirPreexisted) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
