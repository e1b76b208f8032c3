/**
 * Pure parsers and path helpers for the cgroup filesystem (v1 and v2). No I/O.
 */
import * as path from 'node:path';
import { HostParseError } from './errors';

export type CgroupVersion = 1 | 2;

/** A file holding one unsigned integer (`memory.current`, `cpuacct.usage`, `memory.usage_in_bytes`). */
export function parseCgroupValue(text: string, file: string): number {
  const t = text.trim();
  if (t === '') throw new HostParseError('HOST_PARSE_TRUNCATED', file, 'empty');
  if (!/^\d+$/.test(t))
    throw new HostParseError(
      'HOST_PARSE_INVALID',
      file,
      `not an unsigned integer: ${JSON.stringify(t.slice(0, 40))}`,
    );
  return Number(t);
}

/** Flat-keyed `key value` lines (`cpu.stat`, `memory.stat`) to a map. Lines that are not `word integer` are an error. */
export function parseFlatKeyed(text: string, file: string): Map<string, number> {
  const out = new Map<string, number>();
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    if (!flatLineFast(text, start, end, out)) flatLineGeneral(text.slice(start, end), file, out);
    start = end + 1;
  }
  if (out.size === 0) throw new HostParseError('HOST_PARSE_TRUNCATED', file, 'empty');
  return out;
}

/**
 * The kernel's own form of a line, `key value` with one space, printable ASCII key and decimal value, read
 * without a regular expression. False for anything else (empty lines included): the general rule decides.
 */
function flatLineFast(text: string, start: number, end: number, out: Map<string, number>): boolean {
  const sp = text.indexOf(' ', start);
  if (sp <= start || sp >= end - 1) return false;
  for (let i = start; i < sp; i++) {
    const c = text.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  for (let i = sp + 1; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  out.set(text.slice(start, sp), Number(text.slice(sp + 1, end)));
  return true;
}

function flatLineGeneral(line: string, file: string, out: Map<string, number>): void {
  if (line.trim() === '') return;
  const m = /^(\S+)\s+(\d+)\s*$/.exec(line);
  if (!m)
    throw new HostParseError('HOST_PARSE_INVALID', file, `bad line ${JSON.stringify(line.slice(0, 60))}`);
  out.set(m[1]!, Number(m[2]));
}

/** cgroup v2 `cpu.stat` → CPU seconds (`usage_usec` / 1e6). */
export function parseCgroupV2CpuStat(text: string): number {
  const kv = parseFlatKeyed(text, 'cpu.stat');
  const usec = kv.get('usage_usec');
  if (usec === undefined) throw new HostParseError('HOST_PARSE_TRUNCATED', 'cpu.stat', 'missing usage_usec');
  return usec / 1e6;
}

/** cgroup v1 `cpuacct.usage` (nanoseconds) → CPU seconds. */
export function parseCpuacctUsage(text: string): number {
  return parseCgroupValue(text, 'cpuacct.usage') / 1e9;
}

/** `memory.stat` of either version, as a map of counters. */
export function parseMemoryStat(text: string): Map<string, number> {
  return parseFlatKeyed(text, 'memory.stat');
}

/**
 * Working set the way cAdvisor/kubelet compute it: usage minus inactive file pages, clamped at 0.
 * v2: `memory.current` - `inactive_file`; v1: `memory.usage_in_bytes` - `total_inactive_file` (hierarchical).
 */
export function workingSetBytes(
  usageBytes: number,
  memoryStat: ReadonlyMap<string, number>,
  version: CgroupVersion,
): number {
  const key = version === 2 ? 'inactive_file' : 'total_inactive_file';
  const inactive = memoryStat.get(key);
  if (inactive === undefined)
    throw new HostParseError('HOST_PARSE_TRUNCATED', 'memory.stat', `missing ${key}`);
  return Math.max(0, usageBytes - inactive);
}

/**
 * A cgroup path as recorded in persist.json, made relative to a hierarchy root.
 * - cgroupfs style `/kubepods/besteffort/pod<uid>/<id>` → `kubepods/besteffort/pod<uid>/<id>`;
 * - systemd style `<slice>:<prefix>:<name>` (e.g. `kubepods-besteffort-pod1.slice:cri-containerd:abc`) →
 *   `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope`.
 * Returns undefined for an empty path or one that tries to leave the hierarchy (`..`).
 */
export function cgroupRelativePath(recorded: string): string | undefined {
  const p = recorded.trim();
  if (p === '') return undefined;
  const systemd = /^([^/:]*\.slice)?:([^/:]+):([^/:]+)$/.exec(p);
  let rel: string;
  if (systemd) {
    const slice = systemd[1] ?? '';
    const parts: string[] = [];
    if (slice !== '' && slice !== '-.slice') {
      const words = slice.slice(0, -'.slice'.length).split('-');
      for (let i = 1; i <= words.length; i++) parts.push(words.slice(0, i).join('-') + '.slice');
    }
    parts.push(`${systemd[2]}-${systemd[3]}.scope`);
    rel = parts.join('/');
  } else {
    rel = p.replace(/^\/+/, '');
  }
  const norm = path.posix.normalize(rel);
  if (norm === '.' || norm === '' || norm.startsWith('..')) return undefined;
  return norm.replace(/\/+$/, '');
}

/** Where the files of a cgroup live, for each version. `sysfs` is the sysfs mount (default `/sys`). */
export function cgroupFiles(
  sysfs: string,
  version: CgroupVersion,
  rel: string,
): { cpu: string; memUsage: string; memStat: string } {
  const base = path.join(sysfs, 'fs', 'cgroup');
  if (version === 2) {
    const dir = path.join(base, rel);
    return {
      cpu: path.join(dir, 'cpu.stat'),
      memUsage: path.join(dir, 'memory.current'),
      memStat: path.join(dir, 'memory.stat'),
    };
  }
  return {
    cpu: path.join(base, 'cpuacct', rel, 'cpuacct.usage'),
    memUsage: path.join(base, 'memory', rel, 'memory.usage_in_bytes'),
    memStat: path.join(base, 'memory', rel, 'memory.stat'),
  };
}
