/**
 * Agent address parsing (pure). Formats: kata-protocols.md §1.5 and §5.3.
 *   vsock://<cid>:<port>      real AF_VSOCK (QEMU, StratoVirt)
 *   hvsock://<path>:<port>    hybrid vsock: a hypervisor-owned unix socket + `CONNECT <port>` handshake
 *   remote://<path>[:<port>]  plain unix socket to a tunnel (runtime-rs appends a meaningless port)
 *   mock://<path>             plain unix socket (Kata's and our tests)
 */
import * as path from 'node:path';
import { KataMonitorError } from '../errors';

export const DEFAULT_AGENT_VSOCK_PORT = 1024;

export type AgentAddress =
  | { scheme: 'vsock'; cid: number; port: number }
  | { scheme: 'hvsock'; path: string; port: number }
  | { scheme: 'remote'; path: string }
  | { scheme: 'mock'; path: string };

function invalid(url: string, why: string): KataMonitorError {
  return new KataMonitorError('AGENT_UNREACHABLE', `invalid agent URL ${JSON.stringify(url)}: ${why}`);
}

function parseU32(s: string): number | undefined {
  if (!/^\d{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xffffffff ? n : undefined;
}

/** Parse an agent URL; throws KataMonitorError('AGENT_UNREACHABLE') with the reason when it is not usable. */
export function parseAgentUrl(raw: string): AgentAddress {
  const url = raw.trim();
  const m = /^([a-z]+):\/\/(.*)$/.exec(url);
  if (!m) throw invalid(raw, 'expected <scheme>://...');
  const scheme = m[1]!;
  const rest = m[2]!;
  switch (scheme) {
    case 'vsock': {
      const [cidText, portText, ...extra] = rest.split(':');
      if (extra.length > 0 || !cidText) throw invalid(raw, 'expected vsock://<cid>:<port>');
      const cid = parseU32(cidText);
      if (cid === undefined)
        throw invalid(raw, `CID ${JSON.stringify(cidText)} is not an unsigned 32-bit number`);
      const port = portText === undefined ? DEFAULT_AGENT_VSOCK_PORT : parseU32(portText);
      if (port === undefined) throw invalid(raw, `port ${JSON.stringify(portText)} is not a number`);
      return { scheme, cid, port };
    }
    case 'hvsock': {
      const i = rest.lastIndexOf(':');
      if (i <= 0) throw invalid(raw, 'expected hvsock://<path>:<port>');
      const p = rest.slice(0, i);
      const port = parseU32(rest.slice(i + 1));
      if (port === undefined) throw invalid(raw, `port ${JSON.stringify(rest.slice(i + 1))} is not a number`);
      if (!path.isAbsolute(p)) throw invalid(raw, 'the socket path must be absolute');
      return { scheme, path: p, port };
    }
    case 'remote':
    case 'mock': {
      // runtime-rs writes remote://<path>:1024; the port means nothing for a plain unix socket.
      const p = rest.replace(/:\d+$/, '');
      if (!path.isAbsolute(p)) throw invalid(raw, 'the socket path must be absolute');
      return { scheme, path: p };
    }
    default:
      throw invalid(raw, `unsupported scheme ${scheme}://`);
  }
}

/** The URL text of an address (inverse of parseAgentUrl, canonical form). */
export function formatAgentUrl(a: AgentAddress): string {
  switch (a.scheme) {
    case 'vsock':
      return `vsock://${a.cid}:${a.port}`;
    case 'hvsock':
      return `hvsock://${a.path}:${a.port}`;
    case 'remote':
    case 'mock':
      return `${a.scheme}://${a.path}`;
  }
}

/** Facts from a runtime-rs `<root>/<id>/state.json` needed to find the agent. */
export interface RuntimeRsAgentFacts {
  /** `/run/kata` (or the test root). */
  root: string;
  sandboxId: string;
  /** `hypervisor.hypervisor_type`: dragonball, qemu, clh, firecracker, remote, openvmm. */
  hypervisorType: string;
  /** `hypervisor.jailed` (Firecracker). */
  jailed?: boolean;
  /** QEMU's guest CID when known (not part of state.json at HEAD). */
  guestCid?: number;
  /** remote hypervisor: the agent (tunnel) socket path when known. */
  agentSocketPath?: string;
}

/**
 * The agent URL a runtime-rs shim would answer on `/agent-url`, derived from on-disk facts (§1.5 table),
 * for when the shim is hung. Undefined when the facts are not enough (QEMU without a CID, remote without
 * a socket path, unknown hypervisor).
 */
export function runtimeRsAgentUrl(f: RuntimeRsAgentFacts): string | undefined {
  const port = DEFAULT_AGENT_VSOCK_PORT;
  const sbDir = path.join(f.root, f.sandboxId);
  switch (f.hypervisorType) {
    case 'dragonball':
      return `hvsock://${path.join(sbDir, 'root', 'kata.hvsock')}:${port}`;
    case 'clh':
    case 'cloud-hypervisor':
      return `hvsock://${path.join(sbDir, 'ch-vm.sock')}:${port}`;
    case 'firecracker':
      return f.jailed
        ? `hvsock://${path.join(f.root, 'firecracker', f.sandboxId, 'root', 'kata.hvsock')}:${port}`
        : `hvsock://${path.join(sbDir, 'kata.hvsock')}:${port}`;
    case 'openvmm':
      return `hvsock://${path.join(sbDir, 'vsock.sock')}:${port}`;
    case 'qemu':
      return f.guestCid === undefined ? undefined : `vsock://${f.guestCid}:${port}`;
    case 'remote':
      return f.agentSocketPath ? `remote://${f.agentSocketPath}:${port}` : undefined;
    default:
      return undefined;
  }
}
