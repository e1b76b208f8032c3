/**
 * Writing merged families as Prometheus text 0.0.4 to a stream, family by family, in bounded chunks,
 * respecting backpressure and yielding to the event loop so a 20 MB response never blocks it for long.
 *
 * Sample lines are written from their original text with the part's label text spliced in before the `}`
 * (or as a new `{…}` after the metric name), and the family's rename prefix in front.
 */
import type { Writable } from 'node:stream';

/**
 * exposition-parse's ROW, FLAG_BRACES and FLAG_NEED_COMMA as module-local consts: an imported (or exported)
 * const is a property load per use in CommonJS output, and these are used per sample line. The byte-exact
 * writer tests fail if they drift from the parser's.
 */
const ROW = 3;
const FLAG_BRACES = 1;
const FLAG_NEED_COMMA = 2;
import { viewOf } from './byte-ops';
import { sourceOf, type SampleSource } from './exposition-parse';
import type { MergedFamily } from './merge';

/** Build output strings up to about this size before handing them to the stream. */
export const DEFAULT_CHUNK_CHARS = 64 * 1024;

/**
 * The text of `families`, in chunks of about `chunkChars` bytes (decoded renderByteChunks: tests and
 * diagnostics; /metrics writes the bytes).
 */
export function* renderChunks(
  families: Iterable<MergedFamily>,
  chunkChars = DEFAULT_CHUNK_CHARS,
): Generator<string, void, undefined> {
  // Decode across chunk boundaries: a chunk may end inside a multi-byte character.
  const decoder = new TextDecoder('utf-8');
  for (const c of renderByteChunks(families, chunkChars)) {
    const text = decoder.decode(c, { stream: true });
    if (text.length > 0) yield text;
  }
  const rest = decoder.decode();
  if (rest.length > 0) yield rest;
}

/** Bytes spliced into the sample lines of one part: the three shapes of its label text. */
interface SpliceBytes {
  /** `labels` (the line's set ends with a trailing comma) */
  bare: Buffer;
  /** `,labels` */
  withComma: Buffer;
  /** `{labels}` (the line had no label set) */
  asSet: Buffer;
}

const EMPTY = Buffer.alloc(0);

function spliceBytes(labels: string): SpliceBytes {
  const bare = Buffer.from(labels, 'utf8');
  if (bare.length === 0) return { bare, withComma: EMPTY, asSet: EMPTY };
  return {
    bare,
    withComma: Buffer.from(',' + labels, 'utf8'),
    asSet: Buffer.from('{' + labels + '}', 'utf8'),
  };
}

/**
 * Copy source[start,end) to target at `at`; returns the index after it. Short ranges (most line pieces) are
 * copied by a plain loop; longer ones four bytes at a time through DataViews of the two Buffers' whole
 * ArrayBuffers (`sv`, `tv`; indexes offset by byteOffset). Nothing is allocated: a native copy of part of a
 * Buffer makes a view object per call on Node 20 (about 3 MB per scrape at 100 sandboxes).
 */
function copyRange(
  source: Buffer,
  start: number,
  end: number,
  target: Buffer,
  at: number,
  sv: DataView,
  tv: DataView,
): number {
  const n = end - start;
  if (n > 64) {
    const s0 = source.byteOffset + start;
    const t0 = target.byteOffset + at;
    let k = 0;
    for (; k + 4 <= n; k += 4) tv.setInt32(t0 + k, sv.getInt32(s0 + k));
    for (; k < n; k++) target[at + k] = source[start + k]!;
    return at + n;
  }
  for (let k = 0; k < n; k++) target[at + k] = source[start + k]!;
  return at + n;
}

/** Where the writer is in the rows of one family entry: the run (index into `segs`) and the row offset. */
interface RowCursor {
  seg: number;
  row: number;
}

/** The output Buffer being filled. */
interface Fill {
  chunk: Buffer;
  /** viewOf(chunk), made once per chunk. */
  view: DataView;
  pos: number;
}

const ROWS_DONE = 0;
const CHUNK_FULL = 1;

/**
 * Copy the rows of one family entry from `cur` on into `out.chunk` while they fit; returns ROWS_DONE or
 * CHUNK_FULL (flush, then call again). A row longer than a whole chunk is written into a Buffer of its own,
 * passed to `long`. A plain function, not part of the generator: V8 optimizes it as a whole, and the
 * generator only switches chunks.
 */
