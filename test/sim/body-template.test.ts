import { spawnSync } from 'node:child_process';
import { goShimBody, goShimTemplate } from '../../src/sim/metrics-go';
import {
  BodyTemplate,
  type SimFamily,
  formatGoFloat,
  formatRustFloat,
  renderRegistry,
} from '../../src/sim/metrics-model';
import { rsShimBody, shimBody, shimBodyBuffer } from '../../src/sim/metrics-rs';
import { drawSandbox } from '../../src/sim/plan';
import { mulberry32 } from '../../src/sim/rng';
import type { ShimFault } from '../../src/sim/types';
import { findBinary } from '../helpers/util';

function sandbox(hypervisor: string, runtime: 'go' | 'rs' = 'go', index = 0, shimFault?: ShimFault) {
  const d = drawSandbox(42, index);
  return { id: d.id, seed: d.seed, vcpus: d.vcpus, containers: d.containers, hypervisor, runtime, shimFault };
}

/** Reference: Go `strconv.FormatFloat(v, 'g', -1, 64)` written the straightforward way. */
function goReference(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (v === 0) return '0';
  const e = v.toExponential();
  const at = e.indexOf('e');
  const exp = Number(e.slice(at + 1));
  if (exp < -4 || exp >= 6) {
    return e.slice(0, at) + 'e' + (exp < 0 ? '-' : '+') + String(Math.abs(exp)).padStart(2, '0');
  }
  return String(v);
}

function value(body: string, series: string): number {
  const line = body.split('\n').find(l => l.startsWith(series + ' '));
  if (!line) throw new Error(`series ${series} not in body`);
  return Number(line.slice(series.length + 1));
}

function promtoolErrors(body: string): string | undefined {
  const promtool = findBinary('promtool');
  if (!promtool)
    throw new Error('promtool not found on PATH: install the Debian package prometheus (CI does)');
  const r = spawnSync(promtool, ['check', 'metrics'], { input: body, encoding: 'utf8', maxBuffer: 64 << 20 });
  const out = `${r.stdout}${r.stderr}`;
  if ((r.status === 0 || r.status === 3) && !/error while linting|parsing error/i.test(out)) return undefined;
  return `promtool exit ${r.status}: ${out.slice(0, 500)}`;
}

