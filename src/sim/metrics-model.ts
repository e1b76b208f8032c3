/**
 * The simulator's model of a Prometheus registry (pure): families as data, rendered the way the Go
 * (`client_golang`/`expfmt`) or Rust (`prometheus` crate) text encoders print them. Shared by the Go shim,
 * runtime-rs shim and agent bodies.
 *
 * Values are either constants or cheap functions of the tick (`Fn`). A registry is compiled once into a
 * `BodyTemplate` (constant text segments with value slots between them: HELP/TYPE lines, names, label sets and
 * constant values are formatted at compile time), so rendering one tick is a few hundred closure calls, number
 * formats and string appends.
 */
import { hashString, mixUnit, unit } from './rng';

export type Labels = Array<[string, string]>;

/** A value as a function of the tick. */
export type Fn = (tick: number) => number;
/** A constant or a function of the tick. */
export type Val = number | Fn;

export interface ScalarSeries {
  labels: Labels;
  value: Val;
}

export interface HistogramSeries {
  labels: Labels;
  /** Upper bounds (without +Inf) and their cumulative counts. */
  buckets: Array<[number, Val]>;
  sum: Val;
  count: Val;
  /** The series exists only at ticks where this holds (a label combination not observed yet is absent). */
  when?: (tick: number) => boolean;
}

export interface SummarySeries {
  labels: Labels;
  quantiles: Array<[number, Val]>;
  sum: Val;
  count: Val;
}

export type SimFamily =
  | { name: string; help: string; type: 'gauge' | 'counter' | 'untyped'; series: ScalarSeries[] }
  | { name: string; help: string; type: 'histogram'; series: HistogramSeries[] }
  | { name: string; help: string; type: 'summary'; series: SummarySeries[] };

export type EncoderStyle = 'go' | 'rust';

/** Value of `v` at `tick`. */
export function at(v: Val, tick: number): number {
  return typeof v === 'number' ? v : v(tick);
}

/** Go `strconv.FormatFloat(v, 'g', -1, 64)` as used by expfmt: exponent form from 1e21 down to 1e6, e.g. `2.99008e+06`. */
export function formatGoFloat(v: number): string {
  if (Number.isInteger(v)) {
    if (v < 1e6 && v > -1e6) return v === 0 ? '0' : String(v);
    if (v < 1e21 && v > -1e21) {
      // Shortest digits of an integer are its decimal digits without trailing zeros.
      const neg = v < 0;
      const s = String(neg ? -v : v);
      let end = s.length;
      while (end > 1 && s.charCodeAt(end - 1) === 48 /* 0 */) end--;
      const mant = end > 1 ? s[0] + '.' + s.slice(1, end) : s.slice(0, 1);
      const exp = s.length - 1;
      return (neg ? '-' : '') + mant + (exp < 10 ? 'e+0' : 'e+') + String(exp);
    }
  }
  return formatGoFloatSlow(v);
}

function formatGoFloatSlow(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (v === 0) return '0';
  const e = v.toExponential(); // shortest round-trip digits, e.g. "2.99008e+6"
  const at = e.indexOf('e');
  const exp = Number(e.slice(at + 1));
  if (exp < -4 || exp >= 21) {
    const sign = exp < 0 ? '-' : '+';
    return e.slice(0, at) + 'e' + sign + String(Math.abs(exp)).padStart(2, '0');
  }
  if (exp >= 6) {
    // Go keeps the mantissa shortest: 1000000 -> 1e+06, 1234567 -> 1.234567e+06
    return e.slice(0, at) + 'e+' + String(exp).padStart(2, '0');
  }
  return String(v);
}

