import { Collector, type Collection, type CollectorDeps } from '../../src/metrics/collect';
import { familiesToString } from '../../src/metrics/exposition-write';
import { createSelfMetrics, type SelfMetrics } from '../../src/metrics/self-metrics';
import { silentLogger } from '../../src/log';
import { CpuSlices } from '../../src/util/cpu-slices';
import { rmrf, tmpDir, TEST_BUILD } from '../helpers/util';
import { startFakeShim, type FakeShim } from './fake-shim';

const BUILD = TEST_BUILD;

/** A collector of fake shims: `scrapeConcurrency` requests at once; `deps` adds or replaces the rest. */
function testCollector(scrapeConcurrency: number, deps: Partial<CollectorDeps> = {}): Collector {
  return new Collector({
    logger: silentLogger,
    self: createSelfMetrics(BUILD, { defaultMetrics: false }),
    config: { shimTimeoutMs: 5000, scrapeConcurrency, shimMaxBytes: 1 << 20, scrapeUnsafeShims: false },
    ...deps,
  });
}

/** kata_monitor_shim_body_parses_total by mode. */
async function parses(self: SelfMetrics): Promise<Record<string, number>> {
  const m = await self.shimBodyParsesTotal.get();
  return Object.fromEntries(m.values.map(v => [String(v.labels.mode), v.value]));
}

/** A body whose values (and their lengths) change with `v`; the series stay the same. */
function bodyAt(id: string, v: number): string {
  let text = '# HELP go_goroutines Goroutines.\n# TYPE go_goroutines gauge\n';
  text += `go_goroutines ${v * 7}\n# TYPE kata_hypervisor_fds gauge\n`;
  for (let i = 0; i < 300; i++) text += `kata_hypervisor_fds{fd="${id}-${i}"} ${v * 1000 + i * v * 13}\n`;
  return text;
}

describe('Collector body reuse', () => {
  let root: string;
  let shims: FakeShim[];

  beforeEach(() => {
    root = tmpDir('kcp-');
    shims = [];
  });
  afterEach(async () => {
    for (const s of shims) await s.close();
    rmrf(root);
  });

  function text(c: Collection): string {
    return familiesToString(c.families.filter(f => !f.name.startsWith('kata_monitor_')));
  }

  it('hands a body Buffer to a new collection only after every user of the old one let go', async () => {
    const ids = ['a1', 'b2', 'c3', 'd4', 'e5'];
    for (const id of ids) shims.push(await startFakeShim(root, id, { kind: 'body', body: bodyAt(id, 1) }));
    const self = createSelfMetrics(BUILD, { defaultMetrics: false });
    const collector = testCollector(8, { self });
    const sbs = shims.map(s => s.sb);
    const setVersion = (v: number): void => {
      for (const s of shims) s.behaviour = { kind: 'body', body: bodyAt(s.sb.id, v) };
    };

    // The first collection parses in full; each body becomes its sandbox's template, so released, nothing
    // goes back to the pool.
    const c0 = await collector.collectAll(sbs, 2000);
    expect(collector.spareBodyBytes).toBe(0);
    c0.release();
    expect(await parses(self)).toEqual({ full: 5 });
    expect(collector.spareBodyBytes).toBe(0);

    // A collection checked against the templates, held by two users (two responses sharing it). Each new
    // body replaces its template's, and the replaced bodies (c0's, released) go back to the pool.
    setVersion(2);
    const p1 = collector.collectAll(sbs, 2000);
    const p1b = collector.collectAll(sbs, 2000);
    const c1 = await p1;
    expect(await p1b).toBe(c1);
    expect(await parses(self)).toEqual({ full: 5, checked: 5 }); // same series, other values: checked
    const spare1 = collector.spareBodyBytes;
    expect(spare1).toBeGreaterThan(0);
    const before = text(c1);
    expect(before).toContain('go_goroutines{sandbox_id="a1",cri_uid="",cri_name="",cri_namespace=""} 14\n');

    // One user done: nothing is freed (c1's bodies are also the templates). Later collections run with other
    // values of other lengths, checked against templates that roll on to their bodies.
    c1.release();
    expect(collector.spareBodyBytes).toBe(spare1);
    for (const v of [3, 1234567]) {
      setVersion(v);
      const c = await collector.collectAll(sbs, 2000);
      expect(text(c)).toContain(`} ${v * 1000 + 13 * v}\n`);
      c.release();
    }
    expect(await parses(self)).toEqual({ full: 5, checked: 15 });
    // c1 is still in use: its text is what it was, though its bodies are no longer the templates.
    expect(text(c1)).toBe(before);

    // The last user lets go: its bodies go back to the pool and the next collection takes them.
    const spare2 = collector.spareBodyBytes;
    c1.release();
    const spare = collector.spareBodyBytes;
    expect(spare).toBeGreaterThan(spare2);
    setVersion(5);
    const c2 = await collector.collectAll(sbs, 2000);
    // Its bodies came from the pool and the ones they replaced went back: had it allocated, the pool would
    // have grown by the five replaced bodies.
    expect(collector.spareBodyBytes).toBe(spare);
    expect(text(c2)).toContain('go_goroutines{sandbox_id="e5",cri_uid="",cri_name="",cri_namespace=""} 35\n');
    c2.release();
    c2.release(); // a second release by the same user changes nothing
  });
});

