/**
 * The daemon's event-loop lag families (`<prefix>nodejs_eventloop_lag_*`), in place of prom-client's.
 *
 * prom-client samples the delay with a timer every 10 ms (`perf_hooks.monitorEventLoopDelay`). That timer
 * wakes an idle daemon 100 times a second: about half of what it costs when nothing happens
 * (docs/performance.md). And what the histogram records is the time between two timer callbacks, the
 * sampling interval included, so an idle process reports a lag of 10 ms (20 ms at a 20 ms resolution): a
 * coarser timer would move every figure by its interval.
 *
 * Here the delay is sampled every EVENT_LOOP_SAMPLE_MS, and the interval is taken off each location figure
 * (min, mean, percentiles, max; never below 0): the figures are the lag itself. The standard deviation does
 * not move with the interval. The families, their names and types are prom-client's; the values are lower
 * than prom-client's by its 10 ms. `<prefix>nodejs_eventloop_lag_seconds` keeps prom-client's meaning: how
 * long a `setImmediate` queued at one collection waited, reported at the next.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/**
 * How often the event-loop delay is sampled, ms. A 15 s scrape interval still has about 300 samples; a stall
 * longer than this is always seen, a shorter one with a chance of its length over this.
 */
export const EVENT_LOOP_SAMPLE_MS = 50;

/** The histogram figures, as the families' name parts and help texts (prom-client's wording). */
const FIGURES = {
  min: 'The minimum recorded event loop delay',
  max: 'The maximum recorded event loop delay',
  mean: 'The mean of the recorded event loop delays',
  stddev: 'The standard deviation of the recorded event loop delays',
  p50: 'The 50th percentile of the recorded event loop delays',
  p90: 'The 90th percentile of the recorded event loop delays',
  p99: 'The 99th percentile of the recorded event loop delays',
} as const;
type Figure = keyof typeof FIGURES;
const FIGURE_NAMES = Object.keys(FIGURES) as Figure[];

/** Family names under a prefix, as prom-client names them. */
export const EVENT_LOOP_LAG_FAMILIES: readonly string[] = [
  'nodejs_eventloop_lag_seconds',
  ...FIGURE_NAMES.map(f => `nodejs_eventloop_lag_${f}_seconds`),
];

/** The figures of one collection, in seconds, from a histogram of callback intervals in ns (pure). */
export function lagFigures(
  h: Pick<IntervalHistogram, 'count' | 'min' | 'max' | 'mean' | 'stddev' | 'percentile'>,
  intervalMs: number,
): Record<Figure, number> | undefined {
  if (h.count === 0) return undefined; // no callback since the last collection: min/max are sentinels
  // Subtracted in ns: no float residue (0.005836671, not 0.005836670999999995).
  const lag = (ns: number): number => Math.max(0, ns - intervalMs * 1e6) / 1e9;
  return {
    min: lag(h.min),
    max: lag(h.max),
    mean: lag(h.mean),
    stddev: h.stddev / 1e9,
    p50: lag(h.percentile(50)),
    p90: lag(h.percentile(90)),
    p99: lag(h.percentile(99)),
  };
}

/** setImmediate's callback: how long the immediate queued at `start` waited (module-level, not one per call). */
function reportImmediateLag(gauge: Gauge, start: bigint): void {
  gauge.set(Number(process.hrtime.bigint() - start) / 1e9);
}

/**
 * Register the lag families on `registry` in place of any of the same names there (prom-client's, after
 * collectDefaultMetrics), sampling every `intervalMs`. The histogram is read and reset at each collection,
 * like prom-client's.
 */
export function registerEventLoopLag(
  registry: Registry,
  prefix: string,
  intervalMs = EVENT_LOOP_SAMPLE_MS,
): void {
  for (const f of EVENT_LOOP_LAG_FAMILIES) registry.removeSingleMetric(prefix + f);
  const registers = [registry];
  const histogram = monitorEventLoopDelay({ resolution: intervalMs });
  histogram.enable();
  const gauges = {} as Record<Figure, Gauge>;
  const immediate = new Gauge({
    name: `${prefix}nodejs_eventloop_lag_seconds`,
    help: 'Lag of event loop in seconds.',
    registers,
    collect() {
      setImmediate(reportImmediateLag, immediate, process.hrtime.bigint());
      const f = lagFigures(histogram, intervalMs);
      histogram.reset();
      if (f) for (const k of FIGURE_NAMES) gauges[k].set(f[k]);
    },
  });
  // Registered after `immediate`, whose collect sets them: the registry reads them in that order.
  for (const k of FIGURE_NAMES) {
    const beyond =
      k === 'stddev' ? '' : `, beyond the ${intervalMs} ms sampling interval, since the last collection`;
    gauges[k] = new Gauge({
      name: `${prefix}nodejs_eventloop_lag_${k}_seconds`,
      help: `${FIGURES[k]}${beyond}.`,
      registers,
    });
  }
}
