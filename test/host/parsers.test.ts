import * as fs from 'node:fs';
import * as path from 'node:path';
import { isHostParseError } from '../../src/host/errors';
import {
  classifyCmdline,
  parseCmdline,
  parsePidFile,
  parseProcIo,
  parseProcStat,
  parseProcStatus,
  parseUptime,
  processCpuSeconds,
} from '../../src/host/proc-parse';
import {
  cgroupRelativePath,
  parseCgroupV2CpuStat,
  parseCgroupValue,
  parseCpuacctUsage,
  parseMemoryStat,
  workingSetBytes,
} from '../../src/host/cgroup-parse';
import { parseRecordedState } from '../../src/host/persist-parse';
import { isValidCpuGrowth, isValidMemoryBytes, isValidProcessCpu, overhead } from '../../src/host/bounds';

const FIX = path.join(__dirname, '..', 'fixtures', 'host');
const fixture = (name: string): string => fs.readFileSync(path.join(FIX, name), 'utf8');

function expectParseError(fn: () => unknown, code: 'HOST_PARSE_TRUNCATED' | 'HOST_PARSE_INVALID'): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(isHostParseError(caught)).toBe(true);
  expect((caught as { code: string }).code).toBe(code);
}

describe('parseProcStat', () => {
  it('reads a real /proc/<pid>/stat captured on this machine', () => {
    const s = parseProcStat(fixture('real/stat'));
    expect(s.pid).toBe(10368);
    expect(s.comm).toBe('cat');
    expect(s.state).toBe('R');
    expect(s.numThreads).toBe(1);
    expect(s.startTimeTicks).toBe(97637);
    expect(s.vsizeBytes).toBe(3133440);
    expect(s.rssPages).toBe(415);
  });

  it('finds the fields after a comm holding spaces and parentheses', () => {
    const s = parseProcStat(fixture('stat-weird-comm'));
    expect(s.comm).toBe('my (weird) proc');
    expect(s.utimeTicks).toBe(250);
    expect(s.stimeTicks).toBe(75);
    expect(s.numThreads).toBe(7);
    expect(s.startTimeTicks).toBe(123456);
    expect(processCpuSeconds(s)).toBeCloseTo(3.25, 10);
    expect(processCpuSeconds(s, 250)).toBeCloseTo(1.3, 10);
  });

  it('rejects truncated, empty and garbage input with typed errors', () => {
    expectParseError(() => parseProcStat(fixture('stat-truncated')), 'HOST_PARSE_TRUNCATED');
    expectParseError(() => parseProcStat(''), 'HOST_PARSE_TRUNCATED');
    expectParseError(() => parseProcStat(fixture('stat-garbage')), 'HOST_PARSE_INVALID');
    const bad = fixture('stat-weird-comm').replace(' 250 75 ', ' 2x0 75 ');
    expectParseError(() => parseProcStat(bad), 'HOST_PARSE_INVALID');
  });
});

describe('parseProcStatus', () => {
  it('reads VmRSS, VmSize and Threads from a real status file', () => {
    const s = parseProcStatus(fixture('real/status'));
    expect(s.residentBytes).toBe(1732 * 1024);
    expect(s.virtualBytes).toBe(3060 * 1024);
    expect(s.threads).toBe(1);
  });

  it('has no memory fields for a task without mm (kernel thread / zombie)', () => {
    const s = parseProcStatus('Name:\tkthreadd\nState:\tS (sleeping)\nThreads:\t1\n');
    expect(s.residentBytes).toBeUndefined();
    expect(s.threads).toBe(1);
  });

  it('rejects truncated and garbage input', () => {
    expectParseError(() => parseProcStatus(fixture('status-truncated')), 'HOST_PARSE_TRUNCATED');
    expectParseError(() => parseProcStatus(''), 'HOST_PARSE_TRUNCATED');
    expectParseError(() => parseProcStatus('\u0000\u0001 binary junk'), 'HOST_PARSE_INVALID');
    expectParseError(() => parseProcStatus('Threads:\t3\nVmRSS:\tlots\n'), 'HOST_PARSE_INVALID');
  });
});

