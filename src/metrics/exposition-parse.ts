/**
 * Prometheus text format 0.0.4 → families (pure).
 *
 * Samples are NOT turned into objects: each sample stays its original line text, plus one number that records
 * where the label set ends (so the sandbox labels can be spliced in textually) and a few flags. Labels are
 * scanned (validated) but never materialised, except by relabel.ts for the rare line that already carries
 * one of our label names.
 *
 * The accepted language follows what Prometheus' Go text parser (expfmt.TextParser, used by
 * `promtool check metrics`) accepts, so whatever we re-emit parses there too. A body that does not parse
 * throws a ParseError naming the 1-based line number.
 */
import type { MetricType } from './text-builder';

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

/** Where labels are spliced into a sample line: index of `}` (braces) or end of the metric name. */
export function splitOf(meta: number): number {
  return Math.floor(meta / FLAG_BITS);
}
export function flagsOf(meta: number): number {
  return meta % FLAG_BITS;
}
export function makeMeta(split: number, flags: number): number {
  return split * FLAG_BITS + flags;
}

export interface ParsedFamily {
  /** Family name (after renaming, when relabel.ts renamed it). */
  name: string;
  type: MetricType;
  /** HELP text as written in the exposition (still escaped), undefined when the body gave none. */
  help: string | undefined;
  /**
   * The text the sample offsets point into: the whole body (samples are not copied out of it), or a text
   * rebuilt by relabel.ts for a family whose lines had to be rewritten.
   */
  text: string;
  /**
   * The bytes `text` was decoded from, when offsets into `text` are byte offsets too (an ASCII body decoded as
   * latin1): the writer then copies sample bytes instead of building strings. Undefined once relabel.ts
   * rebuilt the text, and for parsed strings.
   */
  bytes?: Buffer;
  /** Per sample, in body order: offset in `text` where its line starts (leading blanks skipped). */
  starts: number[];
  /** Per sample: offset in `text` where its line ends (exclusive; before `\r`/`\n`). */
  ends: number[];
  /** Per sample: makeMeta(split relative to the line start, flags). */
  meta: number[];
  /** Text to put before every sample line when writing (the rename prefix, e.g. `kata_shim_`). */
  linePrefix: string;
  /** Whether the family was declared after some of its samples were seen (only legal for untyped). */
  typed: boolean;
}