function fillRows(
  out: Fill,
  segs: readonly number[],
  src: SampleSource,
  cur: RowCursor,
  prefix: Buffer,
  sp: SpliceBytes,
  long: (b: Buffer) => void,
): number {
  const { bytes, table } = src;
  const sv = src.view;
  const { bare, withComma, asSet } = sp;
  const plen = prefix.length;
  const chunk = out.chunk;
  const chunkView = out.view;
  const size = chunk.length;
  let pos = out.pos;
  let status = ROWS_DONE;
  for (; cur.seg < segs.length; cur.seg += 2) {
    if (cur.row < 0) cur.row = segs[cur.seg]! * ROW;
    const last = segs[cur.seg + 1]! * ROW;
    for (; cur.row < last; cur.row += ROW) {
      const row = cur.row;
      const start = table[row]!;
      const end = table[row + 1]!;
      const m = table[row + 2]!;
      const split = start + (m >>> 3); // splitOf(m), inlined
      const splice = (m & FLAG_BRACES) === 0 ? asSet : (m & FLAG_NEED_COMMA) !== 0 ? withComma : bare;
      const need = plen + (end - start) + splice.length + 1;
      let target = chunk;
      let tv = chunkView;
      let at = pos;
      if (pos + need > size) {
        if (pos > 0) {
          status = CHUNK_FULL;
          break;
        }
        target = Buffer.allocUnsafe(need); // longer than a whole chunk
        tv = viewOf(target);
        at = 0;
      }
      if (plen > 0) {
        target.set(prefix, at);
        at += plen;
      }
      at = copyRange(bytes, start, split, target, at, sv, tv);
      if (splice.length > 0) {
        target.set(splice, at);
        at += splice.length;
      }
      at = copyRange(bytes, split, end, target, at, sv, tv);
      target[at++] = 10;
      if (target === chunk) pos = at;
      else long(target);
    }
    if (status === CHUNK_FULL) break;
    cur.row = -1;
  }
  out.pos = pos;
  return status;
}

/**
 * The bytes of `families` (UTF-8), in Buffers of at most about `chunkBytes` bytes (a line longer than that
 * gets its own Buffer). Sample lines are copied from the bytes they were parsed from, with the part's labels
 * spliced in and the family's rename prefix in front. Every yielded Buffer is fresh or handed out by
 * `allocChunk` (a stream may hold on to it), and only the written part of it is yielded.
 */
export function* renderByteChunks(
  families: Iterable<MergedFamily>,
  chunkBytes = DEFAULT_CHUNK_CHARS,
  allocChunk: (size: number) => Buffer = size => Buffer.allocUnsafe(size),
): Generator<Buffer, void, undefined> {
  const size = Math.max(256, chunkBytes);
  const first = allocChunk(size);
  const out: Fill = { chunk: first, view: viewOf(first), pos: 0 };
  const splices = new Map<string, SpliceBytes>();
  const prefixes = new Map<string, Buffer>();
  const longLines: Buffer[] = [];
  const onLong = (b: Buffer): void => {
    longLines.push(b);
  };
  const flush = (): Buffer => {
    const done = out.chunk.subarray(0, out.pos);
    out.chunk = allocChunk(size);
    out.view = viewOf(out.chunk);
    out.pos = 0;
    return done;
  };
  const cur: RowCursor = { seg: 0, row: -1 }; // one cursor, reset per entry
  for (const f of families) {
    let header = '';
    if (f.help !== undefined) header += '# HELP ' + f.name + ' ' + f.help + '\n';
    header += '# TYPE ' + f.name + ' ' + f.type + '\n';
    const headerMax = header.length * 3; // UTF-8 bytes at most (HELP text may be non-ASCII)
    if (out.pos + headerMax > size && out.pos > 0) yield flush();
    if (headerMax > size) yield Buffer.from(header, 'utf8');
    else out.pos += out.chunk.write(header, out.pos, 'utf8');
    // An index loop: for-of made an iterator object per family inside this generator (about 0.3 MB per
    // scrape at 100 sandboxes).
    const entries = f.entries;
    for (let e = 0; e < entries.length; e++) {
      const { part, family } = entries[e]!;
      let sp = splices.get(part.labels);
      if (sp === undefined) {
        sp = spliceBytes(part.labels);
        splices.set(part.labels, sp);
      }
      let prefix = prefixes.get(family.linePrefix);
      if (prefix === undefined) {
        prefix = Buffer.from(family.linePrefix, 'latin1'); // names are ASCII
        prefixes.set(family.linePrefix, prefix);
      }
      const src = sourceOf(part.exposition, family);
      cur.seg = 0;
      cur.row = -1;
      for (;;) {
        const status = fillRows(out, family.segs, src, cur, prefix, sp, onLong);
        // A long line only comes with an empty chunk: nothing written before it is pending.
        while (longLines.length > 0) yield longLines.shift()!;
        if (status === ROWS_DONE) break;
        yield flush();
      }
    }
  }
  if (out.pos > 0) yield flush();
}

