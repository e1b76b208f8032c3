/**
 * Writing merged families as Prometheus text 0.0.4 to a stream, family by family, in bounded chunks,
 * respecting backpressure and yielding to the event loop so a 20 MB response never blocks it for long.
 *
 * Sample lines are written from their original text with the part's label text spliced in before the `}`
 * (or as a new `{…}` after the metric name), and the family's rename prefix in front.
 */
import type { Writable } from 'node:stream';
import { FLAG_BRACES, FLAG_NEED_COMMA, flagsOf, splitOf } from './exposition-parse';
import type { MergePart, MergedFamily } from './merge';

/** Build output strings up to about this size before handing them to the stream. */
export const DEFAULT_CHUNK_CHARS = 64 * 1024;

/**
 * The text of `families`, in chunks of about `chunkChars` characters (small families are batched together,
 * big ones split between samples). Pure; lazy, so a caller can stop or pause between chunks.
 */
export function* renderChunks(
  families: Iterable<MergedFamily>,
  chunkChars = DEFAULT_CHUNK_CHARS,
): Generator<string, void, undefined> {
  for (const c of renderTaggedChunks(families, chunkChars)) yield c.text;
}

/** A chunk of output text, and whether every character of it is ASCII (then latin1 bytes = UTF-8 bytes). */
export interface TaggedChunk {
  text: string;
  ascii: boolean;
}

const NON_ASCII = /[\u0080-\uffff]/;

