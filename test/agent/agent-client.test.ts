import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { Duplex } from 'node:stream';
import * as path from 'node:path';
import { AgentClient } from '../../src/agent/agent-client';
import { parseAgentUrl } from '../../src/agent/agent-url';
import { dialAgent, loadVsockBinding, type VsockBinding } from '../../src/agent/dialers';
import { TtrpcStatusError } from '../../src/agent/ttrpc-client';
import { KataMonitorError } from '../../src/errors';
import { startAgentServer, type SimAgentServer } from '../../src/sim/agent-server';
import { agentExposition } from '../../src/sim/metrics-go';
import type { SimSandbox } from '../../src/sim/types';
import { rmrf, tmpDir } from '../helpers/util';
import { rawServer, simSandbox } from './helpers';

async function errorOf(p: Promise<unknown>): Promise<KataMonitorError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof KataMonitorError)) throw new Error(`expected a KataMonitorError, got ${String(e)}`);
  return e;
}

describe('dialers', () => {
  let dir: string;
  const closers: (() => Promise<void>)[] = [];
  beforeEach(() => {
    dir = tmpDir('km-dial-');
  });
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
    rmrf(dir);
  });

  it('sends CONNECT <port> and hands over bytes that follow the OK line', async () => {
    const sock = path.join(dir, 'h.sock');
    let got = '';
    const srv = await rawServer(sock, s => {
      s.once('data', d => {
        got = d.toString();
        s.write('OK 1073741824\nEXTRA');
      });
    });
    closers.push(srv.close);
    const stream = await dialAgent(parseAgentUrl(`hvsock://${sock}:1026`), { timeoutMs: 2000 });
    closers.push(async () => void stream.destroy());
    expect(got).toBe('CONNECT 1026\n');
    // the dialled stream comes back paused: the reader resumes it when ready
    const first = await new Promise<Buffer>(r => {
      stream.once('data', r);
      stream.resume();
    });
    expect(first.toString()).toBe('EXTRA');
  });

  it('times out a handshake the muxer never answers', async () => {
    const sock = path.join(dir, 'h.sock');
    const srv = await rawServer(sock, () => undefined);
    closers.push(srv.close);
    const e = await errorOf(dialAgent(parseAgentUrl(`hvsock://${sock}:1024`), { timeoutMs: 150 }));
    expect(e.code).toBe('AGENT_TIMEOUT');
    expect(e.message).toContain('handshake');
  });

  it('reports a refused handshake and a muxer that hangs up', async () => {
    const refuse = path.join(dir, 'r.sock');
    const srv = await rawServer(refuse, s => s.once('data', () => s.write('ERR no listener on port 1024\n')));
    closers.push(srv.close);
    const e = await errorOf(dialAgent(parseAgentUrl(`hvsock://${refuse}:1024`), { timeoutMs: 2000 }));
    expect(e.code).toBe('AGENT_UNREACHABLE');
    expect(e.message).toContain('handshake refused');

    const hangup = path.join(dir, 'u.sock');
    const srv2 = await rawServer(hangup, s => s.once('data', () => s.end()));
    closers.push(srv2.close);
    const e2 = await errorOf(dialAgent(parseAgentUrl(`hvsock://${hangup}:1024`), { timeoutMs: 2000 }));
    expect(e2.code).toBe('AGENT_UNREACHABLE');
    expect(e2.message).toContain('closed during the hybrid vsock handshake');
  });

  it('reports a missing socket as AGENT_UNREACHABLE (ENOENT)', async () => {
    const e = await errorOf(dialAgent(parseAgentUrl(`remote://${dir}/none.sock`), { timeoutMs: 1000 }));
    expect(e.code).toBe('AGENT_UNREACHABLE');
    expect(e.message).toContain('ENOENT');
  });

  it('without the addon, vsock:// is VSOCK_UNAVAILABLE with a clear message', async () => {
    const e = await errorOf(dialAgent(parseAgentUrl('vsock://3:1024'), { timeoutMs: 500, vsock: null }));
    expect(e.code).toBe('VSOCK_UNAVAILABLE');
    expect(e.message).toContain('vsock://3:1024 needs the AF_VSOCK addon');
    const missing = loadVsockBinding(path.join(dir, 'nope.node'));
    expect(missing.ok).toBe(false);
  });

  it('with an addon whose socket() fails, vsock:// is VSOCK_UNAVAILABLE', async () => {
    const noFamily: VsockBinding = {
      probe: () => undefined,
      connect: () => {
        throw Object.assign(new Error('socket: Address family not supported by protocol'), {
          code: 'EAFNOSUPPORT',
        });
      },
    };
    const e = await errorOf(dialAgent(parseAgentUrl('vsock://3:1024'), { timeoutMs: 500, vsock: noFamily }));
    expect(e.code).toBe('VSOCK_UNAVAILABLE');
    expect(e.message).toContain('EAFNOSUPPORT');
  });

  /**
   * A stand-in addon whose connect returns the read end of a FIFO (opened read-write, so it never sees EOF
   * early): the test writes the bridge's 4-byte errno header and what follows into it.
   */
  function fifoBridge(): { binding: VsockBinding; write(b: Buffer): void } {
    const fifo = path.join(dir, 'bridge.fifo');
    execFileSync('mkfifo', [fifo]);
    let fd = -1;
    const binding: VsockBinding = {
      probe: () => undefined,
      connect: () => (fd = fs.openSync(fifo, fs.constants.O_RDWR)),
    };
    return {
      binding,
      write: (b: Buffer) => {
        const w = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
        fs.writeSync(w, b);
        fs.closeSync(w);
        expect(fd).toBeGreaterThan(2);
      },
    };
  }

  const header = (errno: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(errno, 0);
    return b;
  };

  it('through the vsock bridge: hands the stream over after a 0 header, bytes after it included', async () => {
    const bridge = fifoBridge();
    const dialing = dialAgent(parseAgentUrl('vsock://3:1024'), { timeoutMs: 2000, vsock: bridge.binding });
    bridge.write(Buffer.concat([header(0), Buffer.from('first bytes')]));
    const sock: Duplex = await dialing;
    closers.push(async () => {
      sock.destroy();
      await new Promise(r => setImmediate(r));
    });
    // Handed over paused (the ttrpc reader resumes it): the bytes after the header come first.
    expect(sock.isPaused()).toBe(true);
    const got = await new Promise<string>(resolve => {
      sock.once('data', (d: Buffer) => resolve(d.toString()));
      sock.resume();
    });
    expect(got).toBe('first bytes');
  });

  it.each([
    [111, 'AGENT_UNREACHABLE', 'ECONNREFUSED'],
    [110, 'AGENT_TIMEOUT', 'ETIMEDOUT'],
    [97, 'VSOCK_UNAVAILABLE', 'EAFNOSUPPORT'],
  ])('through the vsock bridge: errno %d in the header is %s', async (errno, code, name) => {
    const bridge = fifoBridge();
    const dialing = dialAgent(parseAgentUrl('vsock://3:1024'), { timeoutMs: 2000, vsock: bridge.binding });
    bridge.write(header(errno));
    const e = await errorOf(dialing);
    expect(e.code).toBe(code);
    expect(e.message).toContain(name);
  });

  it('through the vsock bridge: no header within the deadline is AGENT_TIMEOUT', async () => {
    const bridge = fifoBridge();
    const e = await errorOf(
      dialAgent(parseAgentUrl('vsock://3:1024'), { timeoutMs: 100, vsock: bridge.binding }),
    );
    expect(e.code).toBe('AGENT_TIMEOUT');
  });

  it('the real vsock path fails cleanly on this host (addon missing, no vsock, or refused)', async () => {
    // CID 1 is the local loopback CID; port 1 has no listener. Whatever this machine offers (no addon built,
    // no AF_VSOCK in the kernel, no vsock loopback → timeout, loopback → refused), the answer is one of our
    // typed errors, never a crash or a hang.
    const e = await errorOf(dialAgent(parseAgentUrl('vsock://1:1'), { timeoutMs: 300 }));
    expect(['VSOCK_UNAVAILABLE', 'AGENT_UNREACHABLE', 'AGENT_TIMEOUT']).toContain(e.code);
  });

  it('the built addon creates an AF_VSOCK socket or says why not', () => {
    const load = loadVsockBinding();
    if (!load.ok) {
      // not built here: the loader reports it instead of throwing
      expect(load.reason.length).toBeGreaterThan(0);
      return;
    }
    let code: string | undefined;
    try {
      load.binding.probe();
    } catch (err) {
      code = (err as { code?: string }).code;
    }
    expect([undefined, 'EAFNOSUPPORT', 'EPERM', 'EACCES', 'EPROTONOSUPPORT', 'ESOCKTNOSUPPORT']).toContain(
      code,
    );
  });
});

