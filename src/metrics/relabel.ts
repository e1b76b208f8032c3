/**
 * Relabelling of parsed expositions (pure): the `go_`/`process_` → `kata_shim_` rename, the sandbox label
 * suffix, and moving pre-existing sandbox labels to `exported_<name>`.
 *
 * Samples stay line text: the sandbox labels are spliced in when writing (exposition-write.ts) from the
 * suffix built here; only lines flagged FLAG_COLLISION are rewritten.
 */
import { sandboxLabels, type SandboxInfo } from '../types';
import { viewOf } from './byte-ops';
import { escapeLabelValue } from './text-builder';
import { metricStrings } from '../util/intern';
import {
  FLAG_BRACES,
  FLAG_COLLISION,
  FLAG_NEED_COMMA,
  RESERVED_LABELS,
  ROW,
  flagsOf,
  forEachSample,
  makeMeta,
  sourceOf,
  splitOf,
  type ParsedExposition,
  type ParsedFamily,
} from './exposition-parse';

/** Prefix given to the Go runtime's own families of a shim (upstream kata-monitor does the same). */
export const SHIM_RUNTIME_PREFIX = 'kata_shim_';

export function isRuntimeFamily(name: string): boolean {
  return name.startsWith('go_') || name.startsWith('process_');
}

/**
 * Rename `go_*` / `process_*` families to `kata_shim_go_*` / `kata_shim_process_*` in place (family order kept).
 * A renamed family whose new name the body already declares is dropped (the body's own family wins).
 */
export function renameRuntimeFamilies(exp: ParsedExposition, prefix = SHIM_RUNTIME_PREFIX): void {
  let any = false;
  for (const name of exp.families.keys()) {
    if (isRuntimeFamily(name)) {
      any = true;
      break;
    }
  }
  if (!any) return;
  const renamed = new Map<string, ParsedFamily>();
  for (const f of exp.families.values()) {
    if (!isRuntimeFamily(f.name)) {
      renamed.set(f.name, f);
      continue;
    }
    const name = metricStrings.get(prefix + f.name);
    if (exp.families.has(name)) {
      exp.sampleCount -= f.count;
      continue;
    }
    f.name = name;
    f.linePrefix = prefix + f.linePrefix;
    renamed.set(name, f);
  }
  exp.families = renamed;
  delete exp.names; // a template's name set no longer describes these families
}

/** `sandbox_id="…",cri_uid="…",cri_name="…",cri_namespace="…"`: what is spliced into every sample of a sandbox. */
export function sandboxLabelText(sb: Pick<SandboxInfo, 'id' | 'cri'>): string {
  let out = '';
  for (const [k, v] of sandboxLabels(sb)) {
    if (out.length > 0) out += ',';
    out += k + '="' + escapeLabelValue(v) + '"';
  }
  return out;
}

/** One label of a sample line; the value is kept escaped, exactly as written. */
interface RawLabel {
  name: string;
  rawValue: string;
}

/**
 * Split the label set of a sample line (already validated by the parser). `open` is the index of `{`, `close`
 * the index of the matching `}`.
 */
export function readRawLabels(line: string, open: number, close: number): RawLabel[] {
  const out: RawLabel[] = [];
  let i = open + 1;
  while (i < close) {
    let c = line.charCodeAt(i);
    if (c === 32 || c === 9 || c === 44) {
      i++;
      continue;
    }
    const ns = i;
    while (i < close) {
      c = line.charCodeAt(i);
      if (c === 61 || c === 32 || c === 9) break;
      i++;
    }
    const name = line.slice(ns, i);
    i = line.indexOf('"', i) + 1;
    const vs = i;
    while (i < close) {
      c = line.charCodeAt(i);
      if (c === 92) i += 2;
      else if (c === 34) break;
      else i++;
    }
    out.push({ name, rawValue: line.slice(vs, i) });
    i++;
  }
  return out;
}

/**
 * Rewrite one sample line whose labels include one of RESERVED_LABELS: each such label becomes
 * `exported_<name>` (more `exported_` prefixes while that name is taken too), the way Prometheus treats
 * colliding target labels. Returns the new line and its meta.
 */
