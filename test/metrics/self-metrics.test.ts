/**
 * The daemon's event-loop lag families: sampled every EVENT_LOOP_SAMPLE_MS by our own monitor (prom-client's
 * 10 ms timer keeps an idle daemon busy), the sampling interval taken off, and the same families as
 * prom-client's defaults.
 */
import perfHooks from 'node:perf_hooks'; // the module object itself, which prom-client requires too
import { collectDefaultMetrics, Registry } from 'prom-client';
import { EVENT_LOOP_LAG_FAMILIES, EVENT_LOOP_SAMPLE_MS, lagFigures } from '../../src/metrics/event-loop-lag';
import { createSelfMetrics } from '../../src/metrics/self-metrics';
import { buildInfo } from '../../src/version';

/** `# TYPE` lines of a registry's text: family name → type. */
async function families(registry: Registry): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const m of (await registry.metrics()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

describe('lagFigures', () => {
  const h = (ns: number[]) => {
    const sorted = [...ns].sort((a, b) => a - b);
    const mean = ns.reduce((a, b) => a + b, 0) / (ns.length || 1);
    return {
      count: ns.length,
      min: ns.length ? sorted[0]! : 9223372036854776000,
      max: ns.length ? sorted[sorted.length - 1]! : 0,
      mean: ns.length ? mean : NaN,
      stddev: 4e6,
      percentile: (p: number) =>
        sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!,
    };
  };

  it('takes the sampling interval off every location figure, never below 0, and keeps the spread', () => {
    const f = lagFigures(h([49e6, 50.5e6, 52e6, 60e6, 170e6]), 50)!;
    expect(f.min).toBe(0); // a callback a little early is no negative lag
    expect(f.p50).toBeCloseTo(0.002, 9);
    expect(f.p90).toBeCloseTo(0.12, 9);
    expect(f.p99).toBeCloseTo(0.12, 9);
    expect(f.max).toBeCloseTo(0.12, 9);
    expect(f.mean).toBeCloseTo((49 + 50.5 + 52 + 60 + 170) / 5 / 1e3 - 0.05, 9);
    expect(f.stddev).toBeCloseTo(0.004, 9);
  });

  it('gives nothing when no callback ran (the histogram then holds sentinels)', () => {
    expect(lagFigures(h([]), 50)).toBeUndefined();
  });
});

describe('createSelfMetrics', () => {
  afterEach(() => jest.restoreAllMocks());

  it("has prom-client's default families, the lag ones once each, sampled by its own monitor", async () => {
    const monitor = jest.spyOn(perfHooks, 'monitorEventLoopDelay');
    const self = createSelfMetrics(buildInfo());
    // prom-client's monitor is started with an interval that keeps it idle; ours samples every 50 ms.
    expect(monitor).toHaveBeenCalledTimes(2);
    expect(monitor.mock.calls[1]).toEqual([{ resolution: EVENT_LOOP_SAMPLE_MS }]);
    expect(monitor.mock.calls[0]![0]!.resolution).toBeGreaterThan(24 * 3600 * 1000);

    const reference = new Registry();
    collectDefaultMetrics({ register: reference, prefix: 'kata_monitor_' });
    const want = await families(reference);
    const got = await families(self.registry);
    for (const [name, type] of want) expect([name, got.get(name)]).toEqual([name, type]);
    for (const f of EVENT_LOOP_LAG_FAMILIES) expect(want.has(`kata_monitor_${f}`)).toBe(true);
    const text = await self.registry.metrics();
    for (const f of EVENT_LOOP_LAG_FAMILIES) {
      expect(text.split('\n').filter(l => l.startsWith(`# TYPE kata_monitor_${f} `))).toHaveLength(1);
    }
    expect(text).toContain(`beyond the ${EVENT_LOOP_SAMPLE_MS} ms sampling interval`);
  });

  it('reports a loop blocked for 400 ms as at least 350 ms of lag, and resets at each collection', async () => {
    const self = createSelfMetrics(buildInfo());
    await self.registry.metrics(); // start from an empty histogram
    await sleep(EVENT_LOOP_SAMPLE_MS * 2);
    const until = performance.now() + 400;
    while (performance.now() < until) {
      // block the loop
    }
    await sleep(EVENT_LOOP_SAMPLE_MS * 2);
    const value = async (name: string): Promise<number> => {
      const m = self.registry.getSingleMetric(`kata_monitor_nodejs_eventloop_lag_${name}_seconds`)!;
      return (await m.get()).values[0]!.value;
    };
    await self.registry.metrics();
    // A callback ran before the block (two intervals of sleep), so the next one came at least 400 ms after
    // it: at least 350 ms beyond the interval.
    expect(await value('max')).toBeGreaterThanOrEqual(0.35);
    expect(await value('p99')).toBeGreaterThanOrEqual(0.35);
    const max = await value('max');
    await sleep(EVENT_LOOP_SAMPLE_MS * 3);
    await self.registry.metrics();
    // The next collection saw only what came after the last one (no block).
    expect(await value('max')).toBeLessThan(max);
  });

  it('starts no event-loop sampling without the runtime families', () => {
    const monitor = jest.spyOn(perfHooks, 'monitorEventLoopDelay');
    createSelfMetrics(buildInfo(), { defaultMetrics: false });
    expect(monitor).not.toHaveBeenCalled();
  });
});
