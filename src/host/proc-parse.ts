/**
 * Pure parsers for the /proc files the host collector reads (no I/O). Each throws a HostParseError
 * (`HOST_PARSE_TRUNCATED` / `HOST_PARSE_INVALID`) on input it cannot trust; none returns a partial guess.
 */
import { HostParseError } from './errors';

/** Linux USER_HZ: the unit of utime/stime/starttime in /proc/<pid>/stat. 100 on every Linux ABI we run on. */
export const DEFAULT_CLOCK_TICKS = 100;

export interface ProcStat {
  pid: number;
  comm: string;
  /** One-letter state (`R`, `S`, `Z`, ...). */
  state: string;
  /** Field 14, clock ticks spent in user mode. */
  utimeTicks: number;
  /** Field 15, clock ticks spent in kernel mode. */
  stimeTicks: number;
  /** Field 20. */
  numThreads: number;
  /** Field 22: start time in clock ticks after boot; identifies the process together with the pid. */
  startTimeTicks: number;
  /** Field 23, bytes. */
  vsizeBytes: number;
  /** Field 24, pages. */
  rssPages: number;
}

function toInt(raw: string | undefined, file: string, what: string): number {
  if (raw === undefined) throw new HostParseError('HOST_PARSE_TRUNCATED', file, `missing ${what}`);
  if (!/^-?\d+$/.test(raw))
    throw new HostParseError(
      'HOST_PARSE_INVALID',
      file,
      `${what} is not an integer: ${JSON.stringify(raw.slice(0, 40))}`,
    );
  return Number(raw);
}

/**
 * `/proc/<pid>/stat`. The comm field (2) is in parentheses and may itself hold spaces and parentheses, so
 * the fields after it are found from the LAST `)`.
 */
export function parseProcStat(text: string): ProcStat {
  return parseProcStatFast(text) ?? parseProcStatGeneral(text);
}

const SPACE = 0x20;
const NEWLINE = 0x0a;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;

/**
 * An optional integer token `text[from, to)`: `-?\d+`, else undefined. Up to 15 digits are summed exactly;
 * longer ones go through Number() like the general parser.
 */
function intToken(text: string, from: number, to: number): number | undefined {
  let i = from;
  const neg = text.charCodeAt(i) === MINUS;
  if (neg) i++;
  if (i >= to) return undefined;
  if (to - i > 15) {
    for (let j = i; j < to; j++) {
      const c = text.charCodeAt(j);
      if (c < ZERO || c > NINE) return undefined;
    }
    return Number(text.slice(from, to));
  }
  let n = 0;
  for (; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < ZERO || c > NINE) return undefined;
    n = n * 10 + (c - ZERO);
  }
  return neg ? -n : n;
}

/**
 * The common case of `/proc/<pid>/stat` without regular expressions or a split: `<pid> (<comm>)` then fields
 * separated by single spaces and a final newline, every needed field an integer. Undefined for anything else;
 * the general parser then decides (same answer or the same error), so both paths agree by construction.
 */
