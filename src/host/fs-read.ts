/**
 * Small-file readers for /proc, /sys and /run (I/O only). The files are memory-backed, so they are read
 * synchronously (cheaper) and callers yield between sandboxes (util/map-limit.ts).
 * Failures come back as values with a reason, never as exceptions.
 */
import * as fs from 'node:fs';
import { errnoCode, getErrorMessage } from '../errors';

/** Why a file could not be used; the `reason` label of `kata_monitor_host_read_errors_total`. */
export type ReadFailureReason = 'gone' | 'permission_denied' | 'unreadable' | 'parse';

export type ReadResult<T> =
  { ok: true; value: T } | { ok: false; reason: ReadFailureReason; message: string };

export function failureReason(err: unknown): ReadFailureReason {
  switch (errnoCode(err)) {
    case 'ENOENT':
    case 'ESRCH':
    case 'ENOTDIR':
      return 'gone';
    case 'EACCES':
    case 'EPERM':
      return 'permission_denied';
    default:
      return 'unreadable';
  }
}

const CHUNK = 16 * 1024;
/** One scratch buffer for every read: reads are synchronous, so they never overlap. */
let scratch: Buffer | undefined;

/**
 * open + read + close, synchronously. /proc, /sys (cgroupfs) and /run (tmpfs) are memory-backed: a read never
 * waits on a device, and the syscalls are the same either way. What the async API adds is pure overhead on a
 * collection that reads ~10 files per sandbox per scrape: a thread-pool hop, an FSReqCallback and a promise
 * per call (measured: ~15 µs sync vs ~50-65 µs async of CPU per /proc/<pid>/status). Callers keep the event
 * loop responsive by yielding between sandboxes (mapLimit does).
 * /proc and cgroup files report size 0, so read until EOF.
 */
