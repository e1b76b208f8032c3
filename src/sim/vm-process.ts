/**
 * Real host processes standing in for a simulated sandbox's hypervisor and virtiofsd (SimHooks.startProcesses).
 *
 * Each stand-in is a small `node -e` child whose argv looks like Kata's (argv[0] `qemu-system-x86_64`,
 * `cloud-hypervisor`, `firecracker` or `virtiofsd`, then `-name sandbox-<id>`, `--api-socket .../<id>/...`,
 * `--socket-path=.../<id>/vhost-fs.sock`), so /proc/<pid>/cmdline is found by the host collector's scan.
 * The simulator process serves every shim itself, so the shim PID is `process.pid`.
 *
 * Control is over the IPC channel: burn CPU (busy-loop share) and hold memory (a touched Buffer). A child exits
 * as soon as the channel closes, so a crashed simulator leaves no orphans.
 *
 * Files written, only those Kata itself would write: `<nodeDir>/vc/vm/<id>/pid` (QEMU `-pidfile`, Go runtime)
 * and the containerd bundle `<nodeDir>/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/shim.pid`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { SimHooks, SimProcesses, SimSandbox } from './types';

/** Messages understood by a stand-in. */
type ControlMessage = { burnMsPerSecond: number } | { holdBytes: number } | { ping: number };

// The child: a 100 ms tick that busy-loops for its share, a held Buffer, exit on disconnect.
const CHILD_SCRIPT = `
let burn = 0, held = null;
process.on('message', m => {
  if (!m || typeof m !== 'object') return;
  if (typeof m.burnMsPerSecond === 'number') burn = Math.max(0, Math.min(1000, m.burnMsPerSecond));
  if (typeof m.holdBytes === 'number') {
    held = null;
    if (m.holdBytes > 0) { held = Buffer.allocUnsafe(m.holdBytes); held.fill(0x5a); }
  }
  if (typeof m.ping === 'number') process.send({ pong: m.ping, held: held ? held.length : 0 });
});
process.on('disconnect', () => process.exit(0));
setInterval(() => {
  if (burn <= 0) return;
  const end = Date.now() + burn / 10;
  while (Date.now() < end) { /* busy */ }
}, 100);
`;

export interface StandIn {
  readonly pid: number;
  readonly child: ChildProcess;
  send(msg: ControlMessage): void;
  /** Round trip over IPC: resolves once every earlier message has been handled by the child. */
  sync(): Promise<void>;
  stop(): Promise<void>;
}

