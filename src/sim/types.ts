/**
 * Contracts of the simulated Kata node (`kata-sim`). The node itself lives in node.ts; the agent
 * (agent-server.ts) and the host processes (vm-process.ts) plug in through SimHooks.
 */
import type { Runtime } from '../types';

/** Faults a simulated shim can be told to show on its management socket. */
export type ShimFault =
  | { kind: 'hang' } // accept, never answer
  | { kind: 'slow'; ms: number } // answer after `ms`
  | { kind: 'garbage' } // malformed exposition
  | { kind: 'http500' } // HTTP 500 with an error text
  | { kind: 'gone' } // directory without a listening socket
  | { kind: 'disconnect' } // close mid-body
  | { kind: 'conflict' } // a family typed differently than on other sandboxes
  | { kind: 'huge' } // a body of tens of MB
  | { kind: 'prelabelled' }; // a series already carrying `sandbox_id`

/** Faults a simulated agent can show on its (hybrid) vsock socket. */
export type AgentFault =
  | { kind: 'hang' } // accepts and handshakes, never answers ttrpc requests
  | { kind: 'deny' } // every call: PERMISSION_DENIED ("... is blocked by policy")
  | { kind: 'unimplemented' } // every call: UNIMPLEMENTED
  | { kind: 'badframe' } // answers with a malformed frame
  | { kind: 'oversize' }; // answers with a frame header announcing more than 4 MiB

/** Pod identity the simulated CRI reports for a sandbox. */
export interface SimPodMeta {
  name: string;
  namespace: string;
  uid: string;
  labels: Record<string, string>;
  runtimeHandler: string;
}

/** One simulated sandbox, as the node keeps it. Mutable fields change while the node runs. */
export interface SimSandbox {
  readonly id: string; // 64 hex chars
  readonly index: number; // creation order, 0-based; stable under --seed
  readonly runtime: Runtime;
  /** `qemu`, `clh`, `firecracker` (go); `dragonball`, `clh`, `qemu`, `firecracker` (rs). */
  readonly hypervisor: string;
  /** `<dir>/vc/sbs/<id>` or `<dir>/kata/<id>`. */
  readonly sandboxDir: string;
  /** `<sandboxDir>/shim-monitor.sock` */
  readonly shimSocketPath: string;
  /** What `/agent-url` answers (no trailing newline), e.g. `hvsock://<dir>/vc/vm/<id>/clh.sock:1024`. */
  readonly agentUrl: string;
  /** The unix socket the agent is reached through (hybrid vsock UDS or remote socket); undefined for vsock://. */
  readonly agentSocketPath?: string;
  /** Container ids of the sandbox; the first one equals the sandbox id (the pause container). */
  readonly containers: readonly string[];
  readonly vcpus: number;
  readonly pod: SimPodMeta;
  /** Go shims only: whether the pprof/expvar handlers are mounted. */
  readonly pprof: boolean;
  /** Seed for this sandbox's metric values (derived from the node seed and the index). */
  readonly seed: number;
  shimFault?: ShimFault;
  agentFault?: AgentFault;
  /** Filled from SimHooks.startProcesses when present. */
  processes?: SimProcesses;
}

/** Real host processes standing in for a sandbox's shim, hypervisor and virtiofsd. */
export interface SimProcesses {
  shimPid: number;
  hypervisorPid: number;
  virtiofsdPid?: number;
  /** cgroup paths recorded in persist.json (`SandboxCgroupPath`, `OverheadCgroupPath`). */
  sandboxCgroupPath?: string;
  overheadCgroupPath?: string;
  /** Ask the "hypervisor" to burn CPU (ms of busy loop per second, 0 to stop) or hold memory (bytes). */
  burnCpu?(msPerSecond: number): void;
  holdMemory?(bytes: number): void;
  stop(): Promise<void>;
}

export interface SimAgentHandle {
  stop(): Promise<void>;
}

/** Extension points: each is optional; without it the node simply does not provide that part. */
export interface SimHooks {
  /** Start the processes backing a sandbox; called before persist.json is written. */
  startProcesses?: (sb: SimSandbox, nodeDir: string) => Promise<SimProcesses>;
  /** Start the agent for a sandbox on `sb.agentSocketPath`. */
  startAgent?: (sb: SimSandbox) => Promise<SimAgentHandle>;
}
