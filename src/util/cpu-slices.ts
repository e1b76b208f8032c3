/**
 * Cooperative slicing of synchronous work, shared by everything that does CPU work for a scrape (checking
 * shim bodies, host /proc reads), so the event loop still turns every few milliseconds and a `/healthz`
 * or a second scrape is answered while a big one runs.
 *
 * Callers ask for a turn before each piece of work (a body check, a slice of a parse, a sandbox's reads).
 * While the current slice has time left the turn is granted at once. Once it has run for `sliceMs`, callers
 * queue, and the queue is let go one caller per turn of the event loop (a setImmediate each), after the loop
 * has polled for I/O (accepted connections, read requests); each let-go caller starts a new slice, in which
 * callers that were not queued may go on too until it is used up. Why it matters: 32 shim bodies that arrive
 * in one poll phase would otherwise all be checked in that phase's callbacks, 30 ms and more without a turn.
 *
 * One caller per turn, not all queued callers at once: a woken caller's work runs after every other woken
 * caller has been told to go on (promise continuations are queued in order), so a shared gate would let the
 * whole queue run in one turn, however long that takes.
 */

/** Longest stretch of synchronous work between two event-loop turns, ms (default). */
export const DEFAULT_SLICE_MS = 2;

export class CpuSlices {
  private sliceStart: number;
  /** Callers waiting for a turn, first come first served. */
  private readonly queue: Array<() => void> = [];
  private scheduled = false;
  /** Times a caller queued (tests, diagnostics). */
  parked = 0;

  constructor(
    readonly sliceMs: number = DEFAULT_SLICE_MS,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.sliceStart = now();
  }

  /** Whether the current slice has used up its time, or callers are queued (take a turn before more work). */
  get due(): boolean {
    return this.queue.length > 0 || this.now() - this.sliceStart >= this.sliceMs;
  }

  /** Resolves when the caller may run its next piece of work (at once while the slice has time left). */
  turn(): Promise<void> {
    if (!this.due) return Promise.resolve();
    this.parked++;
    return new Promise<void>(resolve => {
      this.queue.push(resolve);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.letOneGo);
  }

  private readonly letOneGo = (): void => {
    this.scheduled = false;
    const next = this.queue.shift();
    if (next === undefined) return;
    this.sliceStart = this.now();
    next();
    if (this.queue.length > 0) this.schedule();
  };
}
