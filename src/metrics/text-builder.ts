/**
 * Building blocks for writing Prometheus text format 0.0.4 (pure).
 * Used by every producer of our own families (host collector, agent stats, per-sandbox scrape metrics).
 */

/** Escape a label value: backslash, double quote and newline. Fast path when nothing needs escaping. */
export function escapeLabelValue(v: string): string {
  if (!/[\\"\n]/.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Escape HELP text: backslash and newline. */
export function escapeHelp(v: string): string {
  if (!/[\\\n]/.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Render a sample value the way Prometheus clients do (`+Inf`, `-Inf`, `NaN`, shortest round-trip decimal). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export type LabelPairs = ReadonlyArray<readonly [string, string]>;

/** `{a="x",b="y"}` or the empty string when there are no labels. */
export function renderLabels(labels: LabelPairs): string {
  if (labels.length === 0) return '';
  let out = '{';
  for (let i = 0; i < labels.length; i++) {
    const pair = labels[i]!;
    if (i > 0) out += ',';
    out += pair[0] + '="' + escapeLabelValue(pair[1]) + '"';
  }
  return out + '}';
}

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

/**
 * Accumulates families in text form. Families are emitted in the order they were declared; samples of a
 * family stay together whatever order `sample()` is called in.
 */
export class TextBuilder {
  private readonly families = new Map<string, { header: string; lines: string[] }>();

  family(name: string, type: MetricType, help: string): this {
    if (!this.families.has(name)) {
      this.families.set(name, { header: familyHeader(name, type, help), lines: [] });
    }
    return this;
  }

  /** Add a sample to family `family` (declared before). `name` defaults to the family name (use it for `_bucket` etc.). */
  sample(family: string, labels: LabelPairs, value: number, name: string = family): this {
    const f = this.families.get(family);
    if (!f) throw new Error(`TextBuilder: family ${family} not declared`);
    f.lines.push(name + renderLabels(labels) + ' ' + formatValue(value) + '\n');
    return this;
  }

  /** True when no family has a sample. */
  isEmpty(): boolean {
    for (const f of this.families.values()) if (f.lines.length > 0) return false;
    return true;
  }

  /** The exposition text; families without samples are left out. */
  toString(): string {
    let out = '';
    for (const f of this.families.values()) {
      if (f.lines.length === 0) continue;
      out += f.header + f.lines.join('');
    }
    return out;
  }
}

/**
 * One family's text as UTF-8 bytes: its header, then sample lines appended as they come. For producers of
 * thousands of lines per collection (the agent and host collectors): each line is encoded at once into a
 * Buffer that grows by doubling, so no per-line string outlives the call, and the finished text is external
 * memory rather than a large string allocated straight into V8's old generation.
 */
export class FamilyBytes {
  private buf: Buffer = EMPTY;
  private len = 0;
  constructor(readonly header: string) {}

  /**
   * Append `name` + `labels` (a rendered label set, or '') + ` value` + newline. The pieces are written one
   * by one: concatenating them first would make a string per line to flatten and drop.
   */
  line(name: string, labels: string, value: number): void {
    if (this.len === 0) this.put(this.header);
    this.put(name);
    if (labels.length > 0) this.put(labels);
    this.put(' ');
    this.put(formatValue(value));
    this.put('\n');
  }

  private put(s: string): void {
    const max = s.length * 3; // UTF-8 bytes at most per UTF-16 unit
    if (this.len + max > this.buf.length) {
      const next = Buffer.allocUnsafeSlow(Math.max(1024, 2 * this.buf.length, this.len + max));
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    this.len += this.buf.write(s, this.len, 'utf8');
  }

  /** Bytes written so far (0 while the family has no sample: the header comes with the first line). */
  get length(): number {
    return this.len;
  }

  /** The header and lines, or an empty Buffer when no line was added (a view: valid until the next line). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

const EMPTY = Buffer.alloc(0);

/** The families' bytes one after the other, in the order given (families without lines are left out). */
export function concatFamilies(families: readonly FamilyBytes[]): Buffer {
  let total = 0;
  for (const f of families) total += f.length;
  const out = Buffer.allocUnsafeSlow(total);
  let at = 0;
  for (const f of families) at += f.bytes().copy(out, at);
  return out;
}

/** `# HELP` and `# TYPE` lines of a family. */
export function familyHeader(name: string, type: MetricType, help: string): string {
  return `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
}