describe('parseProcIo', () => {
  it('reads a real io file', () => {
    const io = parseProcIo(fixture('real/io'));
    expect(io.readBytes).toBe(0);
    expect(io.writeBytes).toBe(0);
    expect(io.rchar).toBeGreaterThan(0);
  });

  it('rejects truncated and garbage input', () => {
    expectParseError(() => parseProcIo(fixture('io-truncated')), 'HOST_PARSE_TRUNCATED');
    expectParseError(() => parseProcIo(fixture('io-garbage')), 'HOST_PARSE_INVALID');
    expectParseError(() => parseProcIo(''), 'HOST_PARSE_TRUNCATED');
  });
});

describe('small /proc files', () => {
  it('parses uptime, pid files and cmdlines', () => {
    expect(parseUptime(fixture('real/uptime'))).toBeGreaterThan(0);
    expectParseError(() => parseUptime('up a while'), 'HOST_PARSE_INVALID');
    expect(parsePidFile(' 1234\n')).toBe(1234);
    expectParseError(() => parsePidFile(''), 'HOST_PARSE_TRUNCATED');
    expectParseError(() => parsePidFile('12ab'), 'HOST_PARSE_INVALID');
    expectParseError(() => parsePidFile('0'), 'HOST_PARSE_INVALID');
    expect(parseCmdline(Buffer.from('qemu\0-name\0sandbox-x\0'))).toEqual(['qemu', '-name', 'sandbox-x']);
    expect(parseCmdline('')).toEqual([]);
  });
});

describe('classifyCmdline', () => {
  const id = 'a'.repeat(64);
  const ids = new Set([id, 'b'.repeat(64)]);

  it('recognises the Go and runtime-rs shim argument orders', () => {
    const go = [
      '/usr/bin/containerd-shim-kata-v2',
      '-namespace',
      'k8s.io',
      '-address',
      '/run/containerd/containerd.sock',
      '-publish-binary',
      '/usr/bin/containerd',
      '-id',
      id,
    ];
    const rs = ['containerd-shim-kata-v2', '-id', id, '-namespace', 'k8s.io'];
    expect(classifyCmdline(go, ids)).toEqual({ id, component: 'shim' });
    expect(classifyCmdline(rs, ids)).toEqual({ id, component: 'shim' });
  });

  it('recognises QEMU by -name sandbox-<id> and CH/FC/virtiofsd by a path component', () => {
    expect(
      classifyCmdline(['/opt/kata/bin/qemu-system-x86_64', '-name', `sandbox-${id},debug-threads=on`], ids),
    ).toEqual({ id, component: 'hypervisor' });
    expect(classifyCmdline(['cloud-hypervisor', '--api-socket', `/run/kata/${id}/ch-api.sock`], ids)).toEqual(
      { id, component: 'hypervisor' },
    );
    expect(
      classifyCmdline(['/usr/libexec/virtiofsd', `--socket-path=/run/vc/vm/${id}/vhost-fs.sock`], ids),
    ).toEqual({ id, component: 'virtiofsd' });
  });

  it('ignores unrelated processes and unknown ids', () => {
    expect(classifyCmdline([], ids)).toBeUndefined();
    expect(classifyCmdline(['bash', '-c', `echo /run/vc/vm/${id}/pid`], ids)).toBeUndefined();
    expect(
      classifyCmdline(['qemu-system-x86_64', '-name', 'sandbox-' + 'c'.repeat(64)], ids),
    ).toBeUndefined();
    // Firecracker's own `--id` is not the shim's `-id`: it names the hypervisor.
    expect(classifyCmdline(['firecracker', '--id', id], ids)).toEqual({ id, component: 'hypervisor' });
  });
});

