/**
 * Prometheus text format 0.0.4 → families (pure), on bytes.
 *
 * A body is parsed where it lies, in the Buffer it arrived in: no string is made of it, and samples are NOT
 * turned into objects. Each sample is three integers in one table per body (where its line starts, where it
 * ends, and where the sandbox labels get spliced in plus a few flags); each family is a list of runs of
 * consecutive table rows. Strings are made only for family names and HELP texts. Labels are scanned
 * (validated) but never materialised, except by relabel.ts for the rare line that already carries one of our
 * label names.
 *
 * The accepted language follows what Prometheus' Go text parser (expfmt.TextParser, used by
 * `promtool check metrics`) accepts, so whatever we re-emit parses there too. A body that does not parse
 * throws a ParseError naming the 1-based line number.
 */
import { isAscii, isUtf8 } from 'node:buffer';
import { equalRange, viewOf } from './byte-ops';
import type { MetricType } from './text-builder';
import { metricStrings } from '../util/intern';

/** Label names kata-monitor appends; a line already carrying one is flagged (see FLAG_COLLISION). */
export const RESERVED_LABELS: ReadonlySet<string> = new Set([
  'sandbox_id',
  'cri_uid',
  'cri_name',
  'cri_namespace',
]);

/** The sample has a `{...}` label set (possibly empty). */
export const FLAG_BRACES = 1;
/** The label set is non-empty and does not end with a trailing comma: a splice needs a leading `,`. */
export const FLAG_NEED_COMMA = 2;
/** The sample carries one of RESERVED_LABELS: relabel.ts rewrites it before splicing. */
export const FLAG_COLLISION = 4;
const FLAG_BITS = 8;
/** Local aliases of the flags for the parse loop (see R). */
const F_BRACES = 1;
const F_NEED_COMMA = 2;
const F_COLLISION = 4;

/** Where labels are spliced into a sample line, relative to its start: index of `}` or end of the name. */
export function splitOf(meta: number): number {
  return meta >>> 3;
}
export function flagsOf(meta: number): number {
  return meta & (FLAG_BITS - 1);
}
export function makeMeta(split: number, flags: number): number {
  return split * FLAG_BITS + flags;
}

/** Integers per sample in a SampleTable: start, end, meta. */
export const ROW = 3;
/** ROW for this module's loops (an exported const is a property load per use in CommonJS output). */
const R = 3;

/**
 * Per sample, ROW integers: offset in `bytes` where its line starts (leading blanks skipped), where it ends
 * (exclusive; before `\r`/`\n`), and makeMeta(split relative to the start, flags). Shared by the families of
 * one body.
 */
export type SampleTable = Int32Array;

/** Where a family's samples are read: the bytes, a view of them, and the rows pointing into them. */
export interface SampleSource {
  /** The UTF-8 bytes the sample offsets point into (a whole body, or lines rebuilt by relabel.ts). */
  bytes: Buffer;
  /** byte-ops' viewOf(bytes), made once per body and shared by its families (replaced with `bytes`). */
  view: DataView;
  /** The sample rows (see SampleTable); a family's `segs` say which rows are its own. */
  table: SampleTable;
}

export interface ParsedFamily extends SampleSource {
  /** Family name (after renaming, when relabel.ts renamed it). */
  name: string;
  type: MetricType;
  /** HELP text as written in the exposition (still escaped), undefined when the body gave none. */
  help: string | undefined;
  /** Runs of this family's rows in `table`, as [first, end) pairs, in body order. */
  segs: number[];
  /** Samples in the family (the rows the runs cover). */
  count: number;
  /** Text to put before every sample line when writing (the rename prefix, e.g. `kata_shim_`). */
  linePrefix: string;
  /** Whether a TYPE line declared the family. */
  typed: boolean;
  /** Whether some sample carries FLAG_COLLISION (relabel.ts looks only at such families). */
  collisions: boolean;
}

export interface ParsedExposition {
  /** Families by name, in first-appearance order. Families without samples are kept (writers skip them). */
  families: Map<string, ParsedFamily>;
  sampleCount: number;
  /**
   * The family names when the exposition came from a template check: one Set shared by every body checked
   * against that template (never changed). Undefined after a full parse, and removed by whatever renames or
   * drops families (relabel.ts).
   */
  names?: ReadonlySet<string>;
  /**
   * Set when the exposition came from reparse with `shared`: the checked body and its rows. Its families are
   * then the template's own, shared by every body checked against it and never to be changed (relabel.ts
   * copies one before it rewrites it); they hold no bytes, and their samples are read through this source
   * (sourceOf).
   */
  source?: SampleSource;
}

