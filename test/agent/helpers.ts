/** Shared fixtures for the agent tests: SimSandbox objects and tiny raw servers on unix sockets. */
import * as net from 'node:net';
import * as path from 'node:path';
import type { SimSandbox } from '../../src/sim/types';
import { usableUnixPath } from '../../src/util/unix-path';

export function hexId(n: number): string {
  return n.toString(16).padStart(2, '0').repeat(32);
}

/** A SimSandbox whose agent listens on `<dir>/clh.sock` (hybrid vsock) or `<dir>/agent.sock` (remote). */
export function simSandbox(
  dir: string,
  index: number,
  opts: { hybrid?: boolean; runtime?: 'go' | 'rs'; sandboxDir?: string } = {},
): SimSandbox {
  const id = hexId(index + 1);
  const hybrid = opts.hybrid ?? true;
  const sock = path.join(dir, hybrid ? `a${index}.hv` : `a${index}.rs`);
  const sandboxDir = opts.sandboxDir ?? path.join(dir, 'sbs', id);
  return {
    id,
    index,
    runtime: opts.runtime ?? 'go',
    hypervisor: hybrid ? 'clh' : 'remote',
    sandboxDir,
    shimSocketPath: path.join(sandboxDir, 'shim-monitor.sock'),
    agentUrl: hybrid ? `hvsock://${sock}:1024` : `remote://${sock}`,
    agentSocketPath: sock,
    containers: [id, hexId(100 + index)],
    vcpus: 2,
    pod: {
      name: `pod-${index}`,
      namespace: 'default',
      uid: `uid-${index}`,
      labels: {},
      runtimeHandler: 'kata',
    },
    pprof: false,
    seed: 1000 + index,
  };
}

/** A raw unix-socket server: `onConn` gets every accepted socket. Stopped with close(). */
export async function rawServer(
  socketPath: string,
  onConn: (s: net.Socket) => void,
): Promise<{ close(): Promise<void>; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer(s => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onConn(s);
  });
  const bind = usableUnixPath(socketPath);
  await new Promise<void>(r => server.listen(bind.path, r));
  bind.release();
  return {
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>(r => server.close(() => r()));
    },
  };
}
