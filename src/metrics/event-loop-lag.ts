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

/** Family names under a prefix, as prom-client names them. */
export const EVENT_LOOP_LAG_FAMILIES = [
  'nodejs_eventloop_lag_seconds',
  'nodejs_eventloop_lag_min_seconds',
  'nodejs_eventloop_lag_max_seconds',
  'nodejs_eventloop_lag_mean_seconds',
  'nodejs_eventloop_lag_stddev_seconds',
  'nodejs_eventloop_lag_p50_seconds',
  'nodejs_eventloop_lag_p90_seconds',
  'nodejs_eventloop_lag_p99_seconds',
] as const;

/** The figures of one collection, in seconds, from a histogram of callback intervals in ns (pure). */
export function lagFigures(
  h: Pick<IntervalHistogram, 'count' | 'min' | 'max' | 'mean' | 'stddev' | 'percentile'>,
  intervalMs: number,
):
  | { min: number; max: number; mean: number; stddev: number; p50: number; p90: number; p99: number }
  | undefined {
  if (h.count === 0) return undefined; // no callback since the last collection: min/max are sentinels
  const lag = (ns: number): number => Math.max(0, ns - intervalMs * 1e6) / 1e9; // subtract in ns: no float residue (0.005836671, not 0.005836670999999995)
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

/**
 * Register the lag families on `registry` (prom-client's of the same names must not be there), sampling every
 * `intervalMs`. The histogram is read and reset at each collection, like prom-client's.
 */
export function registerEventLoopLag(
  registry: Registry,
  prefix: string,
  intervalMs = EVENT_LOOP_SAMPLE_MS,
): void {
  const registers = [registry];
  const gauge = (suffix: string, help: string): Gauge =>
    new Gauge({ name: `${prefix}nodejs_eventloop_lag_${suffix}`, help, registers });
  const histogram = monitorEventLoopDelay({ resolution: intervalMs });
  histogram.enable();
  const sampled = `, beyond the ${intervalMs} ms sampling interval, since the last collection`;
  const immediate = new Gauge({
    name: `${prefix}nodejs_eventloop_lag_seconds`,
    help: 'Lag of event loop in seconds.',
    registers,
    collect() {
      const start = process.hrtime.bigint();
      setImmediate(() => immediate.set(Number(process.hrtime.bigint() - start) / 1e9));
      const f = lagFigures(histogram, intervalMs);
      histogram.reset();
      if (!f) return;
      min.set(f.min);
      max.set(f.max);
      mean.set(f.mean);
      stddev.set(f.stddev);
      p50.set(f.p50);
      p90.set(f.p90);
      p99.set(f.p99);
    },
  });
  const min = gauge('min_seconds', `The minimum recorded event loop delay${sampled}.`);
  const max = gauge('max_seconds', `The maximum recorded event loop delay${sampled}.`);
  const mean = gauge('mean_seconds', `The mean of the recorded event loop delays${sampled}.`);
  const stddev = gauge('stddev_seconds', 'The standard deviation of the recorded event loop delays.');
  const p50 = gauge('p50_seconds', `The 50th percentile of the recorded event loop delays${sampled}.`);
  const p90 = gauge('p90_seconds', `The 90th percentile of the recorded event loop delays${sampled}.`);
  const p99 = gauge('p99_seconds', `The 99th percentile of the recorded event loop delays${sampled}.`);
}