/** renderChunks, with each chunk tagged ASCII or not from the parts' `ascii` flags (no scan of the output). */
export function* renderTaggedChunks(
  families: Iterable<MergedFamily>,
  chunkChars = DEFAULT_CHUNK_CHARS,
): Generator<TaggedChunk, void, undefined> {
  let out = '';
  let ascii = true;
  const flush = (): TaggedChunk => {
    const c = { text: out, ascii };
    out = '';
    ascii = true;
    return c;
  };
  for (const f of families) {
    // Names are ASCII by the grammar; HELP text may not be.
    if (f.help !== undefined && ascii && NON_ASCII.test(f.help)) ascii = false;
    if (f.help !== undefined) out += '# HELP ' + f.name + ' ' + f.help + '\n';
    out += '# TYPE ' + f.name + ' ' + f.type + '\n';
    for (const { part, family } of f.entries) {
      if (part.ascii !== true) ascii = false;
      const { text, starts, ends, meta } = family;
      const prefix = family.linePrefix;
      const labels = part.labels;
      const n = starts.length;
      if (labels.length === 0) {
        for (let i = 0; i < n; i++) {
          out += prefix + text.slice(starts[i], ends[i]) + '\n';
          if (out.length >= chunkChars) {
            yield flush();
            if (part.ascii !== true) ascii = false;
          }
        }
        continue;
      }
      const withComma = ',' + labels;
      const asSet = '{' + labels + '}';
      for (let i = 0; i < n; i++) {
        const start = starts[i]!;
        const end = ends[i]!;
        const m = meta[i]!;
        const split = start + splitOf(m);
        const flags = flagsOf(m);
        const splice =
          (flags & FLAG_BRACES) === 0 ? asSet : (flags & FLAG_NEED_COMMA) !== 0 ? withComma : labels;
        // Take the line's own newline along when it has one (one concatenation less per sample).
        if (text.charCodeAt(end) === 10) {
          out += prefix + text.slice(start, split) + splice + text.slice(split, end + 1);
        } else {
          out += prefix + text.slice(start, split) + splice + text.slice(split, end) + '\n';
        }
        if (out.length >= chunkChars) {
          yield flush();
          if (part.ascii !== true) ascii = false;
        }
      }
    }
  }
  if (out.length > 0) yield flush();
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

/**
 * Copy source[start,end) to target at `at`; returns the index after it. Short ranges (most line pieces) are
 * copied by a plain loop: cheaper than a native copy's per-call view allocation.
 */
function copyRange(source: Buffer, start: number, end: number, target: Buffer, at: number): number {
  const n = end - start;
  if (n > 64) {
    target.set(source.subarray(start, end), at);
    return at + n;
  }
  for (let k = 0; k < n; k++) target[at + k] = source[start + k]!;
  return at + n;
}

/** Copy all of `source` (a whole Buffer: no view to allocate) to target at `at`. */
function copyAll(source: Buffer, target: Buffer, at: number): number {
  target.set(source, at);
  return at + source.length;
}

/**
 * The bytes of `families` (UTF-8), in Buffers of at most about `chunkBytes` bytes (a line longer than that
 * gets its own Buffer). Same text as renderChunks. Samples of byte-backed families (ParsedFamily.bytes) are
 * copied from their body; the rest are encoded from their text. Every yielded Buffer is fresh (a stream may
 * hold on to it), and only the written part of it is yielded.
 */
export function* renderByteChunks(
  families: Iterable<MergedFamily>,
  chunkBytes = DEFAULT_CHUNK_CHARS,
  allocChunk: (size: number) => Buffer = size => Buffer.allocUnsafe(size),
): Generator<Buffer, void, undefined> {
  const size = Math.max(256, chunkBytes);
  let chunk = allocChunk(size);
  let pos = 0;
  const splices = new Map<MergePart, SpliceBytes>();
  const prefixes = new Map<string, Buffer>();
  const flush = (): Buffer => {
    const out = chunk.subarray(0, pos);
    chunk = allocChunk(size);
    pos = 0;
    return out;
  };
  for (const f of families) {
    let header = '';
    if (f.help !== undefined) header += '# HELP ' + f.name + ' ' + f.help + '\n';
    header += '# TYPE ' + f.name + ' ' + f.type + '\n';
    const headerMax = header.length * 3; // UTF-8 bytes at most (HELP text may be non-ASCII)
    if (pos + headerMax > size && pos > 0) yield flush();
    if (headerMax > size) yield Buffer.from(header, 'utf8');
    else pos += chunk.write(header, pos, 'utf8');
    for (const entry of f.entries) {
      const { part, family } = entry;
      const { starts, ends, meta } = family;
      const n = starts.length;
      let sp = splices.get(part);
      if (sp === undefined) {
        const bare = Buffer.from(part.labels, 'utf8');
        sp =
          bare.length === 0
            ? { bare, withComma: EMPTY, asSet: EMPTY }
            : {
                bare,
                withComma: Buffer.from(',' + part.labels, 'utf8'),
                asSet: Buffer.from('{' + part.labels + '}', 'utf8'),
              };
        splices.set(part, sp);
      }
      const bytes = family.bytes;
      if (bytes === undefined) {
        // Slow path (rebuilt or non-ASCII texts, strings from sources): encode line by line as UTF-8.
        const src = family.text;
        const prefix = family.linePrefix;
        const labels = part.labels;
        const withComma = labels.length === 0 ? '' : ',' + labels;
        const asSet = labels.length === 0 ? '' : '{' + labels + '}';
        for (let i = 0; i < n; i++) {
          const start = starts[i]!;
          const end = ends[i]!;
          const m = meta[i]!;
          const split = start + splitOf(m);
          const flags = flagsOf(m);
          const splice =
            (flags & FLAG_BRACES) === 0 ? asSet : (flags & FLAG_NEED_COMMA) !== 0 ? withComma : labels;
          const line = prefix + src.slice(start, split) + splice + src.slice(split, end) + '\n';
          const maxBytes = line.length * 3;
          if (pos + maxBytes > size && pos > 0) yield flush();
          if (maxBytes > size) yield Buffer.from(line, 'utf8');
          else pos += chunk.write(line, pos, 'utf8');
        }
        continue;
      }
      let prefixBuf = prefixes.get(family.linePrefix);
      if (prefixBuf === undefined) {
        prefixBuf = Buffer.from(family.linePrefix, 'latin1'); // names are ASCII
        prefixes.set(family.linePrefix, prefixBuf);
      }
      const plen = prefixBuf.length;
      for (let i = 0; i < n; i++) {
        const start = starts[i]!;
        const end = ends[i]!;
        const m = meta[i]!;
        const split = start + splitOf(m);
        const flags = flagsOf(m);
        const splice =
          (flags & FLAG_BRACES) === 0 ? sp.asSet : (flags & FLAG_NEED_COMMA) !== 0 ? sp.withComma : sp.bare;
        const need = plen + (end - start) + splice.length + 1;
        if (pos + need > size && pos > 0) yield flush();
        // A line longer than a whole chunk gets a Buffer of its own.
        const target = need > size ? Buffer.allocUnsafe(need) : chunk;
        let at = target === chunk ? pos : 0;
        if (plen > 0) at = copyAll(prefixBuf, target, at);
        at = copyRange(bytes, start, split, target, at);
        if (splice.length > 0) at = copyAll(splice, target, at);
        at = copyRange(bytes, split, end, target, at);
        target[at++] = 10;
        if (target === chunk) pos = at;
        else yield target;
      }
    }
  }
  if (pos > 0) yield flush();
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
  /** Yield to the event loop (setImmediate) after this many characters written without a `drain` wait. */
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
      sinceYield = 0;
    } else if (sinceYield >= yieldEvery) {
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