export function exportCollidingLabels(line: string, meta: number): { line: string; meta: number } {
  const split = splitOf(meta); // index of `}`
  const open = line.lastIndexOf('{', split);
  let nameEnd = open;
  while (nameEnd > 0 && (line.charCodeAt(nameEnd - 1) === 32 || line.charCodeAt(nameEnd - 1) === 9))
    nameEnd--;
  const labels = readRawLabels(line, open, split);
  const taken = new Set(labels.map(l => l.name));
  for (const l of labels) {
    if (!RESERVED_LABELS.has(l.name)) continue;
    let name = 'exported_' + l.name;
    while (taken.has(name)) name = 'exported_' + name;
    taken.delete(l.name);
    taken.add(name);
    l.name = name;
  }
  let text = line.slice(0, nameEnd) + '{';
  for (let k = 0; k < labels.length; k++) {
    const l = labels[k]!;
    if (k > 0) text += ',';
    text += l.name + '="' + l.rawValue + '"';
  }
  const newSplit = text.length;
  text += line.slice(split);
  const flags = FLAG_BRACES | (labels.length > 0 ? FLAG_NEED_COMMA : 0);
  return { line: text, meta: makeMeta(newSplit, flags) };
}

/**
 * Apply exportCollidingLabels to every flagged sample of the exposition (in place). A family with such a
 * sample gets its own rebuilt bytes (all its lines, rewritten where needed) and sample table. The families of
 * a shared template check (`exp.source`) are not changed: the exposition gets a family map of its own, with a
 * rewritten copy in place of each such family.
 */
export function resolveLabelCollisions(exp: ParsedExposition): number {
  let n = 0;
  let own: Map<string, ParsedFamily> | undefined;
  for (const shared of exp.families.values()) {
    if (!shared.collisions) continue;
    const src = sourceOf(exp, shared);
    let f = shared;
    if (exp.source !== undefined) {
      f = { ...shared };
      own ??= new Map(exp.families);
      own.set(f.name, f);
    }
    const lines: string[] = [];
    const metas: number[] = [];
    forEachSample(
      f,
      (start, end, m) => {
        const line = src.bytes.toString('utf8', start, end);
        if ((flagsOf(m) & FLAG_COLLISION) === 0) {
          lines.push(line);
          metas.push(m);
          return;
        }
        // The parser's split is a byte offset; exportCollidingLabels works on the decoded line.
        const charSplit = src.bytes.toString('utf8', start, start + splitOf(m)).length;
        const r = exportCollidingLabels(line, makeMeta(charSplit, flagsOf(m)));
        lines.push(r.line);
        metas.push(r.meta);
        n++;
      },
      exp,
    );
    // Offsets in the rebuilt text are byte offsets: a line's split moves by the UTF-8 length of what precedes it.
    const table = new Int32Array(lines.length * ROW);
    const pieces: Buffer[] = [];
    let offset = 0;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      const m = metas[i]!;
      const piece = Buffer.from(line + '\n', 'utf8');
      const splitBytes = Buffer.byteLength(line.slice(0, splitOf(m)), 'utf8');
      table[i * ROW] = offset;
      table[i * ROW + 1] = offset + piece.length - 1;
      table[i * ROW + 2] = makeMeta(splitBytes, flagsOf(m) & ~FLAG_COLLISION);
      pieces.push(piece);
      offset += piece.length;
    }
    f.bytes = Buffer.concat(pieces, offset);
    f.view = viewOf(f.bytes);
    f.table = table;
    f.segs = lines.length > 0 ? [0, lines.length] : [];
    f.collisions = false;
  }
  if (own) exp.families = own;
  return n;
}

/** Drop the named families from the exposition (in place). */
export function dropFamilies(exp: ParsedExposition, names: ReadonlySet<string>): void {
  for (const name of names) {
    const f = exp.families.get(name);
    if (!f) continue;
    exp.sampleCount -= f.count;
    exp.families.delete(name);
    delete exp.names;
  }
}
