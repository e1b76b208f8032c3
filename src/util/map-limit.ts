/**
 * Bounded concurrency over a list with the results in input order, in turns of the shared CPU slices.
 */
import { CpuSlices } from './cpu-slices';

/** Longest stretch of work mapLimit does before yielding to the event loop when no slices are given, ms. */
export const MAP_SLICE_MS = 2;

/** One mapLimit call: what its workers share. */
interface MapRun<T, R, A> {
  readonly items: readonly T[];
  readonly fn: (item: T, arg: A) => Promise<R>;
  readonly arg: A;
  readonly slices: CpuSlices;
  readonly out: R[];
  next: number;
}

/**
 * A worker of a mapLimit call. A module-level function, not a closure made per call: V8 keeps the optimized
 * code of a closure site only while some closure of that site is alive, so a per-call worker lost its code at
 * the first full GC after each call and was compiled again in the next scrape (docs/performance.md).
 */
async function mapWorker<T, R, A>(run: MapRun<T, R, A>): Promise<void> {
  for (;;) {
    if (run.slices.due) await run.slices.turn();
    const i = run.next++;
    if (i >= run.items.length) return;
    run.out[i] = await run.fn(run.items[i]!, run.arg);
  }
}

/**
 * Run `fn` over `items` with at most `limit` in flight; results keep the input order. Every worker takes a
 * turn of `slices` before each item (cpu-slices.ts): a single event-loop turn never holds more than about one
 * slice of synchronous reads, however many workers there are. The daemon passes the slices it shares with
 * the rest of a scrape; without one, the call slices by itself (MAP_SLICE_MS). `arg` is passed to every call
 * of `fn`, so a caller can keep `fn` a long-lived function and hand it what one call needs.
 */
export async function mapLimit<T, R, A = undefined>(
  items: readonly T[],
  limit: number,
  fn: (item: T, arg: A) => Promise<R>,
  slices: CpuSlices = new CpuSlices(MAP_SLICE_MS),
  arg?: A,
): Promise<R[]> {
  const run: MapRun<T, R, A> = { items, fn, arg: arg as A, slices, out: new Array<R>(items.length), next: 0 };
  const workers: Promise<void>[] = [];
  for (let w = Math.min(Math.max(1, limit), items.length); w > 0; w--) workers.push(mapWorker(run));
  await Promise.all(workers);
  return run.out;
}
