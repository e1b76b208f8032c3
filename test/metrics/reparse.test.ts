import {
  ExpositionParser,
  ParseError,
  parseExposition,
  reparse,
  sampleLines,
  sampleMetas,
  sourceOf,
  type ParseTemplate,
  type ParsedExposition,
} from '../../src/metrics/exposition-parse';
import { dropFamilies, renameRuntimeFamilies, resolveLabelCollisions } from '../../src/metrics/relabel';
import { goShimBody } from '../../src/sim/metrics-go';
import { rsShimBody } from '../../src/sim/metrics-rs';
import { drawSandbox } from '../../src/sim/plan';

function templateOf(text: string): ParseTemplate {
  const p = new ExpositionParser(Buffer.from(text));
  p.parseSome(Number.POSITIVE_INFINITY);
  return p.template();
}

/** Everything a writer reads from an exposition, as plain data. */
function view(e: ParsedExposition): unknown {
  return {
    sampleCount: e.sampleCount,
    families: [...e.families.values()].map(f => ({
      name: f.name,
      type: f.type,
      help: f.help,
      typed: f.typed,
      collisions: f.collisions,
      linePrefix: f.linePrefix,
      count: f.count,
      lines: sampleLines(f, e),
      metas: sampleMetas(f, e),
    })),
  };
}

const base =
  '# HELP a_total Things.\n# TYPE a_total counter\na_total{x="1"} 3\na_total{x="2"} 4 1700000000000\n' +
  '\n# a remark\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3.5\nh_count 2\n' +
  'm{sandbox_id="inner"}   7\n';

