import { concatFamilies, FamilyBytes, familyHeader, TextBuilder } from '../../src/metrics/text-builder';

describe('FamilyBytes', () => {
  it('is empty until its first line, which brings the header', () => {
    const f = new FamilyBytes(familyHeader('a_total', 'counter', 'A.'));
    expect(f.length).toBe(0);
    expect(f.bytes().length).toBe(0);
    f.line('a_total', '{x="1"}', 2);
    expect(f.bytes().toString()).toBe('# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 2\n');
  });

  it('writes what TextBuilder writes, across growth and non-ASCII label values', () => {
    const ref = new TextBuilder().family('g', 'gauge', 'G\\ with\nnewline').family('h', 'gauge', 'H.');
    const g = new FamilyBytes(familyHeader('g', 'gauge', 'G\\ with\nnewline'));
    const h = new FamilyBytes(familyHeader('h', 'gauge', 'H.'));
    for (let i = 0; i < 3000; i++) {
      const v = i % 7 === 0 ? NaN : i % 11 === 0 ? -Infinity : i * 1.5;
      const labels: [string, string][] = [['pod', `p-${i}-ünïcødé-🚀`]];
      ref.sample('g', labels, v);
      g.line('g', `{pod="p-${i}-ünïcødé-🚀"}`, v);
    }
    ref.sample('h', [], Infinity);
    h.line('h', '', Infinity);
    const empty = new FamilyBytes(familyHeader('z', 'gauge', 'never used'));
    expect(concatFamilies([g, empty, h]).toString('utf8')).toBe(ref.toString());
  });
});
