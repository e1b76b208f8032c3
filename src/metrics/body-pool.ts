/**
 * Reused Buffers for shim bodies.
 *
 * Every scrape reads a body per sandbox (6.7 MB at 100 sandboxes). Fresh Buffers for each are external
 * memory V8 only gives back at a full GC, which it starts after tens of MB of growth: the resident set
 * would climb by several scrapes' worth of bodies and each scrape would pay for a mark-compact. Bodies are
 * instead lent from this pool and held (BodyLease) by the collection that read them and by their sandbox's
 * parse template; a body is returned once both let go: the collection when the last response using it is
 * done, the template when a newer body replaces it. A body never returned (a holder that forgets) is simply
 * collected by the GC: the pool only ever loses reuse, never hands out a Buffer still in use.
 */
import { oversized, type BodyStore } from '../shim/http-response';

/** Sizes handed out are multiples of this (a body that grows a little still fits its old Buffer). */
export const BODY_GRANULE = 16 * 1024;

/**
 * A hold on a lent body. Each hold is released once (later releases of the same hold do nothing); the Buffer
 * goes back to the pool when the last hold on it is released. `share()` adds a hold (a collection and the
 * sandbox's rolling parse template can hold the same body).
 */
export class BodyLease {
  private held = true;
  constructor(
    private readonly pool: BodyPool,
    readonly buffer: Buffer,
    private readonly holds: { count: number } = { count: 1 },
  ) {}

  /** Another hold on the same body. */
  share(): BodyLease {
    this.holds.count++;
    return new BodyLease(this.pool, this.buffer, this.holds);
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    if (--this.holds.count === 0) this.pool.free(this.buffer);
  }

  /** Whether this hold is still held (tests, diagnostics). */
  get live(): boolean {
    return this.held;
  }
}

export class BodyPool implements BodyStore {
  /** Free Buffers, sorted by length. */
  private readonly spare: Buffer[] = [];
  private spareBytes = 0;
  /** Buffers lent out (to tell ours from anything else a fetcher returns). */
  private readonly lent = new WeakSet<ArrayBuffer>();
  /** A scratch the socket reads into; its bytes are copied out at once. */
  readonly scratch = Buffer.allocUnsafeSlow(64 * 1024);

  /** @param maxSpareBytes free Buffers kept at most (the rest are left to the GC) */
  constructor(private maxSpareBytes: number) {}

  /** Keep up to this many free bytes (the collector: about the bodies in flight at once). */
  setMaxSpareBytes(n: number): void {
    this.maxSpareBytes = n;
    while (this.spareBytes > n && this.spare.length > 0) this.spareBytes -= this.spare.pop()!.length;
  }

  alloc(min: number): Buffer {
    const need = Math.max(BODY_GRANULE, Math.ceil(min / BODY_GRANULE) * BODY_GRANULE);
    // Binary search on length.
    let lo = 0;
    let hi = this.spare.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.spare[mid]!.length < need) lo = mid + 1;
      else hi = mid;
    }
    // The smallest free Buffer that fits, unless it is much bigger than asked (it would be kept that way).
    if (lo < this.spare.length && !oversized(this.spare[lo]!.length, min)) {
      const buf = this.spare.splice(lo, 1)[0]!;
      this.spareBytes -= buf.length;
      this.lent.add(buf.buffer as ArrayBuffer);
      return buf;
    }
    const buf = Buffer.allocUnsafeSlow(need);
    this.lent.add(buf.buffer as ArrayBuffer);
    return buf;
  }

  free(buf: Buffer): void {
    const ab = buf.buffer as ArrayBuffer;
    if (!this.lent.has(ab)) return;
    this.lent.delete(ab);
    const whole = Buffer.from(ab, 0, ab.byteLength);
    if (this.spareBytes + whole.length > this.maxSpareBytes) return;
    let lo = 0;
    let hi = this.spare.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.spare[mid]!.length < whole.length) lo = mid + 1;
      else hi = mid;
    }
    this.spare.splice(lo, 0, whole);
    this.spareBytes += whole.length;
  }

  /** A lease on `body` when it is one of ours (a view of a lent Buffer), else undefined. */
  lease(body: Buffer): BodyLease | undefined {
    const ab = body.buffer as ArrayBuffer;
    if (!this.lent.has(ab)) return undefined;
    return new BodyLease(this, Buffer.from(ab, 0, ab.byteLength));
  }

  /** Free bytes kept (tests, diagnostics). */
  get spareSize(): number {
    return this.spareBytes;
  }
}