describe('reparse (checking a body against the previous one of the same producer)', () => {
  it('gives exactly what a full parse gives when only values moved', () => {
    const next = base
      .replace('} 3\n', '} 30\n')
      .replace('4 1700000000000', '-4e3 1700000000999')
      .replace('h_sum 3.5', 'h_sum NaN')
      .replace('   7', '   +Inf');
    const quick = reparse(templateOf(base), Buffer.from(next));
    expect(quick).toBeDefined();
    expect(view(quick!)).toEqual(view(parseExposition(next)));
    expect(sampleLines(quick!.families.get('a_total')!)).toEqual([
      'a_total{x="1"} 30',
      'a_total{x="2"} -4e3 1700000000999',
    ]);
  });

  it('keeps the template unchanged by what callers do to the families it returned', () => {
    const t = templateOf(base);
    const first = reparse(t, Buffer.from(base))!;
    first.families.get('a_total')!.name = 'renamed';
    first.families.get('a_total')!.linePrefix = 'kata_shim_';
    const second = reparse(t, Buffer.from(base))!;
    expect(second.families.get('a_total')!.name).toBe('a_total');
    expect(second.families.get('a_total')!.linePrefix).toBe('');
  });

  it("shared: gives the template's own families, read through the checked body (equal to a full parse)", () => {
    const t = templateOf(base);
    const next = base.replace('} 3\n', '} 30\n').replace('h_sum 3.5', 'h_sum 41');
    const body = Buffer.from(next);
    const quick = reparse(t, body, false, true)!;
    expect(quick.families).toBe(t.families);
    expect(quick.source?.bytes).toBe(body);
    expect(view(quick)).toEqual(view(parseExposition(next)));
    // A later check does not change what an earlier result reads: each keeps its own body and rows.
    const later = reparse(t, Buffer.from(base.replace('} 3\n', '} 99\n')), false, true)!;
    expect(sampleLines(later.families.get('a_total')!, later)[0]).toBe('a_total{x="1"} 99');
    expect(sampleLines(quick.families.get('a_total')!, quick)[0]).toBe('a_total{x="1"} 30');
    expect(sourceOf(quick, quick.families.get('h')!).table).not.toBe(
      sourceOf(later, later.families.get('h')!).table,
    );
  });

  it("shared: moving colliding labels rewrites a copy, never the template's family", () => {
    const t = templateOf(base);
    const quick = reparse(t, Buffer.from(base.replace('   7', '   8')), false, true)!;
    expect(resolveLabelCollisions(quick)).toBe(1);
    expect(quick.families).not.toBe(t.families);
    expect(sampleLines(quick.families.get('m')!, quick)).toEqual(['m{exported_sandbox_id="inner"}   8']);
    expect(quick.families.get('a_total')).toBe(t.families.get('a_total')); // untouched families stay shared
    const kept = t.families.get('m')!;
    expect(kept.collisions).toBe(true);
    expect(kept.bytes.length).toBe(0);
    const again = reparse(t, Buffer.from(base.replace('   7', '   9')), false, true)!;
    expect(sampleLines(again.families.get('m')!, again)).toEqual(['m{sandbox_id="inner"}   9']);
  });

  it.each([
    ['a label value changed', base.replace('x="2"', 'x="3"')],
    ['a series added', base + 'm{sandbox_id="other"} 1\n'],
    ['a series gone', base.replace('h_count 2\n', '')],
    ['a HELP text changed', base.replace('Things.', 'Stuff.')],
    ['a comment changed', base.replace('a remark', 'a remark!')],
    ['a blank line removed', base.replace('\n\n', '\n')],
    ['blanks before a value changed', base.replace('   7', '  7')],
    ['a value that is no number', base.replace('h_sum 3.5', 'h_sum 3.5.5')],
    ['an empty value', base.replace('h_sum 3.5', 'h_sum ')],
    ['a bad timestamp', base.replace('1700000000000', '17000.5')],
    ['text after the timestamp', base.replace('1700000000000', '1700000000000 x')],
    ['CRLF line ends', base.replace(/\n/g, '\r\n')],
    ['trailing garbage', base + 'x'],
    ['an empty body', ''],
  ])('declines a body with %s (the caller parses it in full)', (_what, next) => {
    expect(reparse(templateOf(base), Buffer.from(next))).toBeUndefined();
  });

  it('takes a body without its final newline as a full parse does', () => {
    const next = base.slice(0, -1).replace('   7', '   8');
    expect(view(reparse(templateOf(base), Buffer.from(next))!)).toEqual(view(parseExposition(next)));
  });

  it('keeps trailing blanks of a line as a full parse does', () => {
    const text = 'a 1  \nb{x="y"} 2 \t\n';
    const next = 'a 5  \nb{x="y"} 6 \t\n';
    expect(view(reparse(templateOf(text), Buffer.from(next))!)).toEqual(view(parseExposition(next)));
  });

  it('declines rather than accepting what a full parse rejects', () => {
    const bad = base.replace('h_sum 3.5', 'h_sum 0x');
    expect(reparse(templateOf(base), Buffer.from(bad))).toBeUndefined();
    expect(() => parseExposition(bad)).toThrow(ParseError);
  });

  it('matches a full parse on simulator bodies of successive scrapes (Go and runtime-rs)', () => {
    let checked = 0;
    let declined = 0;
    for (let index = 0; index < 6; index++) {
      const d = drawSandbox(7, index);
      const sb = { id: d.id, seed: d.seed, vcpus: d.vcpus, containers: d.containers };
      const body = (tick: number): string =>
        index % 2 === 0
          ? goShimBody({ ...sb, hypervisor: 'clh', runtime: 'go' }, tick)
          : rsShimBody({ ...sb, hypervisor: 'dragonball', runtime: 'rs' }, tick);
      const t = templateOf(body(1));
      // Ticks 2 and 3 only move values; by tick 9 a Go shim has new series (more agent RPC kinds seen).
      for (const tick of [2, 3, 9]) {
        const next = body(tick);
        expect(next).not.toBe(body(1));
        const quick = reparse(t, Buffer.from(next));
        if (quick === undefined) {
          declined++;
          expect(tick).toBe(9);
          expect(next.split('\n').length).not.toBe(body(1).split('\n').length);
          continue;
        }
        expect(view(quick)).toEqual(view(parseExposition(next)));
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(12);
    expect(declined).toBeGreaterThan(0);
  });

  it('a template made after renaming gives checked bodies renamed, with the drops and sample count of the rename', () => {
    // go_goroutines is renamed; go_threads is dropped because the body declares kata_shim_go_threads itself.
    const body = (v: number): string =>
      `# TYPE go_goroutines gauge\ngo_goroutines ${v}\n# TYPE go_threads gauge\ngo_threads 9\n` +
      `# TYPE kata_shim_go_threads gauge\nkata_shim_go_threads 8\n# TYPE up gauge\nup 1\n`;
    const p = new ExpositionParser(Buffer.from(body(1)));
    p.parseSome(Number.POSITIVE_INFINITY);
    const first = p.result();
    renameRuntimeFamilies(first);
    const t = p.template(first);
    const checked = reparse(t, Buffer.from(body(2)))!;
    const full = parseExposition(body(2));
    renameRuntimeFamilies(full);
    expect(view(checked)).toEqual(view(full));
    expect([...checked.families.keys()]).toEqual(['kata_shim_go_goroutines', 'kata_shim_go_threads', 'up']);
    expect(checked.sampleCount).toBe(3);
    expect(checked.names).toBe(t.names);
    expect([...t.names]).toEqual([...checked.families.keys()]);
    // Renaming a checked body again changes nothing.
    renameRuntimeFamilies(checked);
    expect(view(checked)).toEqual(view(full));
  });

  it('a checked body renamed or with families dropped afterwards no longer carries the template name set', () => {
    const text = '# TYPE go_threads gauge\ngo_threads 9\n# TYPE up gauge\nup 1\n';
    const t = templateOf(text);
    const renamed = reparse(t, Buffer.from(text.replace('9', '8')))!;
    expect(renamed.names).toBe(t.names);
    renameRuntimeFamilies(renamed);
    expect(renamed.names).toBeUndefined();
    expect([...t.names]).toEqual(['go_threads', 'up']);
    const dropped = reparse(t, Buffer.from(text))!;
    dropFamilies(dropped, new Set(['up']));
    expect(dropped.names).toBeUndefined();
    expect([...dropped.families.keys()]).toEqual(['go_threads']);
  });
});

describe('reparse with roll (the template becomes each body that matches it)', () => {
  /** `base` with every value replaced by one of the given width, so line positions move between bodies. */
  const withValues = (k: number): string =>
    base
      .replace('} 3\n', `} ${'3'.repeat(k)}\n`)
      .replace('} 4 1700000000000', `} ${'4'.repeat(1 + ((k * 3) % 5))} 1700000000000`)
      .replace('h_sum 3.5', `h_sum ${k}.${'5'.repeat(k)}`)
      .replace('   7', `   ${'7'.repeat(6 - k)}`);

  it('follows bodies whose values change width, each as a full parse gives it, and never reads old bodies', () => {
    const p = new ExpositionParser(Buffer.from(withValues(1)));
    p.parseSome(Number.POSITIVE_INFINITY);
    const t = p.template(p.result(), false);
    let previous: Buffer | undefined;
    for (const k of [4, 2, 5, 1, 3]) {
      const body = Buffer.from(withValues(k));
      const quick = reparse(t, body, true);
      expect(quick).toBeDefined();
      expect(view(quick!)).toEqual(view(parseExposition(withValues(k))));
      expect(t.bytes).toBe(body);
      // The body the template was before is no longer read: its owner may reuse it at once.
      previous?.fill(0x21);
      previous = body;
    }
  });

  it('still declines a body whose fixed parts differ, after rolling', () => {
    const p = new ExpositionParser(Buffer.from(withValues(1)));
    p.parseSome(Number.POSITIVE_INFINITY);
    const t = p.template(p.result(), false);
    expect(reparse(t, Buffer.from(withValues(3)), true)).toBeDefined();
    expect(reparse(t, Buffer.from(withValues(2).replace('x="2"', 'x="3"')), true)).toBeUndefined();
  });

  it('keeps a copy when asked to (the default), so the parsed body may change under it', () => {
    const first = Buffer.from(withValues(1));
    const p = new ExpositionParser(first);
    p.parseSome(Number.POSITIVE_INFINITY);
    const t = p.template();
    expect(t.bytes).not.toBe(first);
    first.fill(0x21);
    expect(reparse(t, Buffer.from(withValues(2)))).toBeDefined();
    expect(reparse(t, Buffer.from(withValues(2)))).toBeDefined(); // not rolled: still the first body's copy
  });
});