function parseProcStatFast(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open <= 0 || close < open || text.charCodeAt(open - 1) !== SPACE) return undefined;
  const pid = intToken(text, 0, open - 1);
  if (pid === undefined) return undefined;
  // Fields 3.. start after ") ".
  let pos = close + 1;
  if (text.charCodeAt(pos) !== SPACE) return undefined;
  pos++;
  const end = text.charCodeAt(text.length - 1) === NEWLINE ? text.length - 1 : text.length;
  const want: number[] = new Array<number>(25);
  let field = 3;
  let state = '';
  while (pos < end) {
    let stop = text.indexOf(' ', pos);
    if (stop < 0 || stop > end) stop = end;
    if (stop === pos) return undefined; // two spaces in a row, or a trailing space
    if (field === 3) {
      state = text.slice(pos, stop);
    } else if (field === 14 || field === 15 || field === 20 || field === 22 || field === 23 || field === 24) {
      const v = intToken(text, pos, stop);
      if (v === undefined) return undefined;
      want[field] = v;
    } else {
      // Tokens we do not read: only whitespace other than single spaces would make the split differ.
      for (let j = pos; j < stop; j++) {
        const c = text.charCodeAt(j);
        if (c <= SPACE || c === 0x7f || c > 0x7e) return undefined;
      }
    }
    field++;
    pos = stop + 1;
  }
  if (field <= 24 || !/^[A-Za-z]$/.test(state)) return undefined;
  return {
    pid,
    comm: text.slice(open + 1, close),
    state,
    utimeTicks: want[14]!,
    stimeTicks: want[15]!,
    numThreads: want[20]!,
    startTimeTicks: want[22]!,
    vsizeBytes: want[23]!,
    rssPages: want[24]!,
  };
}

function parseProcStatGeneral(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < 0) {
    throw new HostParseError(
      text.trim() === '' ? 'HOST_PARSE_TRUNCATED' : 'HOST_PARSE_INVALID',
      'stat',
      'no (comm) field',
    );
  }
  if (close < open) throw new HostParseError('HOST_PARSE_INVALID', 'stat', 'unbalanced (comm) field');
  const pid = toInt(text.slice(0, open).trim(), 'stat', 'pid');
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  // rest[0] is field 3 (state): field n is rest[n - 3]. We need up to field 24 (rss).
  if (rest.length < 22) {
    throw new HostParseError('HOST_PARSE_TRUNCATED', 'stat', `only ${rest.length + 2} of at least 24 fields`);
  }
  const f = (n: number, what: string): number => toInt(rest[n - 3], 'stat', what);
  const state = rest[0] ?? '';
  if (!/^[A-Za-z]$/.test(state))
    throw new HostParseError('HOST_PARSE_INVALID', 'stat', `bad state ${JSON.stringify(state)}`);
  return {
    pid,
    comm: text.slice(open + 1, close),
    state,
    utimeTicks: f(14, 'utime'),
    stimeTicks: f(15, 'stime'),
    numThreads: f(20, 'num_threads'),
    startTimeTicks: f(22, 'starttime'),
    vsizeBytes: f(23, 'vsize'),
    rssPages: f(24, 'rss'),
  };
}

/** CPU seconds of a process (user + system) from its stat. */
export function processCpuSeconds(stat: ProcStat, clockTicks = DEFAULT_CLOCK_TICKS): number {
  return (stat.utimeTicks + stat.stimeTicks) / clockTicks;
}

export interface ProcStatus {
  /** `VmRSS`, bytes; undefined for kernel threads and zombies (no mm). */
  residentBytes?: number;
  /** `VmSize`, bytes; undefined like residentBytes. */
  virtualBytes?: number;
  /** `Threads`. */
  threads: number;
}

/** `key:\tvalue` lines to a map (pure). */
function keyValueLines(text: string, sep: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(sep);
    if (i <= 0) continue;
    out.set(line.slice(0, i).trim(), line.slice(i + sep.length).trim());
  }
  return out;
}

function kbField(v: string | undefined, file: string, what: string): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+)\s*kB$/.exec(v);
  if (!m)
    throw new HostParseError(
      'HOST_PARSE_INVALID',
      file,
      `${what} is not "<n> kB": ${JSON.stringify(v.slice(0, 40))}`,
    );
  return Number(m[1]) * 1024;
}