describe('AgentClient against the simulated agent', () => {
  let dir: string;
  let sb: SimSandbox;
  let server: SimAgentServer | undefined;
  let client: AgentClient | undefined;

  async function start(hybrid: boolean): Promise<void> {
    sb = simSandbox(dir, 0, { hybrid });
    server = await startAgentServer(sb);
    client = new AgentClient({ url: sb.agentUrl, callTimeoutMs: 3000, dialTimeoutMs: 2000 });
  }

  beforeEach(() => {
    dir = tmpDir('km-ac-');
  });
  afterEach(async () => {
    await client?.close();
    await server?.stop();
    client = undefined;
    server = undefined;
    rmrf(dir);
  });

  it.each([
    ['hybrid vsock', true],
    ['remote', false],
  ])('serves every call over %s on one reused connection', async (_name, hybrid) => {
    await start(hybrid);
    const c = client!;
    expect(await c.check()).toBe(1);
    const text = await c.getMetrics();
    expect(text).toBe(agentExposition(sb, 0));
    expect(text).toContain('kata_agent_scrape_count');
    const details = await c.guestDetails();
    expect(details.agent_details?.version).toMatch(/\d+\.\d+/);
    expect(details.agent_details?.init_daemon).toBe(true);
    const stats = await c.statsContainer(sb.containers[1]!);
    expect(stats.cgroup_stats?.cpu_stats?.cpu_usage?.total_usage).toBeGreaterThan(0);
    expect(stats.cgroup_stats?.memory_stats?.usage?.usage).toBeGreaterThan(0);
    expect(stats.network_stats[0]?.name).toBe('eth0');
    const nf = await errorOf(c.statsContainer('deadbeef'));
    expect(nf).toBeInstanceOf(TtrpcStatusError);
    expect((nf as TtrpcStatusError).grpcCode).toBe(5);
    expect(c.dials).toBe(1);
    expect(server!.connections).toBe(1);
    expect(server!.calls('grpc.AgentService/GetMetrics')).toBe(1);
    expect(server!.calls('grpc.Health/Check')).toBe(1);
  });

  it('unknown methods are UNIMPLEMENTED', async () => {
    await start(true);
    const e = await errorOf(client!.call('grpc.AgentService', 'CreateContainer', Buffer.alloc(0)));
    expect((e as TtrpcStatusError).grpcCode).toBe(12);
  });

  it('queues calls: one in flight per agent', async () => {
    await start(true);
    sb.agentFault = { kind: 'hang' };
    const first = client!.getMetrics({ deadline: Date.now() + 300 });
    const second = client!.check({ deadline: Date.now() + 5000 });
    // while the first hangs the second has not been sent
    await new Promise(r => setTimeout(r, 100));
    expect(server!.calls('grpc.Health/Check')).toBe(0);
    expect((await errorOf(first)).code).toBe('AGENT_TIMEOUT');
    sb.agentFault = undefined;
    expect(await second).toBe(1);
  });

  it('shows every agent fault as its typed error, read on every request', async () => {
    await start(true);
    const c = client!;
    sb.agentFault = { kind: 'deny' };
    const deny = await errorOf(c.getMetrics());
    expect((deny as TtrpcStatusError).grpcCode).toBe(7);
    expect(deny.message).toContain('GetMetricsRequest is blocked by policy');

    sb.agentFault = { kind: 'unimplemented' };
    expect(((await errorOf(c.check())) as TtrpcStatusError).grpcCode).toBe(12);

    sb.agentFault = { kind: 'hang' };
    expect((await errorOf(c.getMetrics({ deadline: Date.now() + 100 }))).code).toBe('AGENT_TIMEOUT');

    sb.agentFault = { kind: 'badframe' };
    const bad = await errorOf(c.getMetrics());
    expect(bad.code).toBe('AGENT_PROTOCOL');

    sb.agentFault = { kind: 'oversize' };
    const over = await errorOf(c.getMetrics());
    expect(over.code).toBe('AGENT_PROTOCOL');
    expect(over.message).toContain('maximum message size');

    sb.agentFault = undefined;
    expect(await c.check()).toBe(1);
    // badframe and oversize broke the connection twice: three dials in all
    expect(c.dials).toBe(3);
  });

  it('re-dials after the agent drops the connection', async () => {
    await start(true);
    expect(await client!.check()).toBe(1);
    server!.dropConnections();
    await new Promise(r => setTimeout(r, 20));
    expect(await client!.check()).toBe(1);
    expect(client!.dials).toBe(2);
    expect(server!.connections).toBe(2);
  });

  it('reports an agent that is gone as AGENT_UNREACHABLE', async () => {
    await start(true);
    await server!.stop();
    server = undefined;
    expect((await errorOf(client!.check())).code).toBe('AGENT_UNREACHABLE');
  });
});
