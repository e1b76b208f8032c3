import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseExposition, sampleLines, sampleMetas } from '../../src/metrics/exposition-parse';
import { familiesToString } from '../../src/metrics/exposition-write';
import { mergeParts, parseFamilyFilter, selectFamilies, type MergePart } from '../../src/metrics/merge';
import {
  renameRuntimeFamilies,
  resolveLabelCollisions,
  sandboxLabelText,
  exportCollidingLabels,
} from '../../src/metrics/relabel';
import type { SandboxInfo } from '../../src/types';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'metrics');

function sb(id: string, cri?: SandboxInfo['cri']): SandboxInfo {
  return { id, runtime: 'go', root: '/r', dir: `/r/${id}`, cri };
}

function shimPart(text: string, sandbox: SandboxInfo): MergePart {
  const exposition = parseExposition(text);
  renameRuntimeFamilies(exposition);
  resolveLabelCollisions(exposition);
  return { exposition, labels: sandboxLabelText(sandbox), sandboxId: sandbox.id, origin: sandbox.id };
}

function plainPart(text: string, origin = 'self'): MergePart {
  return { exposition: parseExposition(text), labels: '', origin };
}

describe('relabel', () => {
  it('renames go_/process_ families and their sample lines, keeps order', () => {
    const exp = parseExposition(
      '# TYPE go_goroutines gauge\ngo_goroutines 3\n# TYPE kata_shim_fds gauge\nkata_shim_fds 1\n' +
        '# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 2\n',
    );
    renameRuntimeFamilies(exp);
    expect([...exp.families.keys()]).toEqual([
      'kata_shim_go_goroutines',
      'kata_shim_fds',
      'kata_shim_process_cpu_seconds_total',
    ]);
    const out = familiesToString(
      mergeParts([plainPart('')].concat([{ exposition: exp, labels: '', origin: 'x' }])).families,
    );
    expect(out).toContain('\nkata_shim_go_goroutines 3\n');
    expect(out).toContain('\nkata_shim_process_cpu_seconds_total 2\n');
  });

  it('builds the sandbox label text in upstream order, escaped, empty until CRI answers', () => {
    expect(sandboxLabelText(sb('abc'))).toBe('sandbox_id="abc",cri_uid="",cri_name="",cri_namespace=""');
    expect(sandboxLabelText(sb('abc', { uid: 'u', name: 'we"ird\\', namespace: 'n\nx' }))).toBe(
      'sandbox_id="abc",cri_uid="u",cri_name="we\\"ird\\\\",cri_namespace="n\\nx"',
    );
  });

  it('moves pre-existing sandbox labels to exported_<name>', () => {
    const exp = parseExposition('a{x="1",sandbox_id="theirs",exported_cri_uid="e",cri_uid="u"} 5 123\n');
    const f = exp.families.get('a')!;
    const r = exportCollidingLabels(sampleLines(f)[0]!, sampleMetas(f)[0]!);
    expect(r.line).toBe(
      'a{x="1",exported_sandbox_id="theirs",exported_cri_uid="e",exported_exported_cri_uid="u"} 5 123',
    );
  });
});