describe('cgroup parsers', () => {
  it('reads real v2 cpu.stat and v1 cpuacct.usage', () => {
    expect(parseCgroupV2CpuStat(fixture('real/cpu.stat.v2'))).toBeCloseTo(374.401145, 6);
    expect(parseCpuacctUsage(fixture('real/cpuacct.usage'))).toBeCloseTo(376.371153056, 6);
  });

  it('computes the working set from a real v1 memory.stat', () => {
    const stat = parseMemoryStat(fixture('real/memory.stat.v1'));
    const usage = parseCgroupValue(fixture('real/memory.usage_in_bytes'), 'memory.usage_in_bytes');
    const inactive = stat.get('total_inactive_file')!;
    expect(workingSetBytes(usage, stat, 1)).toBe(Math.max(0, usage - inactive));
    // v2 uses the non-prefixed key; clamped at 0 when inactive exceeds usage.
    expect(workingSetBytes(100, new Map([['inactive_file', 400]]), 2)).toBe(0);
    expect(workingSetBytes(1000, new Map([['inactive_file', 400]]), 2)).toBe(600);
  });

  it('rejects bad cgroup text', () => {
    expectParseError(() => parseCgroupV2CpuStat('user_usec 5\n'), 'HOST_PARSE_TRUNCATED');
    expectParseError(() => parseCgroupV2CpuStat('usage_usec -5\n'), 'HOST_PARSE_INVALID');
    expectParseError(() => parseCgroupValue('max\n', 'memory.current'), 'HOST_PARSE_INVALID');
    expectParseError(() => parseCgroupValue('', 'memory.current'), 'HOST_PARSE_TRUNCATED');
    expectParseError(() => parseMemoryStat(''), 'HOST_PARSE_TRUNCATED');
    expectParseError(() => workingSetBytes(5, new Map([['anon', 1]]), 1), 'HOST_PARSE_TRUNCATED');
  });

  it('maps recorded cgroup paths onto a hierarchy', () => {
    expect(cgroupRelativePath('/kubepods/besteffort/podX/abc')).toBe('kubepods/besteffort/podX/abc');
    expect(cgroupRelativePath('kubepods-besteffort-pod1.slice:cri-containerd:abc')).toBe(
      'kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope',
    );
    expect(cgroupRelativePath('')).toBeUndefined();
    expect(cgroupRelativePath('/')).toBeUndefined();
    expect(cgroupRelativePath('/../../etc')).toBeUndefined();
  });
});

describe('parseRecordedState', () => {
  it('reads PIDs and cgroup paths of a Go persist.json', () => {
    const text = JSON.stringify({
      SandboxContainer: 'x',
      SandboxCgroupPath: '/kubepods/pod1/x',
      OverheadCgroupPath: '/kata_overhead/x',
      HypervisorState: { Type: 'qemu', Pid: 321, VirtiofsDaemonPid: 0 },
    });
    expect(parseRecordedState(text, 'go')).toEqual({
      hypervisorPid: 321,
      hypervisorType: 'qemu',
      sandboxCgroupPath: '/kubepods/pod1/x',
      overheadCgroupPath: '/kata_overhead/x',
    });
  });

  it('reads runtime-rs state.json, where pid is null at upstream HEAD', () => {
    const text = JSON.stringify({
      sandbox_type: 'virt_container',
      hypervisor: { hypervisor_type: 'dragonball', pid: null, virtiofs_daemon_pid: 77 },
    });
    expect(parseRecordedState(text, 'rs')).toEqual({ hypervisorType: 'dragonball', virtiofsdPid: 77 });
  });

  it('rejects truncated JSON and non-objects', () => {
    expectParseError(() => parseRecordedState('{"HypervisorState": {"Pid": 3', 'go'), 'HOST_PARSE_INVALID');
    expectParseError(() => parseRecordedState('', 'go'), 'HOST_PARSE_TRUNCATED');
    expectParseError(() => parseRecordedState('[1,2]', 'rs'), 'HOST_PARSE_INVALID');
    expect(parseRecordedState('{"HypervisorState": {"Pid": "12"}}', 'go')).toEqual({});
  });
});

describe('bounds', () => {
  const facts = { cpus: 4, memoryBytes: 8 * 2 ** 30 };

  it('drops memory above host memory, negative or NaN', () => {
    expect(isValidMemoryBytes(2 ** 30, facts)).toBe(true);
    expect(isValidMemoryBytes(1.8e19, facts)).toBe(false);
    expect(isValidMemoryBytes(-1, facts)).toBe(false);
    expect(isValidMemoryBytes(NaN, facts)).toBe(false);
  });

  it('drops CPU that outgrows the host CPUs', () => {
    expect(isValidProcessCpu(39, 10, facts)).toBe(true);
    expect(isValidProcessCpu(100, 10, facts)).toBe(false);
    expect(isValidProcessCpu(100, undefined, facts)).toBe(true);
    expect(isValidProcessCpu(-0.5, undefined, facts)).toBe(false);
    expect(isValidCpuGrowth(10, 14, 1, facts)).toBe(true);
    expect(isValidCpuGrowth(10, 60, 1, facts)).toBe(false);
    expect(isValidCpuGrowth(10, 2, 1, facts)).toBe(true); // reset
    expect(isValidCpuGrowth(10, NaN, 1, facts)).toBe(false);
  });

  it('clamps overhead at 0', () => {
    expect(overhead(5, 7)).toBe(0);
    expect(overhead(7, 5)).toBe(2);
  });
});