/**
 * One fake shim `id` and a collector with self metrics of its own; `collect(body)` makes the shim serve `body`
 * and runs an aggregated collection (the caller releases it). Cleans up after `fn`.
 */
async function withOneShim(
  id: string,
  fn: (t: { self: SelfMetrics; collect: (body: string) => Promise<Collection> }) => Promise<void>,
): Promise<void> {
  const root = tmpDir('kc1-');
  const shim = await startFakeShim(root, id, { kind: 'body', body: '' });
  try {
    const self = createSelfMetrics(BUILD, { defaultMetrics: false });
    const collector = testCollector(4, { self });
    await fn({
      self,
      collect: body => {
        shim.behaviour = { kind: 'body', body };
        return collector.collectAll([shim.sb], 2000);
      },
    });
  } finally {
    await shim.close();
    rmrf(root);
  }
}

/** The labels the collector gives a sandbox CRI does not know. */
const unlabelled = (id: string): string => `sandbox_id="${id}",cri_uid="",cri_name="",cri_namespace=""`;

describe('Collector rolling templates across a broken body', () => {
  it('recovers from a body that does not parse: the next good body is parsed in full, the one after checked', async () => {
    await withOneShim('r1', async ({ self, collect }) => {
      const step = async (body: string): Promise<{ ok: boolean; text: string }> => {
        const c = await collect(body);
        const r = { ok: c.outcomes.get('r1')!.ok, text: familiesToString(c.families) };
        c.release();
        return r;
      };
      expect((await step(bodyAt('r1', 1))).ok).toBe(true);
      expect((await step(bodyAt('r1', 2))).text).toContain(`fd="r1-1",sandbox_id="r1"`);
      expect(await parses(self)).toEqual({ full: 1, checked: 1 });
      // Same lines, but a value that is no number: the check fails (the rolled template is dropped), and the
      // full parse says where.
      const bad = bodyAt('r1', 3).replace('} 3039\n', '} 30x39\n');
      expect(bad).not.toBe(bodyAt('r1', 3));
      const broken = await step(bad);
      expect(broken.ok).toBe(false);
      expect(broken.text).toContain(
        'kata_monitor_sandbox_scrape_errors_total{sandbox_id="r1",reason="parse"} 1',
      );
      // The next good body is parsed in full (no template left), the one after it checked again.
      const v4 = await step(bodyAt('r1', 4));
      expect(v4.ok).toBe(true);
      expect(v4.text).toContain(`kata_hypervisor_fds{fd="r1-1",${unlabelled('r1')}} ${4000 + 13 * 4}\n`);
      const v5 = await step(bodyAt('r1', 5));
      expect(v5.text).toContain(`kata_hypervisor_fds{fd="r1-1",${unlabelled('r1')}} ${5000 + 13 * 5}\n`);
      expect(await parses(self)).toEqual({ full: 3, checked: 2 });
    });
  });
});

describe('Collector shared template families', () => {
  it('an unreleased collection keeps writing its own values while later ones check newer bodies', async () => {
    await withOneShim('s1', async ({ self, collect }) => {
      const body = (v: number): string => bodyAt('s1', v) + `pl{sandbox_id="inner"} ${v}\n`;
      const labels = unlabelled('s1');
      (await collect(body(1))).release();
      const held = await collect(body(2)); // checked; not released, like a response still being written
      const later: Collection[] = [];
      for (const v of [3, 4, 5]) later.push(await collect(body(v)));
      expect(await parses(self)).toEqual({ full: 1, checked: 4 });
      const heldText = familiesToString(held.families);
      expect(heldText).toContain(`kata_hypervisor_fds{fd="s1-1",${labels}} ${2000 + 13 * 2}\n`);
      expect(heldText).toContain(`pl{exported_sandbox_id="inner",${labels}} 2\n`);
      const lastText = familiesToString(later[2]!.families);
      expect(lastText).toContain(`kata_hypervisor_fds{fd="s1-1",${labels}} ${5000 + 13 * 5}\n`);
      expect(lastText).toContain(`pl{exported_sandbox_id="inner",${labels}} 5\n`);
      held.release();
      for (const c of later) c.release();
    });
  });
});