/** Where the samples of `f`, a family of `exp`, are read (the family's own bytes, or the checked body's). */
export function sourceOf(exp: ParsedExposition, f: ParsedFamily): SampleSource {
  return f.table === EMPTY_TABLE && exp.source !== undefined ? exp.source : f;
}

export class ParseError extends Error {
  readonly line: number;
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = 'ParseError';
    this.line = line;
  }
}

const LABEL_PLAIN = 0;
const LABEL_LE = 1;
const LABEL_QUANTILE = 2;
const LABEL_RESERVED = 3;

const SUFFIX_NONE = 0;
const SUFFIX_BUCKET = 1;
const SUFFIX_SUM = 2;
const SUFFIX_COUNT = 3;

/** The valid types, each to its literal (a family keeps the literal, not the string of its body). */
const VALID_TYPES: ReadonlyMap<string, MetricType> = new Map(
  (['counter', 'gauge', 'histogram', 'summary', 'untyped'] as const).map(t => [t, t]),
);

const C_NAME_START = 1;
const C_NAME = 2;
const C_LABEL_START = 4;
const C_LABEL = 8;
const C_BLANK = 16;
const C_DIGIT = 32;
/** Character classes of bytes (anything outside ASCII is in no class). */
const CLASS = new Uint8Array(256);
for (let c = 0; c < 128; c++) {
  const letter = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
  const digit = c >= 48 && c <= 57;
  let k = 0;
  if (letter || c === 58) k |= C_NAME_START | C_NAME;
  if (digit) k |= C_NAME | C_LABEL | C_DIGIT;
  if (letter) k |= C_LABEL_START | C_LABEL;
  if (c === 32 || c === 9) k |= C_BLANK;
  CLASS[c] = k;
}

const HASH = 35;
const NL = 10;
const CR = 13;
const OPEN = 123;
const CLOSE = 125;
const QUOTE = 34;
const BACKSLASH = 92;
const EQ = 61;
const COMMA = 44;

const EMPTY = Buffer.alloc(0);
const EMPTY_VIEW = viewOf(EMPTY);
const EMPTY_TABLE: SampleTable = new Int32Array(0);
const B_LE = Buffer.from('le');
const B_QUANTILE = Buffer.from('quantile');
const B_NAME = Buffer.from('__name__');
const B_RESERVED = [...RESERVED_LABELS].map(n => Buffer.from(n));

/** Go's strconv.ParseFloat spellings we accept beyond plain decimals: Inf/Infinity/NaN (any case), hex floats. */
const SPECIAL_FLOAT =
  /^(?:[+-]?(?:inf|infinity)|nan|[+-]?0x(?:[0-9a-f_]+\.?[0-9a-f_]*|\.[0-9a-f_]+)(?:p[+-]?[0-9_]+)?)$/i;

/** Whether b[start,end) is a float Go's ParseFloat accepts (fast path: a decimal, without allocating). */
function isFloat(b: Buffer, start: number, end: number): boolean {
  let i = start;
  let c = b[i]!;
  if (c === 43 || c === 45) c = b[++i]!;
  let digits = 0;
  while (i < end && (CLASS[b[i]!]! & C_DIGIT) !== 0) {
    i++;
    digits++;
  }
  if (i < end && b[i] === 46) {
    i++;
    while (i < end && (CLASS[b[i]!]! & C_DIGIT) !== 0) {
      i++;
      digits++;
    }
  }
  if (digits > 0) {
    if (i === end) return true;
    c = b[i]!;
    if (c === 101 || c === 69) {
      i++;
      c = b[i]!;
      if (c === 43 || c === 45) i++;
      const expStart = i;
      while (i < end && (CLASS[b[i]!]! & C_DIGIT) !== 0) i++;
      return i === end && i > expStart;
    }
    if (c !== 120 && c !== 88) return false; // not an 'x' of 0x...: junk after the number
  }
  return SPECIAL_FLOAT.test(b.toString('latin1', start, end));
}

function isInt(b: Buffer, start: number, end: number): boolean {
  let i = start;
  if (b[i] === 45 || b[i] === 43) i++;
  if (i >= end) return false;
  for (; i < end; i++) if ((CLASS[b[i]!]! & C_DIGIT) === 0) return false;
  return true;
}

/** Whether b[a,a+len) equals b[x,x+len). */
function sameRange(b: Buffer, a: number, x: number, len: number): boolean {
  for (let k = 0; k < len; k++) if (b[a + k] !== b[x + k]) return false;
  return true;
}

