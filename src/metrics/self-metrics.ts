/**
 * The daemon's own metrics, on a prom-client Registry created here (never the global one).
 * Everything the daemon says about itself is declared in this one place.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BuildInfo } from '../version';
import { registerEventLoopLag } from './event-loop-lag';
import { SandboxSeries } from './sandbox-series';

export interface SelfMetrics {
  registry: Registry;
  /** upstream: number of sandbox-cache entries, set during each aggregated scrape */
  runningShimCount: Gauge<string>;
  /** upstream: every /metrics request */
  scrapeCount: Counter<string>;
  /** ours: aggregated scrapes in which any sandbox failed (upstream: encoding failures only) */
  scrapeFailedCount: Counter<string>;
  /** upstream: whole /metrics request duration in ms, buckets 1..512 */
  scrapeDurationsMs: Histogram<string>;
  criUp: Gauge<string>;
  sandboxes: Gauge<'runtime'>;
  sandboxesWithoutMetadata: Gauge<string>;
  sandboxRootWatchUp: Gauge<'path'>;
  buildInfo: Gauge<'version' | 'commit' | 'node_version' | 'cri_endpoint'>;
  /**
   * kata_monitor_sandbox_up, kata_monitor_sandbox_scrape_duration_seconds and
   * kata_monitor_sandbox_scrape_errors_total: rendered by us, not by the registry (sandbox-series.ts).
   */
  sandboxSeries: SandboxSeries;
  familyConflictsTotal: Counter<'family'>;
  /** ours: shim bodies read, by how: `full` (parsed) or `checked` (against the sandbox's previous body) */
  shimBodyParsesTotal: Counter<'mode'>;
}

export interface SelfMetricsOptions {
  /** Node process/runtime metrics (prefixed kata_monitor_); default on. */
  defaultMetrics?: boolean;
}

/**
 * prom-client's own event-loop delay monitor, which collectDefaultMetrics always starts, is given this interval
 * (the longest a timer takes, about 24.8 days) so that it stays idle: registerEventLoopLag replaces its
 * families with ours (event-loop-lag.ts), which sample every EVENT_LOOP_SAMPLE_MS instead of every 10 ms.
 */
const IDLE_MONITOR_MS = 2 ** 31 - 1;

export function createSelfMetrics(build: BuildInfo, opts: SelfMetricsOptions = {}): SelfMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) {
    collectDefaultMetrics({
      register: registry,
      prefix: 'kata_monitor_',
      eventLoopMonitoringPrecision: IDLE_MONITOR_MS,
    });
    registerEventLoopLag(registry, 'kata_monitor_');
  }
  const registers = [registry];
  const m: SelfMetrics = {
    registry,
    runningShimCount: new Gauge({
      name: 'kata_monitor_running_shim_count',
      help: 'Running shim count(running sandboxes).',
      registers,
    }),
    scrapeCount: new Counter({ name: 'kata_monitor_scrape_count', help: 'Scape count.', registers }),
    scrapeFailedCount: new Counter({
      name: 'kata_monitor_scrape_failed_count',
      help: 'Failed scape count: aggregated scrapes in which at least one sandbox could not be scraped.',
      registers,
    }),
    scrapeDurationsMs: new Histogram({
      name: 'kata_monitor_scrape_durations_histogram_milliseconds',
      help: 'Time used to scrape from shims',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers,
    }),
    criUp: new Gauge({
      name: 'kata_monitor_cri_up',
      help: 'Whether the last call to the CRI runtime succeeded (1) or failed (0).',
      registers,
    }),
    sandboxes: new Gauge({
      name: 'kata_monitor_sandboxes',
      help: 'Sandboxes currently discovered, by Kata runtime (go or rs).',
      labelNames: ['runtime'],
      registers,
    }),
    sandboxesWithoutMetadata: new Gauge({
      name: 'kata_monitor_sandboxes_without_metadata',
      help: 'Discovered sandboxes whose pod name, namespace and uid the CRI runtime has not reported yet.',
      registers,
    }),
    sandboxRootWatchUp: new Gauge({
      name: 'kata_monitor_sandbox_root_watch_up',
      help: 'Whether a sandbox root directory is being watched (1) or is missing or unreadable (0).',
      labelNames: ['path'],
      registers,
    }),
    buildInfo: new Gauge({
      name: 'kata_monitor_build_info',
      help: 'Build and configuration of this kata-monitor; the value is always 1.',
      labelNames: ['version', 'commit', 'node_version', 'cri_endpoint'],
      registers,
    }),
    sandboxSeries: new SandboxSeries(),
    familyConflictsTotal: new Counter({
      name: 'kata_monitor_family_conflicts_total',
      help: 'Sandboxes whose samples of a family were dropped because they typed it differently than the others.',
      labelNames: ['family'],
      registers,
    }),
    shimBodyParsesTotal: new Counter({
      name: 'kata_monitor_shim_body_parses_total',
      help: 'Shim bodies read, by mode: full (parsed line by line) or checked (same series as the previous body, values scanned).',
      labelNames: ['mode'],
      registers,
    }),
  };
  m.buildInfo.set(
    { version: build.version, commit: build.commit, node_version: build.node, cri_endpoint: '' },
    1,
  );
  return m;
}