export interface ParsedExposition {
  /** Families by name, in first-appearance order. Families without samples are kept (writers skip them). */
  families: Map<string, ParsedFamily>;
  sampleCount: number;
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

const VALID_TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

const C_NAME_START = 1;
const C_NAME = 2;
const C_LABEL_START = 4;
const C_LABEL = 8;
const C_BLANK = 16;
/** Character classes of ASCII codes (anything else is in no class). */
const CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const letter = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
  const digit = c >= 48 && c <= 57;
  let k = 0;
  if (letter || c === 58) k |= C_NAME_START | C_NAME;
  if (digit) k |= C_NAME | C_LABEL;
  if (letter) k |= C_LABEL_START | C_LABEL;
  if (c === 32 || c === 9) k |= C_BLANK;
  CLASS[c] = k;
}
function isNameStart(c: number): boolean {
  return c < 128 && (CLASS[c]! & C_NAME_START) !== 0;
}
function isNameChar(c: number): boolean {
  return c < 128 && (CLASS[c]! & C_NAME) !== 0;
}
function isLabelStart(c: number): boolean {
  return c < 128 && (CLASS[c]! & C_LABEL_START) !== 0;
}
function isLabelChar(c: number): boolean {
  return c < 128 && (CLASS[c]! & C_LABEL) !== 0;
}
function isBlank(c: number): boolean {
  return c === 32 || c === 9;
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** Go's strconv.ParseFloat spellings we accept beyond plain decimals: Inf/Infinity/NaN (any case), hex floats. */
const SPECIAL_FLOAT =
  /^(?:[+-]?(?:inf|infinity)|nan|[+-]?0x(?:[0-9a-f_]+\.?[0-9a-f_]*|\.[0-9a-f_]+)(?:p[+-]?[0-9_]+)?)$/i;

/** Whether s[start,end) is a float Go's ParseFloat accepts (fast path: decimal without allocation). */
function isFloat(s: string, start: number, end: number): boolean {
  let i = start;
  let c = s.charCodeAt(i);
  if (c === 43 || c === 45) c = s.charCodeAt(++i);
  let digits = 0;
  while (i < end && isDigit(s.charCodeAt(i))) {
    i++;
    digits++;
  }
  if (i < end && s.charCodeAt(i) === 46) {
    i++;
    while (i < end && isDigit(s.charCodeAt(i))) {
      i++;
      digits++;
    }
  }
  if (digits > 0) {
    if (i === end) return true;
    c = s.charCodeAt(i);
    if (c === 101 || c === 69) {
      i++;
      c = s.charCodeAt(i);
      if (c === 43 || c === 45) i++;
      const expStart = i;
      while (i < end && isDigit(s.charCodeAt(i))) i++;
      return i === end && i > expStart;
    }
    if (c !== 120 && c !== 88) return false; // not an 'x' of 0x...: junk after the number
  }
  return SPECIAL_FLOAT.test(s.slice(start, end));
}

function isInt(s: string, start: number, end: number): boolean {
  let i = start;
  if (s.charCodeAt(i) === 45 || s.charCodeAt(i) === 43) i++;
  if (i >= end) return false;
  for (; i < end; i++) if (!isDigit(s.charCodeAt(i))) return false;
  return true;
}

/** Whether the label name at s[a,b) equals `name` (no allocation). */
function nameEq(s: string, a: number, b: number, name: string): boolean {
  if (b - a !== name.length) return false;
  return sameTail(s, a, name);
}

function isReserved(s: string, a: number, b: number): boolean {
  const len = b - a;
  if (len < 7 || len > 13) return false;
  const c = s.charCodeAt(a);
  if (c !== 115 && c !== 99) return false; // 's' or 'c'
  return (
    nameEq(s, a, b, 'sandbox_id') ||
    nameEq(s, a, b, 'cri_uid') ||
    nameEq(s, a, b, 'cri_name') ||
    nameEq(s, a, b, 'cri_namespace')
  );
}

/**
 * Whether text[at, at+word.length) equals `word`. A slice (no copy for long slices) compared with `===` runs
 * as a native block compare: ~5x faster than `startsWith` or a charCodeAt loop on 60-character names.
 */
function sameTail(text: string, at: number, word: string): boolean {
  return text.slice(at, at + word.length) === word;
}

function sameChars(s: string, x: number, y: number, len: number): boolean {
  for (let k = 0; k < len; k++) if (s.charCodeAt(x + k) !== s.charCodeAt(y + k)) return false;
  return true;
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

/**
 * An incremental parser: `parseSome(maxLines)` lets a caller yield to the event loop between slices of a
 * big body. `parseExposition` runs it to completion.
 */
export class ExpositionParser {
  private pos = 0;
  private lineNo = 0;
  private readonly families = new Map<string, ParsedFamily>();
  private sampleCount = 0;
  /** Scratch for duplicate label detection: start/end offsets of the label names of the current line. */
  private nameBounds = new Int32Array(32);
  /** Label names (and their kind) of the previous sample line, by position. */
  private readonly labelCache: Array<{ name: string; kind: number }> = [];
  /** Family lookup of the previous sample line (reset by HELP/TYPE lines, which can change the answer). */
  private lastSampleName: string | undefined;
  private curFamily: ParsedFamily | undefined;
  private curSuffix = SUFFIX_NONE;
  /** Cached result of the last backslash search (-1: none left in the text). */
  private backslashAt: number;

  /**
   * `bytes`, when given, must be what `text` was decoded from with the same offsets (an ASCII Buffer decoded as
   * latin1); families keep a reference to it for the byte writer.
   */
  constructor(
    private readonly text: string,
    private readonly bytes?: Buffer,
  ) {
    this.backslashAt = text.indexOf('\\');
  }

  /** Parse up to `maxLines` lines; true when the whole text is done. Throws ParseError. */
  parseSome(maxLines: number): boolean {
    const text = this.text;
    const len = text.length;
    let budget = maxLines;
    while (this.pos < len && budget-- > 0) {
      let end = text.indexOf('\n', this.pos);
      if (end === -1) end = len;
      const start = this.pos;
      this.pos = end + 1;
      this.lineNo++;
      this.parseLine(start, end);
    }
    return this.pos >= len;
  }

  result(): ParsedExposition {
    return { families: this.families, sampleCount: this.sampleCount };
  }

  private parseLine(start: number, end: number): void {
    const text = this.text;
    if (end > start && text.charCodeAt(end - 1) === 13) end--; // tolerate CRLF
    while (start < end && isBlank(text.charCodeAt(start))) start++;
    if (start === end) return;
    if (text.charCodeAt(start) === 35) {
      this.lastSampleName = undefined;
      this.parseComment(start, end);
      return;
    }
    this.parseSample(start, end);
  }

  private family(name: string): ParsedFamily {
    let f = this.families.get(name);
    if (!f) {
      f = {
        name,
        type: 'untyped',
        help: undefined,
        text: this.text,
        bytes: this.bytes,
        starts: [],
        ends: [],
        meta: [],
        linePrefix: '',
        typed: false,
      };
      this.families.set(name, f);
    }
    return f;
  }

  private parseComment(start: number, end: number): void {
    const text = this.text;
    // `# HELP name text` / `# TYPE name type`; any other comment is ignored.
    let i = start + 1;
    if (i >= end || !isBlank(text.charCodeAt(i))) return;
    while (i < end && isBlank(text.charCodeAt(i))) i++;
    let kind: 'HELP' | 'TYPE';
    if (text.startsWith('HELP', i)) kind = 'HELP';
    else if (text.startsWith('TYPE', i)) kind = 'TYPE';
    else return;
    i += 4;
    if (i < end && !isBlank(text.charCodeAt(i))) return; // e.g. `# HELPFUL remark`
    while (i < end && isBlank(text.charCodeAt(i))) i++;
    const nameStart = i;
    if (i >= end || !isNameStart(text.charCodeAt(i)))
      throw new ParseError(this.lineNo, `invalid metric name in ${kind} line`);
    while (i < end && isNameChar(text.charCodeAt(i))) i++;
    const name = text.slice(nameStart, i);
    if (i < end && !isBlank(text.charCodeAt(i)))
      throw new ParseError(this.lineNo, `invalid metric name in ${kind} line`);
    while (i < end && isBlank(text.charCodeAt(i))) i++;
    const rest = text.slice(i, end);
    const f = this.family(name);
    if (kind === 'HELP') {
      checkHelpEscapes(rest, this.lineNo);
      if (f.help !== undefined && f.help !== rest)
        throw new ParseError(this.lineNo, `second HELP line for metric name ${name}`);
      f.help = rest;
      return;
    }
    const type = rest.trimEnd();
    if (!VALID_TYPES.has(type))
      throw new ParseError(this.lineNo, `unknown metric type ${JSON.stringify(type)}`);
    if (f.typed) {
      // runtime-rs concatenates expositions; tolerate a repeated identical declaration, never a different one.
      if (f.type !== type) throw new ParseError(this.lineNo, `second TYPE line for metric name ${name}`);
      return;
    }
    if (f.starts.length > 0) throw new ParseError(this.lineNo, `TYPE reported after samples for ${name}`);
    f.type = type as MetricType;
    f.typed = true;
  }

  /**
   * Resolve the family a sample named text[a,b) belongs to into curFamily/curSuffix (Go's lookup order:
   * exact name, then summary/histogram suffixes). Consecutive samples usually share a name: cached.
   */
  private familyForSample(a: number, b: number): void {
    const text = this.text;
    const last = this.lastSampleName;
    if (last !== undefined && b - a === last.length && sameTail(text, a, last)) return;
    const name = text.slice(a, b);
    this.lastSampleName = name;
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

  private parseSample(start: number, end: number): void {
    const text = this.text;
    const lineNo = this.lineNo;
    let i = start;
    const last = this.lastSampleName;
    let nameEnd = -1;
    if (last !== undefined) {
      // Same name as the previous sample (already validated and resolved): skip the per-char scan.
      const c = text.charCodeAt(start + last.length);
      if ((c === 123 || c === 32 || c === 9) && sameTail(text, start, last)) nameEnd = start + last.length;
    }
    if (nameEnd === -1) {
      if (!isNameStart(text.charCodeAt(i))) throw new ParseError(lineNo, 'invalid metric name');
      i++;
      while (i < end && isNameChar(text.charCodeAt(i))) i++;
      nameEnd = i;
      this.familyForSample(start, nameEnd);
    }
    i = nameEnd;
    const f = this.curFamily!;
    const suffix = this.curSuffix;
    while (i < end && isBlank(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) !== 123) i = nameEnd; // no label set: the blanks separate name and value

    let flags = 0;
    let split = nameEnd;
    let hasLe = false;
    let hasQuantile = false;
    if (i < end && text.charCodeAt(i) === 123) {
      flags |= FLAG_BRACES;
      i++;
      let nLabels = 0;
      let trailingComma = false;
      for (;;) {
        while (i < end && isBlank(text.charCodeAt(i))) i++;
        if (i >= end) throw new ParseError(lineNo, 'unterminated label set');
        const c = text.charCodeAt(i);
        if (c === 125) break;
        if (nLabels > 0 && !trailingComma) throw new ParseError(lineNo, 'expected "," or "}" in label set');
        const ln = i;
        // Lines of a family repeat their label names: compare with the previous line's name at this position
        // before scanning characters.
        const cached = nLabels < this.labelCache.length ? this.labelCache[nLabels]! : undefined;
        let kind: number;
        if (
          cached !== undefined &&
          sameTail(text, ln, cached.name) &&
          !isLabelChar(text.charCodeAt(ln + cached.name.length))
        ) {
          i = ln + cached.name.length;
          kind = cached.kind;
        } else {
          if (!isLabelStart(c)) throw new ParseError(lineNo, 'invalid label name');
          i++;
          while (i < end && isLabelChar(text.charCodeAt(i))) i++;
          if (nameEq(text, ln, i, '__name__'))
            throw new ParseError(lineNo, 'label name __name__ is reserved');
          kind = nameEq(text, ln, i, 'le')
            ? LABEL_LE
            : nameEq(text, ln, i, 'quantile')
              ? LABEL_QUANTILE
              : isReserved(text, ln, i)
                ? LABEL_RESERVED
                : LABEL_PLAIN;
          this.labelCache[nLabels] = { name: text.slice(ln, i), kind };
        }
        const lnEnd = i;
        if (kind === LABEL_LE) hasLe = true;
        else if (kind === LABEL_QUANTILE) hasQuantile = true;
        else if (kind === LABEL_RESERVED) flags |= FLAG_COLLISION;
        this.checkDuplicateLabel(ln, lnEnd, nLabels);
        while (i < end && isBlank(text.charCodeAt(i))) i++;
        if (text.charCodeAt(i) !== 61) throw new ParseError(lineNo, 'expected "=" after label name');
        i++;
        while (i < end && isBlank(text.charCodeAt(i))) i++;
        if (text.charCodeAt(i) !== 34) throw new ParseError(lineNo, 'expected quoted label value');
        i = this.skipQuoted(i + 1, end);
        nLabels++;
        while (i < end && isBlank(text.charCodeAt(i))) i++;
        trailingComma = text.charCodeAt(i) === 44;
        if (trailingComma) i++;
      }
      split = i; // the `}`
      if (nLabels > 0 && !trailingComma) flags |= FLAG_NEED_COMMA;
      i++;
    }
    // value
    if (i >= end || !isBlank(text.charCodeAt(i))) {
      throw new ParseError(lineNo, i >= end ? 'missing sample value' : 'expected blank before sample value');
    }
    while (i < end && isBlank(text.charCodeAt(i))) i++;
    const vs = i;
    while (i < end && !isBlank(text.charCodeAt(i))) i++;
    if (vs === i) throw new ParseError(lineNo, 'missing sample value');
    if (!isFloat(text, vs, i))
      throw new ParseError(lineNo, `invalid sample value ${JSON.stringify(text.slice(vs, i))}`);
    while (i < end && isBlank(text.charCodeAt(i))) i++;
    if (i < end) {
      const ts = i;
      while (i < end && !isBlank(text.charCodeAt(i))) i++;
      if (!isInt(text, ts, i))
        throw new ParseError(lineNo, `invalid timestamp ${JSON.stringify(text.slice(ts, i))}`);
      while (i < end && isBlank(text.charCodeAt(i))) i++;
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

    f.starts.push(start);
    f.ends.push(end);
    f.meta.push(makeMeta(split - start, flags));
    this.sampleCount++;
  }

  /** Returns the index after the closing quote of a label value starting at `i` (just past the opening quote). */
  private skipQuoted(i: number, end: number): number {
    const text = this.text;
    let q = text.indexOf('"', i);
    let b = this.nextBackslash(i);
    for (;;) {
      if (q === -1 || q >= end) throw new ParseError(this.lineNo, 'unterminated label value');
      if (b === -1 || b > q) return q + 1;
      const n = text.charCodeAt(b + 1);
      if (n !== 92 && n !== 34 && n !== 110)
        throw new ParseError(this.lineNo, 'invalid escape sequence in label value');
      i = b + 2;
      if (q < i) q = text.indexOf('"', i);
      b = this.nextBackslash(i);
    }
  }

  /** Next backslash at or after `i`, cached so scanning a body stays linear even when backslashes are rare. */
  private nextBackslash(i: number): number {
    if (this.backslashAt !== -1 && this.backslashAt < i) this.backslashAt = this.text.indexOf('\\', i);
    return this.backslashAt;
  }

  private checkDuplicateLabel(a: number, b: number, index: number): void {
    if (index * 2 + 2 > this.nameBounds.length) {
      const grown = new Int32Array(this.nameBounds.length * 2);
      grown.set(this.nameBounds);
      this.nameBounds = grown;
    }
    const nb = this.nameBounds;
    const len = b - a;
    for (let k = 0; k < index; k++) {
      const s = nb[k * 2]!;
      const e = nb[k * 2 + 1]!;
      if (e - s === len && sameChars(this.text, s, a, len)) {
        throw new ParseError(this.lineNo, `duplicate label name ${this.text.slice(a, b)}`);
      }
    }
    nb[index * 2] = a;
    nb[index * 2 + 1] = b;
  }
}

/** The sample lines of a family as strings (tests, diagnostics; the hot path uses the offsets). */
export function sampleLines(f: ParsedFamily): string[] {
  const out: string[] = [];
  for (let i = 0; i < f.starts.length; i++) out.push(f.text.slice(f.starts[i], f.ends[i]));
  return out;
}

/** Parse a whole exposition. Throws ParseError with the 1-based line number. */
export function parseExposition(text: string, bytes?: Buffer): ParsedExposition {
  const p = new ExpositionParser(text, bytes);
  p.parseSome(Number.POSITIVE_INFINITY);
  return p.result();
}