/** `/proc/<pid>/status`: VmRSS, VmSize (kB → bytes) and Threads. `Threads` is required (present for every task). */
export function parseProcStatus(text: string): ProcStatus {
  const kv = keyValueLines(text, ':');
  if (kv.size === 0)
    throw new HostParseError(
      text.trim() === '' ? 'HOST_PARSE_TRUNCATED' : 'HOST_PARSE_INVALID',
      'status',
      'no "Key: value" lines',
    );
  const threadsRaw = kv.get('Threads');
  if (threadsRaw === undefined) throw new HostParseError('HOST_PARSE_TRUNCATED', 'status', 'missing Threads');
  const out: ProcStatus = { threads: toInt(threadsRaw, 'status', 'Threads') };
  const rss = kbField(kv.get('VmRSS'), 'status', 'VmRSS');
  const size = kbField(kv.get('VmSize'), 'status', 'VmSize');
  if (rss !== undefined) out.residentBytes = rss;
  if (size !== undefined) out.virtualBytes = size;
  return out;
}

export interface ProcStatm {
  /** Field 1 (`size`, pages) in bytes: VmSize. Undefined for a task without mm (all fields 0). */
  virtualBytes?: number;
  /** Field 2 (`resident`, pages) in bytes: VmRSS (same kernel counters as status). Undefined without mm. */
  residentBytes?: number;
}

/**
 * `/proc/<pid>/statm` (`size resident shared text lib data dt`, in pages). The kernel prints seven zeros for a
 * task without mm (kernel thread, zombie): that reads as no memory fields, like status without VmRSS/VmSize.
 */
export function parseProcStatm(text: string, pageSize: number): ProcStatm {
  let i = 0;
  const fields: number[] = [];
  while (fields.length < 2) {
    while (i < text.length && (text.charCodeAt(i) === SPACE || text.charCodeAt(i) === NEWLINE)) i++;
    if (i >= text.length) break;
    let stop = i;
    while (stop < text.length && text.charCodeAt(stop) !== SPACE && text.charCodeAt(stop) !== NEWLINE) stop++;
    const v = intToken(text, i, stop);
    if (v === undefined || v < 0)
      throw new HostParseError(
        'HOST_PARSE_INVALID',
        'statm',
        `not a page count: ${JSON.stringify(text.slice(i, Math.min(stop, i + 40)))}`,
      );
    fields.push(v);
    i = stop;
  }
  if (fields.length < 2)
    throw new HostParseError('HOST_PARSE_TRUNCATED', 'statm', `only ${fields.length} of 7 fields`);
  const [size, resident] = fields as [number, number];
  if (size === 0 && resident === 0) return {};
  return { virtualBytes: size * pageSize, residentBytes: resident * pageSize };
}

export interface ProcIo {
  /** `read_bytes`: bytes this process caused to be fetched from the storage layer. */
  readBytes: number;
  /** `write_bytes`: bytes this process caused to be sent to the storage layer. */
  writeBytes: number;
  /** `rchar` / `wchar`: all bytes through read()/write()-like calls (sockets and pipes included). */
  rchar?: number;
  wchar?: number;
}

/** `/proc/<pid>/io`. */
export function parseProcIo(text: string): ProcIo {
  const kv = keyValueLines(text, ':');
  if (kv.size === 0)
    throw new HostParseError(
      text.trim() === '' ? 'HOST_PARSE_TRUNCATED' : 'HOST_PARSE_INVALID',
      'io',
      'no "key: value" lines',
    );
  const read = kv.get('read_bytes');
  const write = kv.get('write_bytes');
  if (read === undefined || write === undefined)
    throw new HostParseError('HOST_PARSE_TRUNCATED', 'io', 'missing read_bytes/write_bytes');
  const out: ProcIo = {
    readBytes: toInt(read, 'io', 'read_bytes'),
    writeBytes: toInt(write, 'io', 'write_bytes'),
  };
  const rchar = kv.get('rchar');
  const wchar = kv.get('wchar');
  if (rchar !== undefined) out.rchar = toInt(rchar, 'io', 'rchar');
  if (wchar !== undefined) out.wchar = toInt(wchar, 'io', 'wchar');
  return out;
}

