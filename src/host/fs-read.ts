/**
 * Small-file readers for /proc, /sys and /run (I/O only, async: nothing here blocks the event loop).
 * Failures come back as values with a reason, never as exceptions.
 */
import { promises as fsp } from 'node:fs';
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

/** Read a whole small file as text. */
export async function readText(file: string): Promise<ReadResult<string>> {
  try {
    return { ok: true, value: await fsp.readFile(file, 'utf8') };
  } catch (err) {
    return { ok: false, reason: failureReason(err), message: getErrorMessage(err) };
  }
}

/** Read a small file and parse it; a parser exception becomes reason `parse`. */
export async function readParsed<T>(file: string, parse: (text: string) => T): Promise<ReadResult<T>> {
  const r = await readText(file);
  if (!r.ok) return r;
  try {
    return { ok: true, value: parse(r.value) };
  } catch (err) {
    return { ok: false, reason: 'parse', message: getErrorMessage(err) };
  }
}

/** Number of entries of a directory (`/proc/<pid>/fd`). */
export async function countEntries(dir: string): Promise<ReadResult<number>> {
  try {
    return { ok: true, value: (await fsp.readdir(dir)).length };
  } catch (err) {
    return { ok: false, reason: failureReason(err), message: getErrorMessage(err) };
  }
}

/** Run `fn` over `items` with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return out;
}