describe('Collector spare bodies', () => {
  it('keeps spare Buffers for the bodies in flight, not one per sandbox (the templates hold the rest)', async () => {
    const root = tmpDir('kcb-');
    const shims: FakeShim[] = [];
    /** About 75 KB, like a shim body. */
    const big = (id: string, v: number): string =>
      bodyAt(id, v) +
      bodyAt(`${id}x`, v)
        .repeat(6)
        .replace(/# (HELP|TYPE)[^\n]*\n/g, '');
    try {
      const ids = Array.from({ length: 30 }, (_, i) => `b${String(i).padStart(2, '0')}`);
      for (const id of ids) shims.push(await startFakeShim(root, id, { kind: 'body', body: big(id, 1) }));
      const collector = testCollector(3);

      const sbs = shims.map(s => s.sb);
      for (const v of [1, 2, 3]) {
        for (const s of shims) s.behaviour = { kind: 'body', body: big(s.sb.id, v) };
        const c = await collector.collectAll(sbs, 5000);
        expect([...c.outcomes.values()].every(o => o.ok)).toBe(true);
        c.release();
      }
      expect(big('b00', 3).length).toBeGreaterThan(60_000);
      expect(collector.spareBodyBytes).toBeGreaterThan(0);
      // Every sandbox goes: their templates let go of 30 bodies at once. The pool keeps about twice the
      // requests in flight (6 bodies, within its 1 MiB floor), not one per sandbox (about 2.4 MB).
      const gone = await collector.collectAll([], 5000);
      gone.release();
      expect(collector.spareBodyBytes).toBeGreaterThan(500_000);
      expect(collector.spareBodyBytes).toBeLessThanOrEqual(1 << 20);
    } finally {
      for (const s of shims) await s.close();
      rmrf(root);
    }
  });
});

describe('Collector source texts', () => {
  it('follows every change of a source text, whether only values moved or its series changed', async () => {
    let text = '';
    const collector = testCollector(8, {
      extraSources: [{ name: 'fake', collect: () => Promise.resolve([{ text }]) }],
    });

    const seriesText = (c: Collection): string =>
      familiesToString(c.families.filter(f => f.name.startsWith('src_')));
    const steps: Array<[string, string]> = [
      ['# TYPE src_a gauge\nsrc_a{k="1"} 1\nsrc_a{k="2"} 2\n', 'src_a{k="1"} 1\nsrc_a{k="2"} 2\n'],
      ['# TYPE src_a gauge\nsrc_a{k="1"} 10\nsrc_a{k="2"} 200\n', 'src_a{k="1"} 10\nsrc_a{k="2"} 200\n'],
      [
        '# TYPE src_a gauge\nsrc_a{k="1"} 3\nsrc_a{k="3"} 4\n# TYPE src_b_total counter\nsrc_b_total 5\n',
        'src_a{k="1"} 3\nsrc_a{k="3"} 4\n# TYPE src_b_total counter\nsrc_b_total 5\n',
      ],
      ['# TYPE src_a gauge\nsrc_a{k="1"} 3 oops\n', ''],
      ['# TYPE src_a gauge\nsrc_a{k="1"} 6\nsrc_a{k="2"} 7\n', 'src_a{k="1"} 6\nsrc_a{k="2"} 7\n'],
    ];
    for (const [input, want] of steps) {
      text = input;
      const c = await collector.collectAll([], 2000);
      expect(seriesText(c)).toBe(want === '' ? '' : `# TYPE src_a gauge\n${want}`);
      c.release();
    }
  });
});

describe('Collector CPU slices', () => {
  it('checks and parses bodies in turns of the shared slices, letting the event loop turn between them', async () => {
    const root = tmpDir('kcs-');
    const shims: FakeShim[] = [];
    try {
      const ids = Array.from({ length: 12 }, (_, i) => `s${String(i).padStart(2, '0')}`);
      for (const id of ids) shims.push(await startFakeShim(root, id, { kind: 'body', body: bodyAt(id, 1) }));
      const slices = new CpuSlices(0); // every slice is used up at once: each piece of work takes a turn
      const collector = testCollector(12, { slices });

      const sbs = shims.map(s => s.sb);
      // The first collection parses every body in full, the second checks them against their templates.
      for (const v of [1, 2]) {
        for (const s of shims) s.behaviour = { kind: 'body', body: bodyAt(s.sb.id, v) };
        const parkedBefore = slices.parked;
        const c = await collector.collectAll(sbs, 2000);
        expect(c.outcomes.size).toBe(ids.length);
        expect([...c.outcomes.values()].every(o => o.ok)).toBe(true);
        expect(familiesToString(c.families)).toContain(`kata_hypervisor_fds{fd="s11-299",sandbox_id="s11"`);
        expect(slices.parked - parkedBefore).toBeGreaterThanOrEqual(ids.length);
        c.release();
      }
    } finally {
      for (const s of shims) await s.close();
      rmrf(root);
    }
  });
});
