/**
 * Merging parsed expositions from many producers into one valid exposition (pure).
 *
 * - Families are merged by name and come out sorted by name (code-unit order, i.e. byte order for names).
 * - Within a family, series keep part order (the caller orders parts: own registry, then sandboxes by id),
 *   and each part's series keep the order its producer gave them: unchanged inputs give identical output.
 * - Type conflicts: every part that has the family votes with its type; the majority wins, a tie goes to the
 *   first part (in part order) among the tied types. Samples of parts that voted otherwise are dropped and
 *   reported in `conflicts`.
 * - HELP: the first help text among the winning parts.
 */
import type { MetricType } from './text-builder';
import type { ParsedExposition, ParsedFamily } from './exposition-parse';

export interface MergePart {
  exposition: ParsedExposition;
  /** Label text spliced into every sample (escaped, no braces, e.g. from sandboxLabelText); '' for none. */
  labels: string;
  /** The sandbox this part belongs to, if any (for `?sandbox=` selection). */
  sandboxId?: string;
  /** Who produced the part, for logs: a sandbox id, `self`, `source:<name>`. */
  origin: string;
}

export interface MergedEntry {
  part: MergePart;
  family: ParsedFamily;
}

export interface MergedFamily {
  name: string;
  type: MetricType;
  help: string | undefined;
  entries: MergedEntry[];
}

export interface FamilyConflict {
  family: string;
  /** The type that won. */
  kept: MetricType;
  /** The dropped part and the type it declared. */
  origin: string;
  type: MetricType;
}

export interface MergeResult {
  /** Sorted by name; only families with at least one sample. */
  families: MergedFamily[];
  conflicts: FamilyConflict[];
}

export function mergeParts(parts: readonly MergePart[]): MergeResult {
  const byName = new Map<string, MergedEntry[]>();
  for (const part of parts) {
    for (const family of part.exposition.families.values()) {
      if (family.count === 0) continue;
      let list = byName.get(family.name);
      if (!list) {
        list = [];
        byName.set(family.name, list);
      }
      list.push({ part, family });
    }
  }
  const names = [...byName.keys()].sort(compareNames);
  const families: MergedFamily[] = [];
  const conflicts: FamilyConflict[] = [];
  for (const name of names) {
    const entries = byName.get(name)!;
    const type = winningType(entries);
    let kept = entries;
    if (type !== entries[0]!.family.type || entries.some(e => e.family.type !== type)) {
      kept = [];
      for (const e of entries) {
        if (e.family.type === type) kept.push(e);
        else conflicts.push({ family: name, kept: type, origin: e.part.origin, type: e.family.type });
      }
    }
    let help: string | undefined;
    for (const e of kept) {
      if (e.family.help !== undefined) {
        help = e.family.help;
        break;
      }
    }
    families.push({ name, type, help, entries: kept });
  }
  return { families, conflicts };
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function winningType(entries: readonly MergedEntry[]): MetricType {
  const first = entries[0]!.family.type;
  // The common case (every producer agrees) without a vote map per family.
  let agree = true;
  for (let i = 1; i < entries.length && agree; i++) agree = entries[i]!.family.type === first;
  if (agree) return first;
  const votes = new Map<MetricType, number>();
  for (const e of entries) votes.set(e.family.type, (votes.get(e.family.type) ?? 0) + 1);
  if (votes.size === 1) return first;
  let best: MetricType = first;
  let bestVotes = 0;
  // Map iteration follows first appearance, i.e. part order: a strict `>` keeps the earliest on ties.
  for (const [t, n] of votes) {
    if (n > bestVotes) {
      best = t;
      bestVotes = n;
    }
  }
  return best;
}

/**
 * `filter_family` query values → prefixes (split on `,`, empty items ignored, duplicates removed).
 * Undefined when there is no usable prefix (no filtering).
 */
export function parseFamilyFilter(values: readonly string[]): string[] | undefined {
  const out = new Set<string>();
  for (const v of values) {
    for (const p of v.split(',')) {
      const t = p.trim();
      if (t.length > 0) out.add(t);
    }
  }
  return out.size > 0 ? [...out] : undefined;
}

export interface SelectOptions {
  /** Keep families whose name starts with one of these prefixes (each family at most once). */
  prefixes?: readonly string[];
  /** Keep only entries of parts accepted by this predicate (e.g. one sandbox). */
  part?: (part: MergePart) => boolean;
}

/** The families (and entries) one request writes; order is preserved, every family appears at most once. */
export function selectFamilies(families: readonly MergedFamily[], opts: SelectOptions = {}): MergedFamily[] {
  const { prefixes, part } = opts;
  const out: MergedFamily[] = [];
  for (const f of families) {
    if (prefixes && !prefixes.some(p => f.name.startsWith(p))) continue;
    if (!part) {
      out.push(f);
      continue;
    }
    const entries = f.entries.filter(e => part(e.part));
    if (entries.length > 0) out.push({ ...f, entries });
  }
  return out;
}
