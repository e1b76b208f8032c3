/**
 * Fake procfs / run / sandbox trees for host collector tests, plus helpers to read the collector's output.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CollectContext } from '../../src/metrics/source';
import type { SandboxInfo } from '../../src/types';

export interface FakeProc {
  comm?: string;
  utime?: number;
  stime?: number;
  threads?: number;
  /** Field 22, ticks after boot. */
  start?: number;
  vsizeBytes?: number;
  rssKb?: number;
  vmSizeKb?: number;
  /** io file: text, a directory in its place (unreadable even for root), or missing. */
  io?: { read: number; write: number } | 'dir' | 'missing';
  fds?: number;
  cmdline?: string[];
  /** `stat` content override (truncated, garbage...). */
  statText?: string;
  /** Leave status out (the process exited between stat and status). */
  noStatus?: boolean;
}

export function statLine(pid: number, p: FakeProc): string {
  const f = [
    'S', // 3 state
    '1', // 4 ppid
    String(pid), // 5 pgrp
    String(pid), // 6 session
    '0', // 7 tty
    '-1', // 8 tpgid
    '4194560', // 9 flags
    '100', // 10 minflt
    '0', // 11 cminflt
    '0', // 12 majflt
    '0', // 13 cmajflt
    String(p.utime ?? 0), // 14 utime
    String(p.stime ?? 0), // 15 stime
    '0', // 16 cutime
    '0', // 17 cstime
    '20', // 18 priority
    '0', // 19 nice
    String(p.threads ?? 1), // 20 num_threads
    '0', // 21 itrealvalue
    String(p.start ?? 1000), // 22 starttime
    String(p.vsizeBytes ?? 1 << 30), // 23 vsize
    String(Math.round((p.rssKb ?? 1024) / 4)), // 24 rss pages
    '18446744073709551615',
  ];
  return `${pid} (${p.comm ?? 'proc'}) ${f.join(' ')} 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n`;
}

export function writeProc(procfs: string, pid: number, p: FakeProc): void {
  const dir = path.join(procfs, String(pid));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'fd'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'stat'), p.statText ?? statLine(pid, p));
  if (!p.noStatus) {
    fs.writeFileSync(
      path.join(dir, 'status'),
      `Name:\t${p.comm ?? 'proc'}\nState:\tS (sleeping)\nPid:\t${pid}\n` +
        `VmSize:\t${p.vmSizeKb ?? 1048576} kB\nVmRSS:\t${p.rssKb ?? 1024} kB\nThreads:\t${p.threads ?? 1}\n`,
    );
  }
  const io = p.io ?? { read: 0, write: 0 };
  if (io === 'dir') fs.mkdirSync(path.join(dir, 'io'));
  else if (io !== 'missing') {
    fs.writeFileSync(
      path.join(dir, 'io'),
      `rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 1\nread_bytes: ${io.read}\nwrite_bytes: ${io.write}\ncancelled_write_bytes: 0\n`,
    );
  }
  for (let i = 0; i < (p.fds ?? 3); i++) fs.writeFileSync(path.join(dir, 'fd', String(i)), '');
  fs.writeFileSync(path.join(dir, 'cmdline'), (p.cmdline ?? [p.comm ?? 'proc']).map(a => a + '\0').join(''));
}

export function writeUptime(procfs: string, seconds: number): void {
  fs.mkdirSync(procfs, { recursive: true });
  fs.writeFileSync(path.join(procfs, 'uptime'), `${seconds.toFixed(2)} 1000.00\n`);
}

export function goSandbox(root: string, id: string, persist?: object): SandboxInfo {
  const dir = path.join(root, id);
  fs.mkdirSync(dir, { recursive: true });
  if (persist) fs.writeFileSync(path.join(dir, 'persist.json'), JSON.stringify(persist));
  return {
    id,
    runtime: 'go',
    root,
    dir,
    cri: { uid: 'uid-' + id.slice(0, 4), name: 'pod', namespace: 'ns' },
  };
}

export function rsSandbox(root: string, id: string, state?: object, hypervisor?: string): SandboxInfo {
  const dir = path.join(root, id);
  fs.mkdirSync(dir, { recursive: true });
  if (state) fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify(state));
  const sb: SandboxInfo = { id, runtime: 'rs', root, dir };
  if (hypervisor) sb.hypervisor = hypervisor;
  return sb;
}

export function writeShimPid(runDir: string, ns: string, id: string, pid: number): void {
  const dir = path.join(runDir, 'containerd', 'io.containerd.runtime.v2.task', ns, id);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'shim.pid'), String(pid));
}

/** A collection context whose shim outcomes never settle: the host collector must not wait for them. */
export function ctxFor(
  sandboxes: SandboxInfo[],
  signal: AbortSignal = new AbortController().signal,
): CollectContext {
  return {
    sandboxes: [...sandboxes].sort((a, b) => (a.id < b.id ? -1 : 1)),
    shimOutcome: () => new Promise(() => undefined),
    signal,
    deadline: Date.now() + 10_000,
  };
}

/** `name{labels}` → value, from exposition text. */
export function samples(text: string | Buffer): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.toString().split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

export function sandboxSel(sb: SandboxInfo, extra: Record<string, string> = {}): string {
  const pairs: [string, string][] = [
    ['sandbox_id', sb.id],
    ['cri_uid', sb.cri?.uid ?? ''],
    ['cri_name', sb.cri?.name ?? ''],
    ['cri_namespace', sb.cri?.namespace ?? ''],
    ...Object.entries(extra),
  ];
  return '{' + pairs.map(([k, v]) => `${k}="${v}"`).join(',') + '}';
}