describe('compiled metric bodies', () => {
  it('the fast float formatters agree with the reference ones over many magnitudes', () => {
    const rnd = mulberry32(1234);
    const values: number[] = [
      0,
      -0,
      1,
      -1,
      999999,
      1e6,
      -1e6,
      1048576,
      2990080,
      2 ** 53,
      2 ** 63,
      2 ** 64,
      1e21,
    ];
    for (let i = 0; i < 20000; i++) {
      const mag = 10 ** Math.floor(rnd() * 24);
      const x = rnd() * mag;
      values.push(Math.floor(x), -Math.floor(x), x, Math.round(x / 1000) * 1000, Number(x.toPrecision(3)));
    }
    const mismatches: string[] = [];
    for (const v of values) {
      if (formatGoFloat(v) !== goReference(v)) mismatches.push(`go ${v}: ${formatGoFloat(v)}`);
      if (Number.isInteger(v) && Math.abs(v) < 1e21 && formatRustFloat(v) !== BigInt(v).toString())
        mismatches.push(`rust ${v}: ${formatRustFloat(v)}`);
    }
    expect(mismatches).toEqual([]);
    expect(values.length).toBeGreaterThan(100000);
    expect(formatGoFloat(NaN)).toBe('NaN');
    expect(formatRustFloat(-Infinity)).toBe('-Inf');
  });

  it('renders what the family model says: sorted families and series, constants and tick functions', () => {
    const fams: SimFamily[] = [
      {
        name: 'b_total',
        help: 'b\\help\nnext',
        type: 'counter',
        series: [
          { labels: [['z', '2']], value: t => t * 1.5e6 },
          { labels: [['z', '1']], value: 7 },
        ],
      },
      { name: 'a', help: 'a', type: 'gauge', series: [{ labels: [['v', 'q"\\']], value: 0.5 }] },
      { name: 'empty', help: 'nothing', type: 'gauge', series: [] },
      {
        name: 'h',
        help: 'h',
        type: 'histogram',
        series: [{ labels: [], buckets: [[1, t => t]], sum: t => 2 * t, count: t => t, when: t => t > 1 }],
      },
    ];
    const tpl = BodyTemplate.compile(
      [...fams].sort((x, y) => (x.name < y.name ? -1 : 1)),
      'go',
    );
    const want = (t: number): string =>
      '# HELP a a\n# TYPE a gauge\na{v="q\\"\\\\"} 0.5\n' +
      '# HELP b_total b\\\\help\\nnext\n# TYPE b_total counter\n' +
      `b_total{z="1"} 7\nb_total{z="2"} ${formatGoFloat(t * 1.5e6)}\n` +
      (t > 1
        ? `# HELP h h\n# TYPE h histogram\nh_bucket{le="1"} ${t}\nh_bucket{le="+Inf"} ${t}\nh_sum ${2 * t}\nh_count ${t}\n`
        : '');
    for (const t of [0, 1, 2, 3, 1000]) {
      expect(tpl.render(t)).toBe(want(t));
      expect(tpl.renderBuffer(t).toString()).toBe(want(t));
      expect(renderRegistry(fams, 'go', t)).toBe(want(t));
    }
    expect(renderRegistry(fams, 'rust', 2)).toContain('b_total{z="2"} 3000000\n');
    expect(tpl.slots).toBe(5);
  });

  it('concatenated templates render as the texts side by side', () => {
    const one = (name: string, v: number | ((t: number) => number)): BodyTemplate =>
      BodyTemplate.compile([{ name, help: name, type: 'gauge', series: [{ labels: [], value: v }] }], 'rust');
    const parts = [one('x', t => t), one('y', 3), one('z', t => t * 2)];
    const all = BodyTemplate.concat(parts);
    for (const t of [1, 9]) expect(all.render(t)).toBe(parts.map(p => p.render(t)).join(''));
    expect(BodyTemplate.concat([one('y', 3), one('w', 4)]).render(5)).toBe(
      '# HELP y y\n# TYPE y gauge\ny 3\n# HELP w w\n# TYPE w gauge\nw 4\n',
    );
  });

  it('served bytes equal the text bodies, for both runtimes and every body fault', () => {
    const faults: Array<ShimFault | undefined> = [
      undefined,
      { kind: 'garbage' },
      { kind: 'conflict' },
      { kind: 'prelabelled' },
    ];
    for (const [hv, rt] of [
      ['clh', 'go'],
      ['qemu', 'go'],
      ['firecracker', 'go'],
      ['dragonball', 'rs'],
      ['clh', 'rs'],
    ] as const) {
      for (const f of faults) {
        const sb = sandbox(hv, rt, 3, f);
        for (const t of [1, 2, 50]) {
          const text = shimBody(sb, t);
          expect(shimBodyBuffer(sb, t).equals(Buffer.from(text))).toBe(true);
          expect(text).toBe(rt === 'go' ? goShimBody(sb, t) : rsShimBody(sb, t));
        }
      }
    }
  });

  it('a served buffer stays intact while many more bodies are rendered', () => {
    const sbs = Array.from({ length: 30 }, (_, i) => sandbox(i % 2 ? 'clh' : 'qemu', 'go', i));
    const first = shimBodyBuffer(sbs[0]!, 1);
    const copy = Buffer.from(first);
    const others = [];
    for (let t = 1; t < 5; t++) for (const sb of sbs) others.push(shimBodyBuffer(sb, t));
    expect(first.equals(copy)).toBe(true);
    expect(
      others.every((b, i) => b.equals(Buffer.from(goShimBody(sbs[i % 30]!, 1 + Math.floor(i / 30))))),
    ).toBe(true);
  });

  it('histogram series appear once their action has been observed; the body stays promtool-clean', () => {
    const sb = sandbox('clh');
    const execSeries = 'kata_shim_rpc_durations_histogram_milliseconds_count{action="exec"}';
    const early = goShimBody(sb, 1);
    expect(early).not.toContain(execSeries);
    expect(early).toContain('kata_shim_rpc_durations_histogram_milliseconds_count{action="state"}');
    const later = goShimBody(sb, 10);
    expect(value(later, execSeries)).toBe(2);
    expect(promtoolErrors(early)).toBeUndefined();
    expect(promtoolErrors(later)).toBeUndefined();
  });

  it('gauges move between ticks and stay in range; a body is a pure function of (seed, tick)', () => {
    const sb = sandbox('clh');
    const seen = new Set<number>();
    for (let t = 1; t <= 20; t++) {
      const g = value(goShimBody(sb, t), 'go_goroutines');
      expect(g).toBeGreaterThanOrEqual(38);
      expect(g).toBeLessThanOrEqual(52);
      seen.add(g);
    }
    expect(seen.size).toBeGreaterThan(3);
    const fresh = sandbox('clh'); // another object, same sandbox: same bytes
    expect(goShimBody(fresh, 7)).toBe(goShimBody(sb, 7));
    expect(goShimTemplate(fresh)).toBe(goShimTemplate(fresh)); // compiled once per sandbox and faults
  });

  it('changing the fault of the same sandbox object changes the body, and back', () => {
    const sb = sandbox('clh', 'go', 1);
    const plain = goShimBody(sb, 4);
    sb.shimFault = { kind: 'prelabelled' };
    expect(goShimBody(sb, 4)).toContain(`sandbox_id="${sb.id}"`);
    sb.shimFault = { kind: 'conflict' };
    expect(goShimBody(sb, 4)).toContain('# TYPE kata_guest_load counter');
    sb.shimFault = undefined;
    expect(goShimBody(sb, 4)).toBe(plain);
    const noAgent = { ...sb, agentFault: { kind: 'deny' as const } };
    expect(goShimBody(noAgent, 4)).not.toContain('kata_agent_');
    expect(plain.startsWith(goShimBody(noAgent, 4))).toBe(true);
  });
});