function readSmallSync(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    return readWholeFd(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The whole content of an open file, read from offset 0 (pread: the fd's position is not used). */
function readWholeFd(fd: number): string {
  scratch ??= Buffer.allocUnsafe(CHUNK);
  let n = fs.readSync(fd, scratch, 0, CHUNK, 0);
  // A short read is EOF for the files read here: seq_file (/proc, cgroup stat files) fills the whole
  // buffer unless it runs out of records, and regular files only come back short at their end.
  if (n < CHUNK) return scratch.toString('utf8', 0, n);
  const parts: Buffer[] = [Buffer.from(scratch)];
  let pos = n;
  do {
    const buf = Buffer.allocUnsafe(CHUNK);
    n = fs.readSync(fd, buf, 0, CHUNK, pos);
    if (n > 0) parts.push(n === CHUNK ? buf : buf.subarray(0, n));
    pos += n;
  } while (n === CHUNK);
  return Buffer.concat(parts).toString('utf8');
}

/** Read a whole small file as text, synchronously (see readSmallSync). */
export function readTextSync(file: string): ReadResult<string> {
  try {
    return { ok: true, value: readSmallSync(file) };
  } catch (err) {
    return { ok: false, reason: failureReason(err), message: getErrorMessage(err) };
  }
}

/** readTextSync + parse; a parser exception becomes reason `parse`. */
export function readParsedSync<T>(file: string, parse: (text: string) => T): ReadResult<T> {
  const r = readTextSync(file);
  if (!r.ok) return r;
  try {
    return { ok: true, value: parse(r.value) };
  } catch (err) {
    return { ok: false, reason: 'parse', message: getErrorMessage(err) };
  }
}

/** Read a whole small file as text. */
export function readText(file: string): Promise<ReadResult<string>> {
  return Promise.resolve(readTextSync(file));
}

/** Read a small file and parse it; a parser exception becomes reason `parse`. */
export function readParsed<T>(file: string, parse: (text: string) => T): Promise<ReadResult<T>> {
  return Promise.resolve(readParsedSync(file, parse));
}

/** Number of entries of a directory (`/proc/<pid>/fd`). */
export function countEntries(dir: string): Promise<ReadResult<number>> {
  try {
    return Promise.resolve({ ok: true, value: fs.readdirSync(dir).length });
  } catch (err) {
    return Promise.resolve({ ok: false, reason: failureReason(err), message: getErrorMessage(err) });
  }
}

const PROC_SUPER_MAGIC = 0x9fa0;

/**
 * Whether `stat(<procfs>/<pid>/fd).size` is the number of open fds (Linux >= 6.2 on a real procfs): one stat
 * instead of listing hundreds of entries. Checked once on `<procfs>/self/fd` (this process always has fds
 * open); anything else (older kernels report 0, a fixture tree is a plain directory) keeps readdir.
 */
export function fdCountFromStatWorks(procfs: string): boolean {
  try {
    if (fs.statfsSync(procfs).type !== PROC_SUPER_MAGIC) return false;
    return fs.statSync(`${procfs}/self/fd`).size > 0;
  } catch {
    return false;
  }
}

/**
 * The kernel page size when `procfs` is a real procfs (its statfs block size is PAGE_SIZE), else undefined.
 * Page-based files (`statm`) are used only then; a fixture tree keeps the kB-based `status`.
 */
export function procfsPageSize(procfs: string): number | undefined {
  try {
    const s = fs.statfsSync(procfs);
    if (s.type !== PROC_SUPER_MAGIC) return undefined;
    const size = Number(s.bsize);
    return Number.isInteger(size) && size >= 4096 && (size & (size - 1)) === 0 ? size : undefined;
  } catch {
    return undefined;
  }
}

/** Open fds of a process: the size of its fd directory when `bySize` (see fdCountFromStatWorks), else its entries. */
export function countFds(fdDir: string, bySize: boolean): Promise<ReadResult<number>> {
  if (!bySize) return countEntries(fdDir);
  try {
    return Promise.resolve({ ok: true, value: fs.statSync(fdDir).size });
  } catch (err) {
    return Promise.resolve({ ok: false, reason: failureReason(err), message: getErrorMessage(err) });
  }
}

/**
 * Reads files through descriptors kept open from one read to the next (pread from offset 0: no open/close per
 * read). Meant for a real procfs only (`/proc/<pid>/{stat,statm,io}`), where an open fd keeps naming the same
 * process: once that process is gone, a read fails (ESRCH), and any failure (or an empty read) closes the fd
 * and the file is opened again by path, once, in the same call. So a PID reused by another process is read
 * through its path, exactly as an uncached read would, and the start-time check above it still applies.
 * Not for regular files: a file replaced by rename would keep being read through the old inode.
 * Descriptors not read since the previous `sweep()` are closed by it; `closeAll()` closes everything.
 */
export class OpenFileReader {
  private readonly fds = new Map<string, { fd: number; gen: number }>();
  private gen = 0;

  /** Number of descriptors held open (tests). */
  get size(): number {
    return this.fds.size;
  }

  readText(file: string): ReadResult<string> {
    const held = this.fds.get(file);
    if (held) {
      try {
        const text = readWholeFd(held.fd);
        if (text !== '') {
          held.gen = this.gen;
          return { ok: true, value: text };
        }
      } catch {
        // fall through: reopen by path
      }
      this.fds.delete(file);
      closeQuietly(held.fd);
    }
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      return { ok: false, reason: failureReason(err), message: getErrorMessage(err) };
    }
    try {
      const text = readWholeFd(fd);
      this.fds.set(file, { fd, gen: this.gen });
      return { ok: true, value: text };
    } catch (err) {
      closeQuietly(fd);
      return { ok: false, reason: failureReason(err), message: getErrorMessage(err) };
    }
  }

  /** readText + parse; a parser exception becomes reason `parse`. */
  readParsed<T>(file: string, parse: (text: string) => T): ReadResult<T> {
    const r = this.readText(file);
    if (!r.ok) return r;
    try {
      return { ok: true, value: parse(r.value) };
    } catch (err) {
      return { ok: false, reason: 'parse', message: getErrorMessage(err) };
    }
  }

  /** Close the descriptors not read since the previous sweep (call once per collection). */
  sweep(): void {
    for (const [file, h] of this.fds) {
      if (h.gen !== this.gen) {
        this.fds.delete(file);
        closeQuietly(h.fd);
      }
    }
    this.gen++;
  }

  closeAll(): void {
    for (const h of this.fds.values()) closeQuietly(h.fd);
    this.fds.clear();
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed or invalid: nothing to release
  }
}