/** Whether b[a,end) equals `word`. */
function isWord(b: Buffer, a: number, end: number, word: Buffer): boolean {
  const n = word.length;
  if (end - a !== n) return false;
  for (let k = 0; k < n; k++) if (b[a + k] !== word[k]) return false;
  return true;
}

function labelKind(b: Buffer, a: number, end: number, lineNo: number): number {
  const len = end - a;
  if (len === 2 && isWord(b, a, end, B_LE)) return LABEL_LE;
  if (len === 8) {
    if (isWord(b, a, end, B_QUANTILE)) return LABEL_QUANTILE;
    if (isWord(b, a, end, B_NAME)) throw new ParseError(lineNo, 'label name __name__ is reserved');
  }
  if (len >= 7 && len <= 13) {
    for (const r of B_RESERVED) if (isWord(b, a, end, r)) return LABEL_RESERVED;
  }
  return LABEL_PLAIN;
}

/** Validate escapes of a HELP text: only `\\` and `\n` (Go's text parser rejects anything else). */
function checkHelpEscapes(s: string, lineNo: number): void {
  let k = s.indexOf('\\');
  while (k !== -1) {
    const n = s.charCodeAt(k + 1);
    if (n !== 92 && n !== 110) throw new ParseError(lineNo, 'invalid escape sequence in HELP text');
    k = s.indexOf('\\', k + 2);
  }
}

/** The 1-based line of the first line of `b` that is not valid UTF-8 (for the error of a bad body). */
function firstBadUtf8Line(b: Buffer): number {
  let line = 1;
  let pos = 0;
  while (pos < b.length) {
    let end = b.indexOf(NL, pos);
    if (end === -1) end = b.length;
    if (!isUtf8(b.subarray(pos, end))) return line;
    pos = end + 1;
    line++;
  }
  return line;
}

/** Integers per line in ParseTemplate.plan. */
const PLAN = 3;

/**
 * A parsed body kept to check the next body of the same producer against (reparse). Shims serve the same
 * series in the same order on every scrape; only the values move.
 */
export interface ParseTemplate {
  /**
   * The body it describes: a copy of the parsed body (ExpositionParser.template), or, for a template that
   * rolls (reparse with `roll`), the last body that matched it, which its owner keeps unchanged for as long as
   * the template is in use. Fixed parts are compared with it four bytes at a time (byte-ops.ts): nothing is
   * allocated per line, and the bytes are external memory the GC does not mark.
   */
  bytes: Buffer;
  /**
   * Per line of `bytes`, PLAN integers: where the line begins, where its fixed part ends (a sample: where its
   * value starts; any other line: after its newline), and for a sample where it starts after leading blanks
   * (-1 for other lines).
   */
  plan: Int32Array;
  lines: number;
  /** The sample table of `bytes` (its metas are valid for any body that matches the template). */
  table: SampleTable;
  rows: number;
  /**
   * The families as parsed, or as shaped by the caller before the template was made (e.g. renamed, see
   * ExpositionParser.template); never rewritten.
   */
  families: ReadonlyMap<string, ParsedFamily>;
  /** Their names, and their samples. */
  names: ReadonlySet<string>;
  sampleCount: number;
}

/** `b` copied into a Buffer of its own (not a slice of a shared pool slab). */
function copyOf(b: Buffer): Buffer {
  const c = Buffer.allocUnsafeSlow(b.length);
  b.copy(c);
  return c;
}

/** A copy of `f` pointing into other bytes (an object literal of fixed shape: cheaper than a spread). */
function withBytes(f: ParsedFamily, bytes: Buffer, view: DataView, table: SampleTable): ParsedFamily {
  return {
    name: f.name,
    type: f.type,
    help: f.help,
    bytes,
    view,
    table,
    segs: f.segs,
    count: f.count,
    linePrefix: f.linePrefix,
    typed: f.typed,
    collisions: f.collisions,
  };
}

/**
 * Parse `body` by checking it against a template: valid when every line has the template's line's fixed
 * part byte for byte and a valid value (and timestamp) after it. Costs a compare and a value scan per line
 * instead of a parse. Undefined when the body differs in anything but values (the caller then parses it in
 * full, which also finds the line of any error).
 *
 * With `roll`, a match makes `body` the template's bytes (the template then describes `body`, its plan
 * rewritten in place as the lines are checked): no copy of a body is ever kept, the caller keeps `body`
 * unchanged instead, and lets go of the previous bytes. A check that fails leaves a rolling template
 * unusable: the caller must drop it.
 */
