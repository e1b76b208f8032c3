/**
 * The cheaper per-scrape paths of the host collector give what the general ones give: the regex-free stat and
 * flat-keyed parsers, statm (real procfs) against status, procFile against path.join, and the per-sandbox
 * label cache seeing a CRI label change on the next collection.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseFlatKeyed } from '../../src/host/cgroup-parse';
import { procfsPageSize } from '../../src/host/fs-read';
import { createHostCollector, F, type HostCollector } from '../../src/host/host-collector';
import { procFile } from '../../src/host/host-paths';
import { parseProcStat, parseProcStatm, parseProcStatus } from '../../src/host/proc-parse';
import { silentLogger } from '../../src/log';
import { rmrf, tmpDir, waitFor } from '../helpers/util';
import { ctxFor, goSandbox, samples, sandboxSel, statLine, writeProc, writeUptime } from './fixture-tree';

describe('parseProcStat without regular expressions', () => {
  const canonical = statLine(42, { utime: 250, stime: 75, threads: 7, start: 123456, rssKb: 4096 });

  it('reads the canonical line and the same line in every irregular spacing alike', () => {
    const want = parseProcStat(canonical);
    expect(want).toMatchObject({
      pid: 42,
      utimeTicks: 250,
      stimeTicks: 75,
      numThreads: 7,
      startTimeTicks: 123456,
    });
    // Irregular forms go through the general parser: same answer.
    expect(parseProcStat(canonical.replace(/ /g, '  '))).toEqual(want);
    expect(parseProcStat(canonical.replace(/\n$/, ''))).toEqual(want);
    expect(parseProcStat(canonical.replace(/ 0 /, '\t0\t'))).toEqual(want);
    expect(parseProcStat(' ' + canonical + '  \n')).toEqual(want);
  });

  it('keeps comm with spaces and parentheses, negative and huge fields', () => {
    const line = canonical.replace('(proc)', '(a ) (b)').replace(' 20 0 ', ' -100 0 ');
    const s = parseProcStat(line);
    expect(s.comm).toBe('a ) (b');
    expect(s.startTimeTicks).toBe(123456);
    const big = canonical.replace(` ${1 << 30} `, ' 12345678901234567 ');
    expect(parseProcStat(big).vsizeBytes).toBe(Number('12345678901234567'));
  });

  it('throws the same errors as before on bad input', () => {
    expect(() => parseProcStat(canonical.replace(' 250 ', ' 2x0 '))).toThrow(/utime/);
    expect(() => parseProcStat(canonical.slice(0, 60))).toThrow(/fields/);
    expect(() => parseProcStat(canonical.replace(') S ', ') 7 '))).toThrow(/state/);
  });

  it('reads this process the same way the general split does', () => {
    const text = fs.readFileSync(`/proc/${process.pid}/stat`, 'utf8');
    const s = parseProcStat(text);
    const rest = text
      .slice(text.lastIndexOf(')') + 1)
      .trim()
      .split(/\s+/);
    expect(s.pid).toBe(process.pid);
    expect(s.startTimeTicks).toBe(Number(rest[22 - 3]));
    expect(s.numThreads).toBe(Number(rest[20 - 3]));
  });
});

describe('parseFlatKeyed', () => {
  it('gives the same map for kernel-formatted and irregular lines', () => {
    const text = 'anon 10\nfile 20\ninactive_file 5\n';
    const want = new Map([
      ['anon', 10],
      ['file', 20],
      ['inactive_file', 5],
    ]);
    expect(parseFlatKeyed(text, 'memory.stat')).toEqual(want);
    expect(parseFlatKeyed('anon\t10\n  \nfile   20 \ninactive_file 5', 'memory.stat')).toEqual(want);
    expect(() => parseFlatKeyed('anon 10\nfile twenty\n', 'memory.stat')).toThrow(/bad line/);
    expect(() => parseFlatKeyed('anon 10 \u00e9\n', 'memory.stat')).toThrow(/bad line/);
    expect(() => parseFlatKeyed('\n\n', 'memory.stat')).toThrow(/empty/);
  });
});

describe('procFile', () => {
  it.each(['/proc', '/proc/', '/', 'proc', './x/../proc', '', '/a//b/'])('equals path.join for %j', root => {
    expect(procFile(root, 123, 'stat')).toBe(path.join(root, '123', 'stat'));
  });
});

describe('statm on the real procfs', () => {
  let child: ChildProcess | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise(r => child!.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    child = undefined;
  });

  it('finds the page size and agrees with status VmRSS/VmSize for an idle process', async () => {
    const pageSize = procfsPageSize('/proc');
    expect(pageSize).toBeGreaterThanOrEqual(4096);
    child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const pid = child.pid!;
    // Let exec finish (the memory map changes until then), then read both while it sleeps.
    await waitFor(() => fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes('(sleep)'), 5000, 20);
    let agreed = false;
    for (let i = 0; i < 20 && !agreed; i++) {
      const status = parseProcStatus(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      const statm = parseProcStatm(fs.readFileSync(`/proc/${pid}/statm`, 'utf8'), pageSize!);
      agreed = status.residentBytes === statm.residentBytes && status.virtualBytes === statm.virtualBytes;
      if (!agreed) await new Promise(r => setTimeout(r, 50));
    }
    expect(agreed).toBe(true);
  });

  it('is not used on a fixture tree', () => {
    const dir = tmpDir('kmf-');
    try {
      expect(procfsPageSize(dir)).toBeUndefined();
    } finally {
      rmrf(dir);
    }
  });

  it('reads seven zeros (no mm) as no memory fields and rejects garbage', () => {
    expect(parseProcStatm('0 0 0 0 0 0 0\n', 4096)).toEqual({});
    expect(parseProcStatm('730 458 430 5 0 89 0\n', 4096)).toEqual({
      virtualBytes: 730 * 4096,
      residentBytes: 458 * 4096,
    });
    expect(() => parseProcStatm('', 4096)).toThrow(/of 7 fields/);
    expect(() => parseProcStatm('12 x', 4096)).toThrow(/page count/);
  });
});

describe('host collector label cache', () => {
  let base: string;
  let c: HostCollector | undefined;
  afterEach(async () => {
    await c?.close();
    rmrf(base);
  });

  it('renders a sandbox with its current CRI labels on every collection', async () => {
    base = tmpDir('kml-');
    const procfs = path.join(base, 'proc');
    const runDir = path.join(base, 'run');
    writeUptime(procfs, 10_000);
    const id = 'c'.repeat(64);
    writeProc(procfs, 700, { utime: 5, cmdline: ['qemu-system-x86_64', '-name', `sandbox-${id}`] });
    const sb = goSandbox(path.join(runDir, 'vc', 'sbs'), id, { HypervisorState: { Type: 'qemu', Pid: 700 } });
    c = createHostCollector({
      logger: silentLogger,
      procfs,
      sysfs: path.join(base, 'sys'),
      runDir,
      hostFacts: { cpus: 4, memoryBytes: 2 ** 34 },
    });
    const first = samples((await c.collect(ctxFor([sb])))[0]!.text);
    expect(first.get(`${F.procCpu}${sandboxSel(sb, { component: 'hypervisor' })}`)).toBe(0.05);

    const renamed = { ...sb, cri: { uid: 'u-2', name: 'pod "two"', namespace: 'ns2' } };
    writeProc(procfs, 700, { utime: 9, cmdline: ['qemu-system-x86_64', '-name', `sandbox-${id}`] });
    const text = (await c.collect(ctxFor([renamed])))[0]!.text.toString();
    expect(text).toContain(
      `${F.procCpu}{sandbox_id="${id}",cri_uid="u-2",cri_name="pod \\"two\\"",cri_namespace="ns2",component="hypervisor"} 0.09\n`,
    );
    expect(text).not.toContain('uid-cccc');
  });
});
