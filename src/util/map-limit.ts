/**
 * Bounded concurrency over a list with the results in input order, in turns of the shared CPU slices.
 */
import { CpuSlices } from './cpu-slices';

/** Longest stretch of work mapLimit does before yielding to the event loop when no slices are given, ms. */
export const MAP_SLICE_MS = 2;

/**
 * Run `fn` over `items` with at most `limit` in flight; results keep the input order. Every worker takes a
 * turn of `slices` before each item (cpu-slices.ts): a single event-loop turn never holds more than about one
 * slice of synchronous reads, however many workers there are. The daemon passes the slices it shares with
 * the rest of a scrape; without one, the call slices by itself (MAP_SLICE_MS).
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
  slices: CpuSlices = new CpuSlices(MAP_SLICE_MS),
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (slices.due) await slices.turn();
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return out;
}