export function reparse(
  t: ParseTemplate,
  body: Buffer,
  roll = false,
  shared = false,
): ParsedExposition | undefined {
  const table = new Int32Array(t.rows * R);
  const view = viewOf(body);
  if (!matchTemplate(t, body, view, table, roll)) return undefined;
  if (roll) {
    t.bytes = body;
    t.table = table;
  }
  if (shared) {
    // No family objects per body: the template's, read through the source (see ParsedExposition.source).
    const families = t.families as Map<string, ParsedFamily>;
    return { families, sampleCount: t.sampleCount, names: t.names, source: { bytes: body, view, table } };
  }
  const families = new Map<string, ParsedFamily>();
  for (const [name, f] of t.families) families.set(name, withBytes(f, body, view, table));
  return { families, sampleCount: t.sampleCount, names: t.names };
}

/**
 * The line loop of reparse, filling `table` (and with `roll`, rewriting the plan for `body` in place: each
 * line's entries are read before they are written, and no later line reads them). Kept apart from what
 * follows it: V8 optimizes a long loop while it runs (on-stack replacement), and code after the loop that had
 * never run then bails out of the optimized code on every call.
 */
function matchTemplate(
  t: ParseTemplate,
  body: Buffer,
  view: DataView,
  table: SampleTable,
  roll: boolean,
): boolean {
  const oldView = viewOf(t.bytes);
  const oldAt = t.bytes.byteOffset;
  const at0 = body.byteOffset;
  const plan = t.plan;
  const tmeta = t.table;
  const len = body.length;
  const lines = t.lines;
  let pos = 0;
  let row = 0;
  let ok = true;
  for (let l = 0; l < lines && ok; l++) {
    const at = l * PLAN;
    const begin = plan[at]!;
    const keyLen = plan[at + 1]! - begin;
    const sampleStart = plan[at + 2]!;
    if (pos + keyLen > len) {
      ok = false;
      break;
    }
    if (!equalRange(view, at0 + pos, oldView, oldAt + begin, keyLen)) ok = false;
    if (roll) {
      plan[at] = pos;
      plan[at + 1] = pos + keyLen;
      plan[at + 2] = sampleStart < 0 ? -1 : pos + (sampleStart - begin);
    }
    if (!ok || sampleStart < 0) {
      pos += keyLen;
      continue;
    }
    // The value, an optional timestamp, then the end of the line.
    let i = pos + keyLen;
    const vs = i;
    while (i < len && (CLASS[body[i]!]! & C_BLANK) === 0 && body[i] !== NL) i++;
    ok = i > vs && isFloat(body, vs, i);
    while (i < len && (CLASS[body[i]!]! & C_BLANK) !== 0) i++;
    if (ok && i < len && body[i] !== NL) {
      const ts = i;
      while (i < len && (CLASS[body[i]!]! & C_BLANK) === 0 && body[i] !== NL) i++;
      ok = isInt(body, ts, i);
      while (i < len && (CLASS[body[i]!]! & C_BLANK) !== 0) i++;
      ok = ok && (i >= len || body[i] === NL);
    }
    const r = row * R;
    table[r] = pos + (sampleStart - begin);
    table[r + 1] = i; // like a full parse: trailing blanks stay part of the line
    table[r + 2] = tmeta[r + 2]!;
    row++;
    pos = i < len ? i + 1 : len;
  }
  return ok && pos === len;
}

/** Most label sets of a shim are this long or shorter; longer ones grow the scratch arrays. */
const LABEL_SCRATCH = 16;

/**
 * An incremental parser: `parseSome(maxLines)` lets a caller yield to the event loop between slices of a
 * big body. `parseExposition` runs it to completion.
 */
export class ExpositionParser {
  private pos = 0;
  private lineNo = 0;
  private readonly families = new Map<string, ParsedFamily>();
  private readonly table: SampleTable;
  private readonly view: DataView;
  private rows = 0;
  /** The family whose run of rows is open, and the row it started at. */
  private runFamily: ParsedFamily | undefined;
  private runStart = 0;
  /** The previous sample line's name (offset in bytes, length); length -1 when the next must be looked up. */
  private lastNameAt = 0;
  private lastNameLen = -1;
  private curFamily: ParsedFamily | undefined;
  private curSuffix = SUFFIX_NONE;
  /** Label names of the previous sample line by position (offset, length, kind), and how many it had. */
  private prevLabelAt = new Int32Array(LABEL_SCRATCH);
  private prevLabelLen = new Int32Array(LABEL_SCRATCH);
  private prevLabelKind = new Uint8Array(LABEL_SCRATCH);
  private prevLabels = -1;
  /** Label names of the current line (offset, length) for the duplicate check. */
  private curLabelAt = new Int32Array(LABEL_SCRATCH);
  private curLabelLen = new Int32Array(LABEL_SCRATCH);
  /** Per line, PLAN integers (see ParseTemplate.plan). */
  private readonly plan: Int32Array;
  private planLines = 0;