/** Rust `f64` Display as the prometheus crate prints it: plain decimal, never an exponent. */
export function formatRustFloat(v: number): string {
  if (Number.isInteger(v)) {
    // Below 2^53 the shortest digits are the exact ones; above, print the exact binary value as Rust does.
    if (v < 9007199254740992 && v > -9007199254740992) return v === 0 ? '0' : String(v);
    if (v < 1e21 && v > -1e21) return BigInt(v).toString();
  }
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function escapeValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelpText(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function renderLabelSet(labels: Labels, extra?: [string, string]): string {
  const all = extra ? [...labels, extra] : labels;
  if (all.length === 0) return '';
  return '{' + all.map(([k, v]) => `${k}="${escapeValue(v)}"`).join(',') + '}';
}

function sortKey(labels: Labels): string {
  return labels.map(l => l[1]).join('\u0000');
}

/** Labels sorted by name, series sorted by label values: what both client libraries do. */
function normalise<T extends { labels: Labels }>(series: T[]): T[] {
  const withSorted = series.map(s => ({ ...s, labels: [...s.labels].sort((a, b) => cmp(a[0], b[0])) }));
  return withSorted.sort((a, b) => cmp(sortKey(a.labels), sortKey(b.labels)));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Longest text a number formats to (e.g. `-1.2345678901234567e-308` is 24). */
const MAX_NUMBER_CHARS = 32;

/**
 * Rendered bodies are carved out of shared 1 MiB slabs (as `Buffer.allocUnsafe` does with its 8 KiB pool):
 * one ArrayBuffer per dozen bodies instead of one each, which keeps the garbage collector quiet.
 */
const SLAB_BYTES = 1 << 20;
let slab: Buffer = Buffer.alloc(0);
let slabUsed = 0;

/** The slab to write a body of at most `bound` bytes into, from offset `slabUsed`. */
function takeSlab(bound: number): Buffer {
  if (slabUsed + bound > slab.length) {
    slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, bound));
    slabUsed = 0;
  }
  return slab;
}

/** Copy `seg` to `out` at `off`; short segments byte by byte (cheaper than a native call). */
function copyInto(out: Buffer, seg: Uint8Array, off: number): number {
  const len = seg.length;
  if (len > 16) out.set(seg, off);
  else for (let c = 0; c < len; c++) out[off + c] = seg[c] as number;
  return off + len;
}

/** Decimal digits of a non-negative integer below 2^53, written at `off`. */
function writeDigits(out: Buffer, v: number, off: number): number {
  if (v < 10) {
    out[off] = 48 + v;
    return off + 1;
  }
  let digits = 1;
  for (let p = 10; p <= v; p *= 10) digits++;
  let x = v;
  for (let c = off + digits - 1; c >= off; c--) {
    const q = Math.floor(x / 10);
    out[c] = 48 + (x - q * 10);
    x = q;
  }
  return off + digits;
}

const OP_VALUE = 0;
const OP_WHEN = 1;
const OP_END = 2;

/**
 * A compiled exposition: `texts[i]` is printed before op `i`, `tail` after the last op. Ops print a value slot,
 * open a conditional group (skipped entirely when its predicate is false at the tick) or close one.
 */
export class BodyTemplate {
  private constructor(
    private readonly texts: readonly string[],
    private readonly kinds: readonly number[],
    private readonly fns: ReadonlyArray<Fn | ((tick: number) => boolean) | undefined>,
    private readonly jumps: readonly number[],
    private readonly tail: string,
    private readonly fmt: (v: number) => string,
  ) {}

  private encoded: { segs: Uint8Array[]; tail: Uint8Array; bound: number } | undefined;

  /** The constant texts as UTF-8 views into one buffer, and an upper bound of a rendered body's size. */
  private encode(): { segs: Uint8Array[]; tail: Uint8Array; bound: number } {
    if (this.encoded) return this.encoded;
    const all = Buffer.from(this.texts.join('') + this.tail, 'utf8');
    const segs: Uint8Array[] = [];
    let off = 0;
    for (const t of this.texts) {
      const len = Buffer.byteLength(t, 'utf8');
      segs.push(all.subarray(off, off + len));
      off += len;
    }
    const tail = all.subarray(off);
    this.encoded = { segs, tail, bound: all.length + MAX_NUMBER_CHARS * this.kinds.length };
    return this.encoded;
  }

  /** The body at `tick`, UTF-8 encoded (what a server writes; no intermediate string). */
  renderBuffer(tick: number): Buffer {
    const { segs, tail, bound } = this.encode();
    const { kinds, fns, jumps, fmt } = this;
    // Integers below this print as plain decimal digits in this style (Go switches to exponent form at 1e6).
    const plainBelow = fmt === formatGoFloat ? 1e6 : 9007199254740992;
    const out = takeSlab(bound);
    const start = slabUsed;
    const n = kinds.length;
    let off = start;
    let i = 0;
    while (i < n) {
      off = copyInto(out, segs[i] as Uint8Array, off);
      const k = kinds[i];
      if (k === OP_VALUE) {
        const v = (fns[i] as Fn)(tick);
        if (Number.isInteger(v) && v >= 0 && v < plainBelow) {
          off = writeDigits(out, v, off);
        } else {
          const s = fmt(v);
          // Formatted numbers are ASCII and at most MAX_NUMBER_CHARS long.
          for (let c = 0; c < s.length; c++) out[off + c] = s.charCodeAt(c);
          off += s.length;
        }
        i++;
      } else if (k === OP_WHEN) {
        i = (fns[i] as (t: number) => boolean)(tick) ? i + 1 : (jumps[i] as number) + 1;
      } else {
        i++;
      }
    }
    off = copyInto(out, tail, off);
    slabUsed = (off + 7) & ~7;
    return out.subarray(start, off);
  }

  /** The text at `tick`. */
  render(tick: number): string {
    return this.renderBuffer(tick).toString('utf8');
  }

  /** Number of value slots (what costs at render time). */
  get slots(): number {
    return this.kinds.filter(k => k === OP_VALUE).length;
  }

  /** Compile families in the given order (callers sort them as the registry would). */
  static compile(families: readonly SimFamily[], style: EncoderStyle): BodyTemplate {
    const b = new TemplateBuilder(style === 'go' ? formatGoFloat : formatRustFloat);
    for (const f of families) compileFamily(b, f);
    return b.build();
  }

  /** Texts side by side (e.g. runtime-rs's `agent + hypervisor + shim`); all must use the same style. */
  static concat(parts: readonly BodyTemplate[]): BodyTemplate {
    const texts: string[] = [];
    const kinds: number[] = [];
    const fns: Array<Fn | ((tick: number) => boolean) | undefined> = [];
    const jumps: number[] = [];
    let carry = '';
    let fmt: (v: number) => string = formatGoFloat;
    for (const p of parts) {
      fmt = p.fmt;
      const base = kinds.length;
      p.texts.forEach((t, i) => {
        texts.push(i === 0 ? carry + t : t);
        kinds.push(p.kinds[i] as number);
        fns.push(p.fns[i]);
        jumps.push((p.jumps[i] as number) + base);
      });
      carry = p.kinds.length === 0 ? carry + p.tail : p.tail;
    }
    return new BodyTemplate(texts, kinds, fns, jumps, carry, fmt);
  }

  /** @internal used by TemplateBuilder */
  static of(
    texts: string[],
    kinds: number[],
    fns: Array<Fn | ((tick: number) => boolean) | undefined>,
    jumps: number[],
    tail: string,
    fmt: (v: number) => string,
  ): BodyTemplate {
    return new BodyTemplate(texts, kinds, fns, jumps, tail, fmt);
  }
}

class TemplateBuilder {
  private readonly texts: string[] = [];
  private readonly kinds: number[] = [];
  private readonly fns: Array<Fn | ((tick: number) => boolean) | undefined> = [];
  private readonly jumps: number[] = [];
  private readonly open: number[] = [];
  private text = '';

  constructor(readonly fmt: (v: number) => string) {}

  add(s: string): void {
    this.text += s;
  }

  value(v: Val): void {
    if (typeof v === 'number') this.text += this.fmt(v);
    else this.op(OP_VALUE, v);
  }

  beginWhen(pred: (tick: number) => boolean): void {
    this.open.push(this.kinds.length);
    this.op(OP_WHEN, pred);
  }

  endWhen(): void {
    const start = this.open.pop();
    if (start === undefined) throw new Error('TemplateBuilder: endWhen without beginWhen');
    const end = this.kinds.length;
    this.op(OP_END, undefined);
    this.jumps[start] = end;
  }

  build(): BodyTemplate {
    if (this.open.length > 0) throw new Error('TemplateBuilder: unclosed group');
    return BodyTemplate.of(this.texts, this.kinds, this.fns, this.jumps, this.text, this.fmt);
  }

  private op(kind: number, fn: Fn | ((tick: number) => boolean) | undefined): void {
    this.texts.push(this.text);
    this.text = '';
    this.kinds.push(kind);
    this.fns.push(fn);
    this.jumps.push(-1);
  }
}

function compileFamily(b: TemplateBuilder, f: SimFamily): void {
  if (f.series.length === 0) return; // families without series print nothing (as both encoders do)
  const fmt = b.fmt;
  const header = `# HELP ${f.name} ${escapeHelpText(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
  if (f.type === 'histogram') {
    const series = normalise(f.series);
    const preds = series.map(s => s.when);
    const always = preds.some(p => p === undefined);
    if (!always) {
      const ps = preds as Array<(t: number) => boolean>;
      b.beginWhen(t => ps.some(p => p(t)));
    }
    b.add(header);
    for (const s of series) {
      if (s.when) b.beginWhen(s.when);
      for (const [le, c] of s.buckets) {
        b.add(`${f.name}_bucket${renderLabelSet(s.labels, ['le', fmt(le)])} `);
        b.value(c);
        b.add('\n');
      }
      b.add(`${f.name}_bucket${renderLabelSet(s.labels, ['le', '+Inf'])} `);
      b.value(s.count);
      b.add(`\n${f.name}_sum${renderLabelSet(s.labels)} `);
      b.value(s.sum);
      b.add(`\n${f.name}_count${renderLabelSet(s.labels)} `);
      b.value(s.count);
      b.add('\n');
      if (s.when) b.endWhen();
    }
    if (!always) b.endWhen();
    return;
  }
  b.add(header);
  if (f.type === 'summary') {
    for (const s of normalise(f.series)) {
      for (const [q, v] of s.quantiles) {
        b.add(`${f.name}${renderLabelSet(s.labels, ['quantile', fmt(q)])} `);
        b.value(v);
        b.add('\n');
      }
      b.add(`${f.name}_sum${renderLabelSet(s.labels)} `);
      b.value(s.sum);
      b.add(`\n${f.name}_count${renderLabelSet(s.labels)} `);
      b.value(s.count);
      b.add('\n');
    }
    return;
  }
  for (const s of normalise(f.series)) {
    b.add(`${f.name}${renderLabelSet(s.labels)} `);
    b.value(s.value);
    b.add('\n');
  }
}

/** Families sorted by name (a registry's `Gather()`). */
export function sortFamilies(families: readonly SimFamily[]): SimFamily[] {
  return [...families].sort((a, b) => cmp(a.name, b.name));
}

/** Compile a registry: families sorted by name, each family's series normalised. */
export function compileRegistry(families: readonly SimFamily[], style: EncoderStyle): BodyTemplate {
  return BodyTemplate.compile(sortFamilies(families), style);
}

/** Render one family at `tick`; families without series print nothing (as both encoders do). */
export function renderFamily(f: SimFamily, style: EncoderStyle, tick = 0): string {
  return BodyTemplate.compile([f], style).render(tick);
}

/** Render families sorted by name (a registry's `Gather()`) at `tick` (compiles every time: for one-offs). */
export function renderRegistry(families: SimFamily[], style: EncoderStyle, tick = 0): string {
  return compileRegistry(families, style).render(tick);
}

const templateCache = new WeakMap<object, Map<string, BodyTemplate>>();

/**
 * The template `key` of `owner` (a sandbox object), built by `build` on first use and kept as long as the
 * owner lives.
 */
export function cachedTemplate(owner: object, key: string, build: () => BodyTemplate): BodyTemplate {
  let byKey = templateCache.get(owner);
  if (!byKey) {
    byKey = new Map();
    templateCache.set(owner, byKey);
  }
  let tpl = byKey.get(key);
  if (!tpl) {
    tpl = build();
    byKey.set(key, tpl);
  }
  return tpl;
}

/** Number of sample lines in an exposition (non-empty, non-comment lines). */
export function countSamples(text: string): number {
  let n = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    if (end > start && text.charCodeAt(start) !== 35 /* # */) n++;
    start = end + 1;
  }
  return n;
}

/**
 * Deterministic values for one sandbox. Keys name a series; the same (seed, key, tick) always gives the same
 * number. Counters never decrease as the tick grows; gauges wander within their range. Hashing of the key
 * happens here, once: the returned functions of the tick only do arithmetic.
 */
export class Values {
  private readonly basis: number;

  constructor(readonly seed: number) {
    this.basis = (seed ^ 0x811c9dc5) >>> 0;
  }

  /** A value fixed for the sandbox's life, in [lo, hi]. */
  fixed(key: string, lo: number, hi: number, integer = true): number {
    const v = lo + (hi - lo) * unit(this.seed, key);
    return integer ? Math.round(v) : v;
  }

  /** A gauge that moves from tick to tick, in [lo, hi]. */
  gauge(key: string, lo: number, hi: number, integer = true): Fn {
    const h = hashString(key, this.basis);
    const span = hi - lo;
    return integer ? t => Math.round(lo + span * mixUnit(h, t)) : t => lo + span * mixUnit(h, t);
  }

  /** A cumulative value: a fixed start in [0, base] plus about `rate` per tick. */
  counter(key: string, base: number, rate: number, integer = true): Fn {
    const start = base * unit(this.seed, `${key}#b`);
    const r = rate * (0.5 + unit(this.seed, `${key}#r`));
    return integer ? t => Math.floor(start + r * t) : t => Math.round((start + r * t) * 1000) / 1000;
  }
}