/** `/proc/uptime`: seconds since boot (first number). */
export function parseUptime(text: string): number {
  const first = text.trim().split(/\s+/)[0];
  if (first === undefined || first === '')
    throw new HostParseError('HOST_PARSE_TRUNCATED', 'uptime', 'empty');
  if (!/^\d+(\.\d+)?$/.test(first))
    throw new HostParseError(
      'HOST_PARSE_INVALID',
      'uptime',
      `not a number: ${JSON.stringify(first.slice(0, 40))}`,
    );
  return Number(first);
}

/** `/proc/<pid>/cmdline`: NUL-separated argv (trailing NUL dropped). Empty for kernel threads and zombies. */
export function parseCmdline(buf: Buffer | string): string[] {
  const text = typeof buf === 'string' ? buf : buf.toString('utf8');
  if (text === '') return [];
  const parts = text.split('\0');
  if (parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/** A PID file (`/run/vc/vm/<id>/pid`, bundle `shim.pid`): one positive decimal integer, whitespace around allowed. */
export function parsePidFile(text: string, file = 'pid'): number {
  const t = text.trim();
  if (t === '') throw new HostParseError('HOST_PARSE_TRUNCATED', file, 'empty');
  if (!/^\d+$/.test(t))
    throw new HostParseError('HOST_PARSE_INVALID', file, `not a pid: ${JSON.stringify(t.slice(0, 40))}`);
  const pid = Number(t);
  if (pid <= 0 || !Number.isSafeInteger(pid))
    throw new HostParseError('HOST_PARSE_INVALID', file, `not a pid: ${t}`);
  return pid;
}

export type Component = 'shim' | 'hypervisor' | 'virtiofsd';
export const COMPONENTS: readonly Component[] = ['shim', 'hypervisor', 'virtiofsd'];

const HYPERVISOR_BINARIES = /(qemu|cloud-hypervisor|firecracker|stratovirt)/;

/**
 * Which Kata component of which sandbox (among `ids`) a command line belongs to, if any:
 * - shim: an argument `-id` followed by a known sandbox id (containerd shim v2 start/serve arguments);
 * - hypervisor: an argument holding `sandbox-<id>` (QEMU `-name sandbox-<id>`), or a hypervisor binary
 *   (qemu, cloud-hypervisor, firecracker, stratovirt) with the id as a path component of an argument
 *   (its API socket under `/run/kata/<id>/`);
 * - virtiofsd: a `virtiofsd` binary with the id as a path component of an argument (`--socket-path=.../<id>/...`).
 */
export function classifyCmdline(
  args: readonly string[],
  ids: ReadonlySet<string>,
): { id: string; component: Component } | undefined {
  if (args.length === 0) return undefined;
  for (let i = 0; i + 1 < args.length; i++) {
    // Single dash only: Firecracker takes `--id <id>` itself and must not pass for the shim.
    if (args[i] === '-id') {
      const id = args[i + 1]!;
      if (ids.has(id)) return { id, component: 'shim' };
    }
  }
  for (const a of args) {
    let at = a.indexOf('sandbox-');
    while (at >= 0) {
      const tail = a.slice(at + 'sandbox-'.length);
      const id = tail.split(/[,\s/]/)[0] ?? '';
      if (ids.has(id)) return { id, component: 'hypervisor' };
      at = a.indexOf('sandbox-', at + 1);
    }
  }
  const bin = (args[0]!.split('/').pop() ?? '').toLowerCase();
  const isVirtiofsd = bin.includes('virtiofsd');
  const isHypervisor = !isVirtiofsd && HYPERVISOR_BINARIES.test(bin);
  if (!isVirtiofsd && !isHypervisor) return undefined;
  for (let i = 1; i < args.length; i++) {
    for (const token of args[i]!.split(/[/=,:\s]/)) {
      if (token !== '' && ids.has(token))
        return { id: token, component: isVirtiofsd ? 'virtiofsd' : 'hypervisor' };
    }
  }
  return undefined;
}
