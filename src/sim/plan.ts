/**
 * Every layout decision of the simulated node in one place (pure): which hypervisor a sandbox gets, where its
 * directories and sockets are, what `/agent-url` answers, and the pod CRI reports for it. Mirrors §1.5, §5.2 and
 * §6 of the protocol notes, with `/run` replaced by the node directory.
 */
import * as path from 'node:path';
import type { Runtime } from '../types';
import { Rng, hashString } from './rng';
import type { SimPodMeta } from './types';

export const GO_HYPERVISORS = ['qemu', 'clh', 'firecracker'] as const;
export const RS_HYPERVISORS = ['dragonball', 'clh', 'qemu', 'firecracker'] as const;

/** Go default: Cloud Hypervisor, every 5th Firecracker; `override` (cycled) replaces that. */
export function goHypervisor(ordinal: number, override?: readonly string[]): string {
  if (override && override.length > 0) return override[ordinal % override.length]!;
  return ordinal % 5 === 4 ? 'firecracker' : 'clh';
}

/** runtime-rs default cycle: dragonball, dragonball, clh, qemu, firecracker. */
export function rsHypervisor(ordinal: number, override?: readonly string[]): string {
  const cycle =
    override && override.length > 0 ? override : ['dragonball', 'dragonball', 'clh', 'qemu', 'firecracker'];
  return cycle[ordinal % cycle.length]!;
}

export interface SandboxLayout {
  sandboxDir: string;
  shimSocketPath: string;
  agentUrl: string;
  agentSocketPath?: string;
  /** Go `<dir>/vc/vm/<id>` (QEMU pid file, CLH sockets). */
  vmDir?: string;
  /** Go Firecracker `<dir>/vc/firecracker/<id>`. */
  fcDir?: string;
  /** Directories that must exist before the agent can listen (created by the node). */
  socketDirs: string[];
  /** containerd bundle `<dir>/containerd/io.containerd.runtime.v2.task/k8s.io/<id>`. */
  bundleDir: string;
}

export function sandboxRoot(dir: string, runtime: Runtime): string {
  return runtime === 'go' ? path.join(dir, 'vc', 'sbs') : path.join(dir, 'kata');
}

/** Paths and agent address of one sandbox. `cid` is used for `vsock://` (QEMU). */
export function sandboxLayout(
  dir: string,
  runtime: Runtime,
  hypervisor: string,
  id: string,
  cid: number,
): SandboxLayout {
  const sandboxDir = path.join(sandboxRoot(dir, runtime), id);
  const bundleDir = path.join(dir, 'containerd', 'io.containerd.runtime.v2.task', 'k8s.io', id);
  const base = { sandboxDir, shimSocketPath: path.join(sandboxDir, 'shim-monitor.sock'), bundleDir };
  const hv = (sock: string, dirs: string[], extra: Partial<SandboxLayout> = {}): SandboxLayout => ({
    ...base,
    ...extra,
    agentUrl: `hvsock://${sock}:1024`,
    agentSocketPath: sock,
    socketDirs: dirs,
  });
  if (runtime === 'go') {
    const vmDir = path.join(dir, 'vc', 'vm', id);
    if (hypervisor === 'qemu')
      return { ...base, vmDir, agentUrl: `vsock://${cid}:1024`, socketDirs: [vmDir] };
    if (hypervisor === 'firecracker') {
      const fcDir = path.join(dir, 'vc', 'firecracker', id);
      return hv(path.join(fcDir, 'root', 'kata.hvsock'), [path.join(fcDir, 'root')], { fcDir });
    }
    return hv(path.join(vmDir, 'clh.sock'), [vmDir], { vmDir });
  }
  switch (hypervisor) {
    case 'qemu':
      return { ...base, agentUrl: `vsock://${cid}:1024`, socketDirs: [sandboxDir] };
    case 'clh':
      return hv(path.join(sandboxDir, 'ch-vm.sock'), [sandboxDir]);
    case 'firecracker':
      return hv(path.join(sandboxDir, 'kata.hvsock'), [sandboxDir]);
    default: // dragonball
      return hv(path.join(sandboxDir, 'root', 'kata.hvsock'), [path.join(sandboxDir, 'root')]);
  }
}

/** The CRI runtime handler a kata-deploy node would use for this runtime/hypervisor. */
export function runtimeHandler(runtime: Runtime, hypervisor: string): string {
  const short = hypervisor === 'firecracker' ? 'fc' : hypervisor;
  if (runtime === 'go') return `kata-${short}`;
  return hypervisor === 'dragonball' ? 'kata-dragonball' : `kata-${short}-runtime-rs`;
}

const APPS = ['web', 'api', 'worker', 'cache', 'frontend', 'payments', 'auth', 'ingest', 'search', 'billing'];
const NAMESPACES = ['default', 'prod', 'staging'];

/** Everything random about sandbox number `index`, derived only from (node seed, index). */
export interface SandboxDraw {
  id: string;
  seed: number;
  cid: number;
  vcpus: number;
  containers: string[];
  pod: Omit<SimPodMeta, 'runtimeHandler'>;
}

export function drawSandbox(nodeSeed: number, index: number): SandboxDraw {
  const seed = hashString(`sandbox/${index}`, nodeSeed >>> 0);
  const rng = new Rng(seed);
  const id = rng.hex(64);
  const extra = rng.int(1, 2);
  const containers = [id];
  for (let i = 0; i < extra; i++) containers.push(rng.hex(64));
  const app = rng.pick(APPS);
  const hash = rng.alnum(rng.int(9, 10));
  const name = `${app}-${hash}-${rng.alnum(5)}`;
  const namespace = rng.pick(NAMESPACES);
  const uid = rng.uuid();
  return {
    id,
    seed,
    cid: rng.int(3, 0xfffffffe),
    vcpus: rng.int(1, 2),
    containers,
    pod: {
      name,
      namespace,
      uid,
      labels: {
        app,
        'pod-template-hash': hash,
        'io.kubernetes.pod.name': name,
        'io.kubernetes.pod.namespace': namespace,
        'io.kubernetes.pod.uid': uid,
      },
    },
  };
}

/** A runc pod for CRI (no Kata sandbox directory). */
export function drawRuncPod(nodeSeed: number, n: number): SimPodMeta & { id: string } {
  const rng = new Rng(hashString(`runc/${n}`, nodeSeed >>> 0));
  const id = rng.hex(64);
  const name = `coredns-${rng.alnum(10)}-${rng.alnum(5)}`;
  const uid = rng.uuid();
  return {
    id,
    name,
    namespace: 'kube-system',
    uid,
    runtimeHandler: 'runc',
    labels: {
      'k8s-app': 'kube-dns',
      'io.kubernetes.pod.name': name,
      'io.kubernetes.pod.namespace': 'kube-system',
      'io.kubernetes.pod.uid': uid,
    },
  };
}