/** The tick itself (e.g. a scrape count). */
export const TICK: Fn = t => t;

/** `1, 2, 4, …, 512`: prometheus.ExponentialBuckets(1, 2, 10). */
export const MS_BUCKETS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/** A histogram series of integer-millisecond latencies: `count(tick)` observations around `typicalMs`. */
export function latencyHistogram(
  vals: Values,
  key: string,
  labels: Labels,
  count: Fn,
  typicalMs: number,
): HistogramSeries {
  // Fraction of observations at or below each bound: a log-normal-ish shape centred on typicalMs
  // (running maximum, so bucket counts are cumulative whatever the shape).
  const spread = 1 + vals.fixed(`${key}/spread`, 0, 2, false);
  const buckets: Array<[number, Val]> = [];
  let prev = 0;
  for (const le of MS_BUCKETS) {
    const z = Math.log2((le + 0.5) / typicalMs) / spread;
    const frac = Math.max(prev, 1 / (1 + Math.exp(-2.2 * z)));
    buckets.push([le, t => Math.floor(count(t) * frac)]);
    prev = frac;
  }
  const perObs = typicalMs * (0.8 + vals.fixed(`${key}/mean`, 0, 0.6, false));
  return {
    labels,
    buckets,
    sum: t => Math.floor(count(t) * perObs),
    count,
    when: t => count(t) > 0,
  };
}
