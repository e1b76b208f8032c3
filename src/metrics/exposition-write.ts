/**
 * Writing merged families as Prometheus text 0.0.4 to a stream, family by family, in bounded chunks,
 * respecting backpressure and yielding to the event loop so a 20 MB response never blocks it for long.
 *
 * Sample lines are written from their original text with the part's label text spliced in before the `}`
 * (or as a new `{…}` after the metric name), and the family's rename prefix in front.
 */
import type { Writable } from 'node:stream';
import { FLAG_BRACES, FLAG_NEED_COMMA, flagsOf, splitOf } from './exposition-parse';
import type { MergedFamily } from './merge';

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

/** The whole exposition as one string (tests, golden files; never the /metrics hot path). */
export function familiesToString(families: readonly MergedFamily[]): string {
  return [...renderChunks(families)].join('');
}

export interface WriteResult {
  /** Characters handed to the stream (equals bytes for ASCII output). */
  chars: number;
  families: number;
  /** False when the stream was closed/destroyed before everything was written (client went away). */
  completed: boolean;
}

export interface WriteOptions {
  chunkChars?: number;
  /** Yield to the event loop (setImmediate) after this many characters written without a `drain` wait. */
  yieldEveryChars?: number;
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
  for (const chunk of renderTaggedChunks(families, chunkChars)) {
    if (isDead(sink)) return result;
    result.chars += chunk.text.length;
    sinceYield += chunk.text.length;
    // latin1 for ASCII text: the same bytes as UTF-8 without the length scan and the encoder.
    if (!sink.write(chunk.text, chunk.ascii ? 'latin1' : 'utf8')) {
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