describe('mergeParts + write', () => {
  const a = sb('aaa', { uid: 'u1', name: 'pod-a', namespace: 'ns' });
  const b = sb('bbb');

  it('appends the four labels to every sample, with and without existing labels', () => {
    const out = familiesToString(
      mergeParts([shimPart('# TYPE m gauge\nm 1\nm{} 2\nm{k="v"} 3\nm{k="w",} 4 99\n', a)]).families,
    );
    const l = 'sandbox_id="aaa",cri_uid="u1",cri_name="pod-a",cri_namespace="ns"';
    expect(out).toBe(`# TYPE m gauge\nm{${l}} 1\nm{${l}} 2\nm{k="v",${l}} 3\nm{k="w",${l}} 4 99\n`);
  });

  it('keeps a colliding series value under exported_ and stays parseable', () => {
    const out = familiesToString(mergeParts([shimPart('m{sandbox_id="old"} 7\n', a)]).families);
    expect(out).toContain(
      'm{exported_sandbox_id="old",sandbox_id="aaa",cri_uid="u1",cri_name="pod-a",cri_namespace="ns"} 7\n',
    );
    expect(() => parseExposition(out)).not.toThrow();
  });

  it('sorts families, keeps part order within a family and one HELP/TYPE per family', () => {
    const textA = '# HELP z Z.\n# TYPE z gauge\nz{i="2"} 1\nz{i="1"} 1\n# TYPE y gauge\ny 1\n';
    const textB = '# HELP z Z from b.\n# TYPE z gauge\nz{i="9"} 2\n';
    const out = familiesToString(mergeParts([shimPart(textA, a), shimPart(textB, b)]).families);
    expect(out.match(/# TYPE z /g)).toHaveLength(1);
    expect(out.match(/# HELP z /g)).toHaveLength(1);
    expect(out.indexOf('# TYPE y')).toBeLessThan(out.indexOf('# TYPE z'));
    const zLines = out.split('\n').filter(l => l.startsWith('z{'));
    expect(zLines.map(l => l.slice(0, 8))).toEqual(['z{i="2",', 'z{i="1",', 'z{i="9",']);
    expect(out).toContain('# HELP z Z.\n');
  });

  it('drops the minority type on conflicts (majority wins) and reports it', () => {
    const c = sb('ccc');
    const r = mergeParts([
      shimPart('# TYPE f counter\nf 1\n', a),
      shimPart('# TYPE f gauge\nf 2\n', b),
      shimPart('# TYPE f gauge\nf 3\n', c),
    ]);
    expect(r.families[0]!.type).toBe('gauge');
    expect(r.families[0]!.entries.map(e => e.part.origin)).toEqual(['bbb', 'ccc']);
    expect(r.conflicts).toEqual([{ family: 'f', kept: 'gauge', origin: 'aaa', type: 'counter' }]);
    expect(familiesToString(r.families)).not.toContain('f{sandbox_id="aaa"');
  });

  it('breaks a tie with the type of the first part', () => {
    const r = mergeParts([shimPart('# TYPE f counter\nf 1\n', a), shimPart('f 2\n', b)]);
    expect(r.families[0]!.type).toBe('counter');
    expect(r.conflicts).toEqual([{ family: 'f', kept: 'counter', origin: 'bbb', type: 'untyped' }]);
  });

  it('merges a runtime-rs body (three concatenated expositions) with a Go body', () => {
    const go = fs.readFileSync(path.join(FIXTURES, 'go-shim.prom'), 'utf8');
    const rs = fs.readFileSync(path.join(FIXTURES, 'rs-shim.prom'), 'utf8');
    const r = mergeParts([shimPart(go, a), shimPart(rs, b)]);
    const names = r.families.map(f => f.name);
    expect(names).toEqual([...names].sort());
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('kata_shim_go_goroutines');
    expect(names).not.toContain('go_goroutines');
    const fds = r.families.find(f => f.name === 'kata_shim_fds')!;
    expect(fds.entries.map(e => e.part.origin)).toEqual(['aaa', 'bbb']);
    expect(r.conflicts).toEqual([]);
    expect(() => parseExposition(familiesToString(r.families))).not.toThrow();
  });

  it('filters by prefix, each family at most once, own families included when they match', () => {
    const r = mergeParts([
      plainPart('# TYPE kata_monitor_scrape_count counter\nkata_monitor_scrape_count 4\n'),
      shimPart(
        '# TYPE kata_agent_x gauge\nkata_agent_x 1\n# TYPE kata_agent_total_rss gauge\nkata_agent_total_rss 2\n',
        a,
      ),
    ]);
    const prefixes = parseFamilyFilter(['kata_agent,kata_agent_total', 'kata_monitor_scrape,,'])!;
    expect(prefixes).toEqual(['kata_agent', 'kata_agent_total', 'kata_monitor_scrape']);
    const out = familiesToString(selectFamilies(r.families, { prefixes }));
    expect(out.match(/# TYPE kata_agent_total_rss/g)).toHaveLength(1);
    expect(out).toContain('kata_monitor_scrape_count 4\n');
    expect(parseFamilyFilter([''])).toBeUndefined();
    expect(selectFamilies(r.families, { prefixes: ['nothing'] })).toEqual([]);
  });

  it('selects one sandbox by part', () => {
    const r = mergeParts([
      plainPart('# TYPE own gauge\nown 1\n'),
      shimPart('# TYPE m gauge\nm 1\n', a),
      shimPart('# TYPE m gauge\nm 2\n# TYPE only_b gauge\nonly_b 1\n', b),
    ]);
    const sel = selectFamilies(r.families, { part: p => p.sandboxId === 'bbb' });
    expect(sel.map(f => f.name)).toEqual(['m', 'only_b']);
    expect(sel[0]!.entries).toHaveLength(1);
  });

  it('is deterministic: same inputs, byte-identical output', () => {
    const go = fs.readFileSync(path.join(FIXTURES, 'go-shim.prom'), 'utf8');
    const run = (): string => familiesToString(mergeParts([shimPart(go, a), shimPart(go, b)]).families);
    expect(run()).toBe(run());
  });
});