  /** `input` must stay unchanged while the families are in use: they point into it. */
  constructor(private readonly bytes: Buffer) {
    if (!isAscii(bytes) && !isUtf8(bytes)) {
      throw new ParseError(firstBadUtf8Line(bytes), 'text is not valid UTF-8');
    }
    // One row per line at most: count the lines once (native search) instead of growing the table.
    let lines = 1;
    for (let k = bytes.indexOf(NL); k !== -1; k = bytes.indexOf(NL, k + 1)) lines++;
    this.table = new Int32Array(lines * R);
    this.plan = new Int32Array(lines * PLAN);
    this.view = viewOf(bytes);
  }

  /**
   * What a later body with the same series can be checked against instead of being parsed (see reparse).
   * Only once the whole body parsed. `shaped` is the result() after the caller renamed (or dropped) families
   * in it, which later checks then give as is; never after the caller rewrote lines (relabel.ts collisions).
   * `copy` false keeps the parsed body itself as the template's bytes (for a caller that keeps it unchanged
   * while the template is in use, as a rolling template's owner does; see reparse).
   */
  template(shaped: ParsedExposition = this.result(), copy = true): ParseTemplate {
    const families = new Map<string, ParsedFamily>();
    // Copies: callers rewrite the families they get; the template keeps them as they are now, without the
    // body and its table (a match points them into the new body and its table; the template's own table is
    // `table` below, so the families holding this one would keep a second table per template alive).
    for (const [name, f] of shaped.families) families.set(name, withBytes(f, EMPTY, EMPTY_VIEW, EMPTY_TABLE));
    return {
      names: new Set(families.keys()),
      sampleCount: shaped.sampleCount,
      bytes: copy ? copyOf(this.bytes) : this.bytes,
      plan: this.plan,
      lines: this.planLines,
      table: this.table,
      rows: this.rows,
      families,
    };
  }

  private planLine(begin: number, keyEnd: number, sampleStart: number): void {
    const at = this.planLines * PLAN;
    this.plan[at] = begin;
    this.plan[at + 1] = keyEnd;
    this.plan[at + 2] = sampleStart;
    this.planLines++;
  }

  /** Parse up to `maxLines` lines; true when the whole text is done. Throws ParseError. */
  parseSome(maxLines: number): boolean {
    const b = this.bytes;
    const len = b.length;
    let budget = maxLines;
    while (this.pos < len && budget-- > 0) {
      let end = b.indexOf(NL, this.pos);
      if (end === -1) end = len;
      const begin = this.pos;
      let start = begin;
      this.pos = end + 1;
      this.lineNo++;
      // A line that is not a sample is its whole text, newline included, in a template.
      const whole = Math.min(this.pos, len);
      if (end > start && b[end - 1] === CR) end--; // tolerate CRLF
      while (start < end && (CLASS[b[start]!]! & C_BLANK) !== 0) start++;
      if (start === end) {
        this.planLine(begin, whole, -1);
        continue;
      }
      if (b[start] === HASH) {
        this.lastNameLen = -1;
        this.parseComment(start, end);
        this.planLine(begin, whole, -1);
      } else {
        this.planLine(begin, this.parseSample(start, end), start);
      }
    }
    const done = this.pos >= len;
    if (done) this.closeRun();
    return done;
  }

  result(): ParsedExposition {
    return { families: this.families, sampleCount: this.rows };
  }

  private closeRun(): void {
    const f = this.runFamily;
    if (f !== undefined && this.rows > this.runStart) {
      const segs = f.segs;
      const n = segs.length;
      // A run right after the family's previous one (a comment line in between) extends it.
      if (n > 0 && segs[n - 1] === this.runStart) segs[n - 1] = this.rows;
      else segs.push(this.runStart, this.rows);
    }
    this.runFamily = undefined;
  }

  private family(name: string): ParsedFamily {
    let f = this.families.get(name);
    if (!f) {
      name = metricStrings.get(name);
      f = {
        name,
        type: 'untyped',
        help: undefined,
        bytes: this.bytes,
        view: this.view,
        table: this.table,
        segs: [],
        count: 0,
        linePrefix: '',
        typed: false,
        collisions: false,
      };
      this.families.set(name, f);
    }
    return f;
  }

