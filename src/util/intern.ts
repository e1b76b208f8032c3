/**
 * One shared copy of strings that many parsed bodies hold for as long as their templates live: family names
 * (as parsed and as renamed) and HELP texts. A hundred shims declare the same 80 families, so without it
 * every sandbox's template keeps its own copy of each (docs/performance.md).
 *
 * The table is bounded: a producer that makes up new names on every scrape empties it now and then instead
 * of growing it. It holds nothing but strings equal to what it is given, so sharing it between parsers (a
 * module-level table) changes no result, only how many copies exist.
 */
export class Interner {
  private readonly table = new Map<string, string>();

  constructor(private readonly max = 16_384) {}

  /** A string equal to `s`: the first one the table was given, or `s`, which then becomes it. */
  get(s: string): string {
    const kept = this.table.get(s);
    if (kept !== undefined) return kept;
    if (this.table.size >= this.max) this.table.clear();
    this.table.set(s, s);
    return s;
  }

  get size(): number {
    return this.table.size;
  }
}

/** The table of the metrics parsers. */
export const metricStrings = new Interner();
