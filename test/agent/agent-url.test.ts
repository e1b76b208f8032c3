import { formatAgentUrl, parseAgentUrl, runtimeRsAgentUrl } from '../../src/agent/agent-url';
import { KataMonitorError } from '../../src/errors';

describe('parseAgentUrl', () => {
  it.each([
    ['vsock://830455376:1024', { scheme: 'vsock', cid: 830455376, port: 1024 }],
    ['vsock://3', { scheme: 'vsock', cid: 3, port: 1024 }],
    [
      'hvsock:///run/vc/vm/abc/clh.sock:1024',
      { scheme: 'hvsock', path: '/run/vc/vm/abc/clh.sock', port: 1024 },
    ],
    [
      'hvsock:///run/vc/firecracker/abc/root/kata.hvsock:1024\n',
      { scheme: 'hvsock', path: '/run/vc/firecracker/abc/root/kata.hvsock', port: 1024 },
    ],
    ['remote:///run/peerpod/agent.sock', { scheme: 'remote', path: '/run/peerpod/agent.sock' }],
    ['remote:///run/peerpod/agent.sock:1024', { scheme: 'remote', path: '/run/peerpod/agent.sock' }],
    ['mock:///tmp/x/agent.sock', { scheme: 'mock', path: '/tmp/x/agent.sock' }],
  ])('%s', (url, want) => {
    expect(parseAgentUrl(url)).toEqual(want);
  });

  it.each([
    '',
    'unix:///x.sock',
    'vsock://abc:1024',
    'vsock://1:2:3',
    'vsock://99999999999:1',
    'hvsock:///x.sock',
    'hvsock:///x.sock:port',
    'hvsock://rel.sock:1024',
    'remote://relative',
    '/run/vc/vm/x/clh.sock',
  ])('rejects %j with AGENT_UNREACHABLE', url => {
    let err: unknown;
    try {
      parseAgentUrl(url);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KataMonitorError);
    expect((err as KataMonitorError).code).toBe('AGENT_UNREACHABLE');
    expect((err as Error).message).toContain('invalid agent URL');
  });

  it('formats back to the canonical form', () => {
    for (const u of ['vsock://3:1024', 'hvsock:///a/b.sock:1024', 'remote:///r.sock', 'mock:///m.sock']) {
      expect(formatAgentUrl(parseAgentUrl(u))).toBe(u);
    }
  });
});

describe('runtimeRsAgentUrl', () => {
  const base = { root: '/run/kata', sandboxId: 'sb1' };
  it.each([
    [{ hypervisorType: 'dragonball' }, 'hvsock:///run/kata/sb1/root/kata.hvsock:1024'],
    [{ hypervisorType: 'clh' }, 'hvsock:///run/kata/sb1/ch-vm.sock:1024'],
    [{ hypervisorType: 'firecracker' }, 'hvsock:///run/kata/sb1/kata.hvsock:1024'],
    [
      { hypervisorType: 'firecracker', jailed: true },
      'hvsock:///run/kata/firecracker/sb1/root/kata.hvsock:1024',
    ],
    [{ hypervisorType: 'openvmm' }, 'hvsock:///run/kata/sb1/vsock.sock:1024'],
    [{ hypervisorType: 'qemu', guestCid: 7 }, 'vsock://7:1024'],
    [{ hypervisorType: 'qemu' }, undefined],
    [{ hypervisorType: 'remote', agentSocketPath: '/run/pp/a.sock' }, 'remote:///run/pp/a.sock:1024'],
    [{ hypervisorType: 'remote' }, undefined],
    [{ hypervisorType: 'stratovirt' }, undefined],
  ])('%j', (facts, want) => {
    expect(runtimeRsAgentUrl({ ...base, ...facts })).toBe(want);
  });
});