  private parseComment(start: number, end: number): void {
    const b = this.bytes;
    // `# HELP name text` / `# TYPE name type`; any other comment is ignored.
    let i = start + 1;
    if (i >= end || (CLASS[b[i]!]! & C_BLANK) === 0) return;
    while (i < end && (CLASS[b[i]!]! & C_BLANK) !== 0) i++;
    let kind: 'HELP' | 'TYPE';
    if (end - i >= 4 && b[i] === 72 && b[i + 1] === 69 && b[i + 2] === 76 && b[i + 3] === 80) kind = 'HELP';
    else if (end - i >= 4 && b[i] === 84 && b[i + 1] === 89 && b[i + 2] === 80 && b[i + 3] === 69)
      kind = 'TYPE';
    else return;
    i += 4;
    if (i < end && (CLASS[b[i]!]! & C_BLANK) === 0) return; // e.g. `# HELPFUL remark`
    while (i < end && (CLASS[b[i]!]! & C_BLANK) !== 0) i++;
    const nameStart = i;
    if (i >= end || (CLASS[b[i]!]! & C_NAME_START) === 0)
      throw new ParseError(this.lineNo, `invalid metric name in ${kind} line`);
    while (i < end && (CLASS[b[i]!]! & C_NAME) !== 0) i++;
    const name = b.toString('latin1', nameStart, i);
    if (i < end && (CLASS[b[i]!]! & C_BLANK) === 0)
      throw new ParseError(this.lineNo, `invalid metric name in ${kind} line`);
    while (i < end && (CLASS[b[i]!]! & C_BLANK) !== 0) i++;
    const rest = b.toString('utf8', i, end);
    const f = this.family(name);
    if (kind === 'HELP') {
      checkHelpEscapes(rest, this.lineNo);
      if (f.help !== undefined && f.help !== rest)
        throw new ParseError(this.lineNo, `second HELP line for metric name ${name}`);
      f.help = metricStrings.get(rest);
      return;
    }
    const type = VALID_TYPES.get(rest.trimEnd());
    if (type === undefined)
      throw new ParseError(this.lineNo, `unknown metric type ${JSON.stringify(rest.trimEnd())}`);
    if (f.typed) {
      // runtime-rs concatenates expositions; tolerate a repeated identical declaration, never a different one.
      if (f.type !== type) throw new ParseError(this.lineNo, `second TYPE line for metric name ${name}`);
      return;
    }
    if (f.count > 0) throw new ParseError(this.lineNo, `TYPE reported after samples for ${name}`);
    f.type = type;
    f.typed = true;
  }