/** The whole exposition as one string (tests, golden files; never the /metrics hot path). */
export function familiesToString(families: readonly MergedFamily[]): string {
  return [...renderChunks(families)].join('');
}

export interface WriteResult {
  /** Bytes handed to the stream. */
  chars: number;
  families: number;
  /** False when the stream was closed/destroyed before everything was written (client went away). */
  completed: boolean;
}

export interface WriteOptions {
  chunkChars?: number;
  /** Yield to the event loop (setImmediate) after this many bytes written, whether or not `drain` was awaited. */
  yieldEveryChars?: number;
  /**
   * Reuse chunk Buffers once the sink's write callback says it is done with them (fewer 64 KB allocations,
   * less external memory for the GC to chase). Only for sinks that do not keep written chunks after their
   * callback: http.ServerResponse, zlib streams. Default false.
   */
  recycleChunks?: boolean;
}

/**
 * Write `families` to `sink` (an http.ServerResponse or a zlib stream piped to one). Does not end the sink.
 * Resolves (never rejects) once everything was accepted by the stream or the stream died.
 */
export async function writeFamilies(
  families: readonly MergedFamily[],
  sink: Writable,
  opts: WriteOptions = {},
): Promise<WriteResult> {
  const chunkChars = opts.chunkChars ?? DEFAULT_CHUNK_CHARS;
  const yieldEvery = opts.yieldEveryChars ?? 4 * chunkChars;
  const result: WriteResult = { chars: 0, families: families.length, completed: false };
  let sinceYield = 0;
  const size = Math.max(256, chunkChars);
  const free: Buffer[] = [];
  const alloc = opts.recycleChunks === true ? () => free.pop() ?? Buffer.allocUnsafeSlow(size) : undefined;
  /** Give a written chunk back when it is a whole chunk Buffer of ours (not a long line's own Buffer). */
  const recycle = (chunk: Buffer) => (): void => {
    const ab = chunk.buffer;
    if (chunk.byteOffset === 0 && ab.byteLength === size && free.length < 8) {
      free.push(Buffer.from(ab, 0, size));
    }
  };
  for (const chunk of renderByteChunks(families, size, alloc)) {
    if (isDead(sink)) return result;
    result.chars += chunk.length;
    sinceYield += chunk.length;
    if (!(alloc ? sink.write(chunk, recycle(chunk)) : sink.write(chunk))) {
      if (isDead(sink) || !(await drained(sink))) return result;
    }
    // Yield even after a `drain`: an http.ServerResponse corks its socket per write, so every write returns
    // false, and when the peer reads fast the socket flushes synchronously and says `drain` on the next tick.
    // Waiting for `drain` alone then never lets the event loop poll: a 20 MB response held off every other
    // request, /healthz included, for the whole write (measured with curl as the client: 300 writes of
    // 64 KB, 300 drains, no turn of the loop).
    if (sinceYield >= yieldEvery) {
      await new Promise<void>(resolve => setImmediate(resolve));
      sinceYield = 0;
    }
  }
  result.completed = !isDead(sink);
  return result;
}

function isDead(sink: Writable): boolean {
  return sink.destroyed || sink.writableEnded;
}

/** Resolves true on `drain`, false if the stream closes or errors first. */
function drained(sink: Writable): Promise<boolean> {
  return new Promise<boolean>(resolve => {
    const done = (ok: boolean): void => {
      sink.off('drain', onDrain);
      sink.off('close', onClose);
      sink.off('error', onClose);
      resolve(ok);
    };
    const onDrain = (): void => done(true);
    const onClose = (): void => done(false);
    sink.on('drain', onDrain);
    sink.on('close', onClose);
    sink.on('error', onClose);
  });
}
