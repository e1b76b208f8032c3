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
      this.families.set(name, {
        header: `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`,
        lines: [],
      });
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