  /**
   * Resolve the family a sample named bytes[a,b) belongs to into curFamily/curSuffix (Go's lookup order:
   * exact name, then summary/histogram suffixes).
   */
  private familyForSample(a: number, b: number): void {
    const name = this.bytes.toString('latin1', a, b);
    this.curSuffix = SUFFIX_NONE;
    const exact = this.families.get(name);
    if (exact) {
      this.curFamily = exact;
      return;
    }
    let cut = 0;
    let suffix = SUFFIX_NONE;
    if (name.endsWith('_sum')) {
      cut = 4;
      suffix = SUFFIX_SUM;
    } else if (name.endsWith('_count')) {
      cut = 6;
      suffix = SUFFIX_COUNT;
    } else if (name.endsWith('_bucket')) {
      cut = 7;
      suffix = SUFFIX_BUCKET;
    }
    if (cut > 0) {
      const f = this.families.get(name.slice(0, -cut));
      if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== SUFFIX_BUCKET))) {
        this.curFamily = f;
        this.curSuffix = suffix;
        return;
      }
    }
    this.curFamily = this.family(name);
  }

  private growLabelScratch(): void {
    const n = this.curLabelAt.length * 2;
    const grow = <T extends Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const g = make(n);
      g.set(a);
      return g;
    };
    this.curLabelAt = grow(this.curLabelAt, k => new Int32Array(k));
    this.curLabelLen = grow(this.curLabelLen, k => new Int32Array(k));
    this.prevLabelAt = grow(this.prevLabelAt, k => new Int32Array(k));
    this.prevLabelLen = grow(this.prevLabelLen, k => new Int32Array(k));
    this.prevLabelKind = grow(this.prevLabelKind, k => new Uint8Array(k));
  }

  /** Parses one sample line into the table; returns where its value starts. */
  private parseSample(start: number, end: number): number {
    const b = this.bytes;
    const lineNo = this.lineNo;
    let i = start;
    if ((CLASS[b[i]!]! & C_NAME_START) === 0) throw new ParseError(lineNo, 'invalid metric name');
    // Scan the name, comparing it with the previous sample's name on the way (consecutive samples usually
    // share a name, and then the family is already resolved).
    const lastAt = this.lastNameAt;
    const lastLen = this.lastNameLen;
    let same = lastLen > 0;
    i++;
    while (i < end && (CLASS[b[i]!]! & C_NAME) !== 0) i++;
    const nameEnd = i;
    if (same) same = nameEnd - start === lastLen && sameRange(b, start, lastAt, lastLen);
    if (!same) {
      this.familyForSample(start, nameEnd);
      this.lastNameAt = start;
      this.lastNameLen = nameEnd - start;
    }
    const f = this.curFamily!;
    const suffix = this.curSuffix;
    while (i < end && (CLASS[b[i]!]! & C_BLANK) !== 0) i++;
    if (b[i] !== OPEN) i = nameEnd; // no label set: the blanks separate name and value

    let flags = 0;
    let split = nameEnd;
    let hasLe = false;
    let hasQuantile = false;
    if (i < end && b[i] === OPEN) {
      flags |= F_BRACES;
      i++;
      let n = 0;
      let trailingComma = false;
      // Whether every label name so far is the previous line's name at the same position.
      let asBefore = true;
      for (;;) {
        while (i < end && (CLASS[b[i]!]! & C_BLANK) !== 0) i++;
        if (i >= end) throw new ParseError(lineNo, 'unterminated label set');
        const c = b[i]!;
        if (c === CLOSE) break;
        if (n > 0 && !trailingComma) throw new ParseError(lineNo, 'expected "," or "}" in label set');
        if ((CLASS[c]! & C_LABEL_START) === 0) throw new ParseError(lineNo, 'invalid label name');
        const ln = i;
        i++;
        while (i < end && (CLASS[b[i]!]! & C_LABEL) !== 0) i++;
        const lnLen = i - ln;
        if (n === this.curLabelAt.length) this.growLabelScratch();
        let kind: number;
        if (
          asBefore &&
          n < this.prevLabels &&
          this.prevLabelLen[n] === lnLen &&
          sameRange(b, ln, this.prevLabelAt[n]!, lnLen)
        ) {
          kind = this.prevLabelKind[n]!;
        } else {
          asBefore = false;
          kind = labelKind(b, ln, i, lineNo);
        }
        this.curLabelAt[n] = ln;
        this.curLabelLen[n] = lnLen;
        this.prevLabelKind[n] = kind;
        if (kind === LABEL_LE) hasLe = true;
        else if (kind === LABEL_QUANTILE) hasQuantile = true;
        else if (kind === LABEL_RESERVED) flags |= F_COLLISION;
        while (i < end && (CLASS[b[i]!]! & C_BLANK) !== 0) i++;
        if (b[i] !== EQ || i >= end) throw new ParseError(lineNo, 'expected "=" after label name');
        i++;
        while (i < end && (CLASS[b[i]!]! & C_BLANK) !== 0) i++;
        if (b[i] !== QUOTE || i >= end) throw new ParseError(lineNo, 'expected quoted label value');
        i++;
        // The value: up to the closing quote, with only \\, \" and \n as escapes.
        for (;;) {
          if (i >= end) throw new ParseError(lineNo, 'unterminated label value');
          const v = b[i]!;
          if (v === QUOTE) break;
          if (v === BACKSLASH) {
            const e = b[i + 1];
            if (i + 1 >= end || (e !== BACKSLASH && e !== QUOTE && e !== 110))
              throw new ParseError(lineNo, 'invalid escape sequence in label value');
            i += 2;
          } else {
            i++;
          }
        }
        i++;
        n++;
        while (i < end && (CLASS[b[i]!]! & C_BLANK) !== 0) i++;
        trailingComma = b[i] === COMMA && i < end;
        if (trailingComma) i++;
      }
      // A label set that is not the previous line's, name for name: check it for repeated names.
      if (!asBefore || n !== this.prevLabels) this.checkDuplicateLabels(n);
      // The current names become the reference for the next line.
      const at = this.curLabelAt;
      const len = this.curLabelLen;
      for (let k = 0; k < n; k++) {
        this.prevLabelAt[k] = at[k]!;
        this.prevLabelLen[k] = len[k]!;
      }
      this.prevLabels = n;
      split = i; // the `}`
      if (n > 0 && !trailingComma) flags |= F_NEED_COMMA;
      i++;
    } else {
      this.prevLabels = 0;
    }
    // value
    if (i >= end || (CLASS[b[i]!]! & C_BLANK) === 0) {
      throw new ParseError(lineNo, i >= end ? 'missing sample value' : 'expected blank before sample value');
    }
    while (i < end && (CLASS[b[i]!]! & C_BLANK) !== 0) i++;
    const vs = i;
    while (i < end && (CLASS[b[i]!]! & C_BLANK) === 0) i++;
    if (vs === i) throw new ParseError(lineNo, 'missing sample value');
    if (!isFloat(b, vs, i))
      throw new ParseError(lineNo, `invalid sample value ${JSON.stringify(b.toString('utf8', vs, i))}`);
    while (i < end && (CLASS[b[i]!]! & C_BLANK) !== 0) i++;
    if (i < end) {
      const ts = i;
      while (i < end && (CLASS[b[i]!]! & C_BLANK) === 0) i++;
      if (!isInt(b, ts, i))
        throw new ParseError(lineNo, `invalid timestamp ${JSON.stringify(b.toString('utf8', ts, i))}`);
      while (i < end && (CLASS[b[i]!]! & C_BLANK) !== 0) i++;
      if (i < end) throw new ParseError(lineNo, 'unexpected text after timestamp');
    }

    if (f.type === 'histogram') {
      if (suffix === SUFFIX_NONE)
        throw new ParseError(lineNo, `histogram ${f.name} sample without _bucket/_sum/_count`);
      if (suffix === SUFFIX_BUCKET && !hasLe)
        throw new ParseError(lineNo, `histogram bucket of ${f.name} without le label`);
    } else if (f.type === 'summary') {
      if (suffix === SUFFIX_NONE && !hasQuantile)
        throw new ParseError(lineNo, `summary ${f.name} sample without quantile label`);
    }

    if (f !== this.runFamily) {
      this.closeRun();
      this.runFamily = f;
      this.runStart = this.rows;
    }
    const row = this.rows * R;
    const t = this.table;
    t[row] = start;
    t[row + 1] = end;
    t[row + 2] = makeMeta(split - start, flags);
    this.rows++;
    f.count++;
    if ((flags & F_COLLISION) !== 0) f.collisions = true;
    return vs;
  }

  private checkDuplicateLabels(n: number): void {
    const b = this.bytes;
    const at = this.curLabelAt;
    const len = this.curLabelLen;
    for (let x = 1; x < n; x++) {
      const ax = at[x]!;
      const lx = len[x]!;
      for (let y = 0; y < x; y++) {
        if (len[y] === lx && sameRange(b, ax, at[y]!, lx)) {
          throw new ParseError(this.lineNo, `duplicate label name ${b.toString('latin1', ax, ax + lx)}`);
        }
      }
    }
  }
}

