/**
 * The simulator's model of a Prometheus registry (pure): families as data, rendered the way the Go
 * (`client_golang`/`expfmt`) or Rust (`prometheus` crate) text encoders print them. Shared by the Go shim,
 * runtime-rs shim and agent bodies.
 */
import { unit } from './rng';

export type Labels = Array<[string, string]>;

export interface ScalarSeries {
  labels: Labels;
  value: number;
}

export interface HistogramSeries {
  labels: Labels;
  /** Upper bounds (without +Inf) and their cumulative counts. */
  buckets: Array<[number, number]>;
  sum: number;
  count: number;
}

export interface SummarySeries {
  labels: Labels;
  quantiles: Array<[number, number]>;
  sum: number;
  count: number;
}

export type SimFamily =
  | { name: string; help: string; type: 'gauge' | 'counter' | 'untyped'; series: ScalarSeries[] }
  | { name: string; help: string; type: 'histogram'; series: HistogramSeries[] }
  | { name: string; help: string; type: 'summary'; series: SummarySeries[] };

export type EncoderStyle = 'go' | 'rust';

/** Go `strconv.FormatFloat(v, 'g', -1, 64)` as used by expfmt: exponent form from 1e21 down to 1e6, e.g. `2.99008e+06`. */
export function formatGoFloat(v: number): string {
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
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Number.isInteger(v) && Math.abs(v) < 1e21) return BigInt(v).toString();
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

/** Render one family; families without series print nothing (as both encoders do). */
export function renderFamily(f: SimFamily, style: EncoderStyle): string {
  if (f.series.length === 0) return '';
  const fmt = style === 'go' ? formatGoFloat : formatRustFloat;
  const out: string[] = [`# HELP ${f.name} ${escapeHelpText(f.help)}\n# TYPE ${f.name} ${f.type}\n`];
  if (f.type === 'histogram') {
    for (const s of normalise(f.series)) {
      for (const [le, c] of s.buckets) {
        out.push(`${f.name}_bucket${renderLabelSet(s.labels, ['le', fmt(le)])} ${fmt(c)}\n`);
      }
      out.push(`${f.name}_bucket${renderLabelSet(s.labels, ['le', '+Inf'])} ${fmt(s.count)}\n`);
      out.push(`${f.name}_sum${renderLabelSet(s.labels)} ${fmt(s.sum)}\n`);
      out.push(`${f.name}_count${renderLabelSet(s.labels)} ${fmt(s.count)}\n`);
    }
  } else if (f.type === 'summary') {
    for (const s of normalise(f.series)) {
      for (const [q, v] of s.quantiles) {
        out.push(`${f.name}${renderLabelSet(s.labels, ['quantile', fmt(q)])} ${fmt(v)}\n`);
      }
      out.push(`${f.name}_sum${renderLabelSet(s.labels)} ${fmt(s.sum)}\n`);
      out.push(`${f.name}_count${renderLabelSet(s.labels)} ${fmt(s.count)}\n`);
    }
  } else {
    for (const s of normalise(f.series)) out.push(`${f.name}${renderLabelSet(s.labels)} ${fmt(s.value)}\n`);
  }
  return out.join('');
}

/** Render families sorted by name (a registry's `Gather()`). */
export function renderRegistry(families: SimFamily[], style: EncoderStyle): string {
  return [...families]
    .sort((a, b) => cmp(a.name, b.name))
    .map(f => renderFamily(f, style))
    .join('');
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
 * Deterministic values for one sandbox at one tick. Keys name a series; the same (seed, key, tick) always
 * gives the same number. Counters never decrease as `tick` grows; gauges wander within their range.
 */
export class Values {
  constructor(
    readonly seed: number,
    readonly tick: number,
  ) {}

  /** A value fixed for the sandbox's life, in [lo, hi]. */
  fixed(key: string, lo: number, hi: number, integer = true): number {
    const v = lo + (hi - lo) * unit(this.seed, key);
    return integer ? Math.round(v) : v;
  }

  /** A gauge that moves from tick to tick, in [lo, hi]. */
  gauge(key: string, lo: number, hi: number, integer = true): number {
    const v = lo + (hi - lo) * unit(this.seed, `${key}@${this.tick}`);
    return integer ? Math.round(v) : v;
  }

  /** A cumulative value: a fixed start in [0, base] plus about `rate` per tick. */
  counter(key: string, base: number, rate: number, integer = true): number {
    const start = base * unit(this.seed, `${key}#b`);
    const r = rate * (0.5 + unit(this.seed, `${key}#r`));
    const v = start + r * this.tick;
    return integer ? Math.floor(v) : Math.round(v * 1000) / 1000;
  }
}

/** `1, 2, 4, …, 512`: prometheus.ExponentialBuckets(1, 2, 10). */
export const MS_BUCKETS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/** A histogram series of integer-millisecond latencies: `count` observations around `typicalMs`. */
export function latencyHistogram(
  vals: Values,
  key: string,
  labels: Labels,
  count: number,
  typicalMs: number,
): HistogramSeries {
  // Fraction of observations at or below each bound: a log-normal-ish shape centred on typicalMs.
  const spread = 1 + vals.fixed(`${key}/spread`, 0, 2, false);
  const buckets: Array<[number, number]> = [];
  let prev = 0;
  for (const le of MS_BUCKETS) {
    const z = Math.log2((le + 0.5) / typicalMs) / spread;
    const frac = 1 / (1 + Math.exp(-2.2 * z));
    const c = Math.max(prev, Math.floor(count * frac));
    buckets.push([le, c]);
    prev = c;
  }
  const sum = Math.floor(count * typicalMs * (0.8 + vals.fixed(`${key}/mean`, 0, 0.6, false)));
  return { labels, buckets, sum, count };
}