/** Spawn one stand-in with the given argv[0] and Kata-like arguments. */
export async function spawnStandIn(argv0: string, args: readonly string[]): Promise<StandIn> {
  const child = spawn(process.execPath, ['-e', CHILD_SCRIPT, '--', ...args], {
    argv0,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    // A parent's NODE_OPTIONS (e.g. --require hooks of a test runner) has no business in a stand-in.
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', reject);
  });
  const pid = child.pid!;
  let exited = child.exitCode !== null || child.signalCode !== null;
  const exit = new Promise<void>(resolve => {
    if (exited) return resolve();
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  let pingSeq = 0;
  const send = (msg: ControlMessage): void => {
    if (child.connected) child.send(msg);
  };
  return {
    pid,
    child,
    send,
    sync() {
      const seq = ++pingSeq;
      return new Promise<void>((resolve, reject) => {
        if (!child.connected) return reject(new Error(`stand-in ${pid} is not running`));
        const onMsg = (m: unknown): void => {
          if (typeof m === 'object' && m !== null && (m as { pong?: unknown }).pong === seq) {
            child.off('message', onMsg);
            child.off('exit', onExit);
            resolve();
          }
        };
        const onExit = (): void => {
          child.off('message', onMsg);
          reject(new Error(`stand-in ${pid} exited`));
        };
        child.on('message', onMsg);
        child.once('exit', onExit);
        child.send({ ping: seq });
      });
    },
    async stop() {
      if (!exited) {
        // Closing the channel makes the child exit by itself; SIGTERM/SIGKILL in case it is wedged.
        if (child.connected) child.disconnect();
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
        await exit; // 'exit' means node has reaped it: no zombie left behind
        clearTimeout(timer);
      }
    },
  };
}

/**
 * A light stand-in: `/bin/sh` blocked on reading a pipe from the simulator, with Kata-like arguments after the
 * script (so /proc/<pid>/cmdline carries `sandbox-<id>` etc.). About 1 MB of memory instead of a Node process's
 * 40 MB, so a simulated node of hundreds of sandboxes stays small; it cannot burn CPU or hold memory on
 * request. It exits when the pipe closes, so a crashed simulator leaves no orphans.
 */
export async function spawnLightStandIn(argv0: string, args: readonly string[]): Promise<StandIn> {
  const child = spawn('/bin/sh', ['-c', 'read _ ; exit 0', argv0, ...args], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', reject);
  });
  let exited = false;
  const exit = new Promise<void>(resolve => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  return {
    pid: child.pid!,
    child,
    send: () => undefined,
    sync: () => Promise.resolve(),
    async stop() {
      if (exited) return;
      child.stdin?.end();
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exit;
      clearTimeout(timer);
    },
  };
}

/** Whether a hypervisor runs virtiofsd (QEMU and Cloud Hypervisor; Dragonball has it inline, Firecracker none). */
function usesVirtiofsd(hypervisor: string): boolean {
  return hypervisor === 'qemu' || hypervisor === 'clh';
}

/** Kata-like argv of the hypervisor stand-in: [argv0, args]. */
export function hypervisorArgv(sb: SimSandbox, nodeDir: string): [string, string[]] {
  const vmDir = sb.runtime === 'go' ? path.join(nodeDir, 'vc', 'vm', sb.id) : sb.sandboxDir;
  switch (sb.hypervisor) {
    case 'clh':
      return [
        'cloud-hypervisor',
        ['--api-socket', path.join(vmDir, sb.runtime === 'go' ? 'clh-api.sock' : 'ch-api.sock')],
      ];
    case 'firecracker':
      return [
        'firecracker',
        ['--api-sock', path.join(nodeDir, 'vc', 'firecracker', sb.id, 'root', 'run', 'firecracker.socket')],
      ];
    default:
      return [
        'qemu-system-x86_64',
        [
          '-name',
          `sandbox-${sb.id}`,
          '-smp',
          String(sb.vcpus),
          '-qmp',
          `unix:${path.join(vmDir, 'qmp.sock')},server=on,wait=off`,
          ...(sb.runtime === 'go' ? ['-pidfile', path.join(vmDir, 'pid')] : []),
        ],
      ];
  }
}

export function virtiofsdArgv(sb: SimSandbox, nodeDir: string): [string, string[]] {
  const sock =
    sb.runtime === 'go'
      ? path.join(nodeDir, 'vc', 'vm', sb.id, 'vhost-fs.sock')
      : path.join(sb.sandboxDir, 'virtiofsd.sock');
  return [
    'virtiofsd',
    [
      `--socket-path=${sock}`,
      `--shared-dir=${path.join(nodeDir, 'kata-containers', 'shared', 'sandboxes', sb.id, 'shared')}`,
      '--cache=auto',
    ],
  ];
}

/** The containerd bundle's shim.pid the Kata shim writes at start. */
export function simShimPidFile(nodeDir: string, id: string): string {
  return path.join(nodeDir, 'containerd', 'io.containerd.runtime.v2.task', 'k8s.io', id, 'shim.pid');
}

export interface VmProcessOptions {
  /** `node` (default): controllable Node stand-ins; `light`: /bin/sh stand-ins without burnCpu/holdMemory. */
  kind?: 'node' | 'light';
}

export async function startVmProcesses(
  sb: SimSandbox,
  nodeDir: string,
  opts: VmProcessOptions = {},
): Promise<SimProcesses> {
  const spawnOne = opts.kind === 'light' ? spawnLightStandIn : spawnStandIn;
  const started: StandIn[] = [];
  const written: string[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(started.map(s => s.stop()));
    await Promise.all(written.map(f => fsp.rm(f, { force: true })));
  };
  try {
    // runtime-rs Dragonball runs the VMM inside the shim process: no separate hypervisor.
    let hypervisor: StandIn | undefined;
    if (!(sb.runtime === 'rs' && sb.hypervisor === 'dragonball')) {
      const [argv0, args] = hypervisorArgv(sb, nodeDir);
      hypervisor = await spawnOne(argv0, args);
      started.push(hypervisor);
    }
    let virtiofsd: StandIn | undefined;
    if (usesVirtiofsd(sb.hypervisor)) {
      const [argv0, args] = virtiofsdArgv(sb, nodeDir);
      virtiofsd = await spawnOne(argv0, args);
      started.push(virtiofsd);
    }
    if (hypervisor && sb.runtime === 'go' && sb.hypervisor === 'qemu') {
      const pidFile = path.join(nodeDir, 'vc', 'vm', sb.id, 'pid');
      await fsp.mkdir(path.dirname(pidFile), { recursive: true });
      await fsp.writeFile(pidFile, `${hypervisor.pid}\n`);
      written.push(pidFile);
    }
    const shimPidFile = simShimPidFile(nodeDir, sb.id);
    await fsp.mkdir(path.dirname(shimPidFile), { recursive: true });
    await fsp.writeFile(shimPidFile, String(process.pid));
    written.push(shimPidFile);

    const procs: SimProcesses = {
      shimPid: process.pid,
      hypervisorPid: hypervisor?.pid ?? process.pid,
      stop: async () => {
        await stopAll();
        // The bundle directory is containerd's; removed like containerd does on task delete.
        await fsp.rm(path.dirname(shimPidFile), { recursive: true, force: true });
      },
    };
    if (virtiofsd) procs.virtiofsdPid = virtiofsd.pid;
    if (sb.runtime === 'go') {
      // What Kata records with sandbox_cgroup_only=false under the cgroupfs driver.
      procs.sandboxCgroupPath = `/kubepods/besteffort/pod${sb.pod.uid}/${sb.id}`;
      procs.overheadCgroupPath = `/kata_overhead/${sb.id}`;
    }
    if (hypervisor && opts.kind !== 'light') {
      const hv = hypervisor;
      procs.burnCpu = ms => hv.send({ burnMsPerSecond: ms });
      procs.holdMemory = bytes => hv.send({ holdBytes: bytes });
    }
    return procs;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Type check: usable as `SimHooks.startProcesses`. */
export const startProcessesHook: NonNullable<SimHooks['startProcesses']> = (sb, nodeDir) =>
  startVmProcesses(sb, nodeDir);