/**
 * Call `fn(start, end, meta)` for every sample of a family, in order (offsets into `sourceOf(exp, f).bytes`;
 * `exp` is needed for the families of a shared reparse).
 */
export function forEachSample(
  f: ParsedFamily,
  fn: (start: number, end: number, meta: number) => void,
  exp?: ParsedExposition,
): void {
  const { table } = exp ? sourceOf(exp, f) : f;
  const segs = f.segs;
  for (let s = 0; s < segs.length; s += 2) {
    for (let r = segs[s]!; r < segs[s + 1]!; r++) fn(table[r * R]!, table[r * R + 1]!, table[r * R + 2]!);
  }
}

/** The meta of every sample of a family, in order (tests, diagnostics). */
export function sampleMetas(f: ParsedFamily, exp?: ParsedExposition): number[] {
  const out: number[] = [];
  forEachSample(f, (_s, _e, m) => out.push(m), exp);
  return out;
}

/** The sample lines of a family as strings (tests, diagnostics; the hot path uses the offsets). */
export function sampleLines(f: ParsedFamily, exp?: ParsedExposition): string[] {
  const out: string[] = [];
  const { bytes } = exp ? sourceOf(exp, f) : f;
  forEachSample(f, (s, e) => out.push(bytes.toString('utf8', s, e)), exp);
  return out;
}

/** Parse a whole exposition. Throws ParseError with the 1-based line number. */
export function parseExposition(input: string | Buffer): ParsedExposition {
  const p = new ExpositionParser(typeof input === 'string' ? Buffer.from(input, 'utf8') : input);
  p.parseSome(Number.POSITIVE_INFINITY);
  return p.result();
}
