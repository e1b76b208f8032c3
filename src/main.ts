/**
 * Entry point: parse flags, build logger/metrics/store/clients, start discovery, CRI sync and the HTTP
 * server, drain on SIGINT/SIGTERM. The only file that calls process.exit.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type express from 'express';
import { describeConfig, type Config } from './config';
import { resolveCriEndpoint, type ResolvedEndpoint } from './cri/cri-endpoint';
import { CriClient } from './cri/cri-client';
import { MetadataSync } from './cri/metadata-sync';
import { SandboxStore } from './discovery/sandbox-store';
import { SandboxWatcher, type WatcherOptions } from './discovery/sandbox-watcher';
import { getErrorMessage } from './errors';
import { createApp, type NodeHandler } from './http/app';
import { createMetricsHandler } from './http/metrics-route';
import type { ExtraSource } from './metrics/source';
import type { SandboxInfo } from './types';
import { Lifecycle } from './lifecycle';
import { createLogger, type Logger } from './log';
import { createSelfMetrics, type SelfMetrics } from './metrics/self-metrics';
import { buildInfo } from './version';
import { createAgentCollector } from './agent/agent-collector';
import { createHostCollector } from './host/host-collector';
import { CpuSlices } from './util/cpu-slices';

/** How long a sandbox's container list from CRI is reused, ms. */
const CONTAINER_IDS_TTL_MS = 30_000;

/**
 * Container ids of a sandbox without per-container directories (runtime-rs): its own (pause) container plus
 * the app containers CRI lists for it, cached briefly. When CRI cannot answer, the pause container alone.
 */
function criContainerIds(cri: CriClient, logger: Logger): (sb: SandboxInfo) => Promise<readonly string[]> {
  const cache = new Map<string, { at: number; ids: readonly string[] }>();
  return async sb => {
    const hit = cache.get(sb.id);
    if (hit && Date.now() - hit.at < CONTAINER_IDS_TTL_MS) return hit.ids;
    let ids: readonly string[] = [sb.id];
    try {
      ids = [sb.id, ...(await cri.listContainerIds(sb.id)).filter(id => id !== sb.id)];
    } catch (err) {
      logger.debug('CRI ListContainers failed; using the sandbox container only', {
        sandbox_id: sb.id,
        err: getErrorMessage(err),
      });
    }
    if (cache.size > 10_000) cache.clear();
    cache.set(sb.id, { at: Date.now(), ids });
    return ids;
  };
}

/** The agent and host collectors the flags ask for; each is closed on shutdown. */
function defaultExtraSources(
  config: Config,
  logger: Logger,
  lifecycle: Lifecycle,
  cri: CriClient,
  slices: CpuSlices,
): ExtraSource[] {
  const sources: ExtraSource[] = [];
  let agent: ReturnType<typeof createAgentCollector> | undefined;
  if (config.agentMetrics !== 'never' || config.collectContainerStats) {
    agent = createAgentCollector({
      logger: logger.child({ component: 'agent' }),
      agentMetrics: config.agentMetrics,
      collectContainerStats: config.collectContainerStats,
      containerIds: criContainerIds(cri, logger),
      shimMaxBytes: 4096,
      slices,
    });
    const a = agent;
    lifecycle.add('agent-collector', () => a.close());
    sources.push(agent);
  }
  if (config.collectHost) {
    const host = createHostCollector({
      logger: logger.child({ component: 'host' }),
      procfs: config.procfsPath,
      sysfs: config.sysfsPath,
      runDir: config.runPath,
      slices,
      ...(agent ? { guestUsage: agent.guestUsage } : {}),
    });
    lifecycle.add('host-collector', () => host.close());
    sources.push(host);
  }
  return sources;
}

export interface DaemonOverrides {
  logger?: Logger;
  self?: SelfMetrics;
  /** Existence check used to probe the well-known CRI sockets (tests inject one). */
  exists?: (p: string) => boolean;
  /**
   * Replaces the /metrics handler (default: the aggregated handler of http/metrics-route.ts).
   * `(daemon parts) => handler`, so it can be built from the store, self metrics and logger this daemon creates.
   */
  metricsHandler?: (parts: {
    logger: Logger;
    self: SelfMetrics;
    store: SandboxStore;
    config: Config;
  }) => NodeHandler;
  /** Extra producers merged into the aggregated /metrics (agent collector, host collector). */
  extraSources?: ExtraSource[];
  /** Deadline of each CRI call, ms (default 2000). */
  criDeadlineMs?: number;
  /** Discovery timings (tests). */
  watcher?: Pick<WatcherOptions, 'tickMs' | 'resyncMs' | 'stateRetryMs' | 'stateRetries'>;
  /** Longest wait for in-flight HTTP requests on stop, ms (default 5000). */
  drainMs?: number;
}

export interface Daemon {
  /** `http://HOST:PORT` actually listened on (port 0 in the config picks a free one). */
  url: string;
  server: http.Server;
  app: express.Express;
  store: SandboxStore;
  watcher: SandboxWatcher;
  metadataSync: MetadataSync;
  cri: CriClient;
  criEndpoint: ResolvedEndpoint;
  self: SelfMetrics;
  logger: Logger;
  config: Config;
  /** Stops accepting, drains requests, stops CRI sync and watchers. Idempotent. */
  stop(): Promise<void>;
}

function defaultExists(p: string): boolean {
  try {
    fs.statSync(p);
    return true;
  } catch {
    return false;
  }
}

export async function startDaemon(config: Config, overrides: DaemonOverrides = {}): Promise<Daemon> {
  const logger = overrides.logger ?? createLogger({ level: config.logLevel });
  const build = buildInfo();
  const self = overrides.self ?? createSelfMetrics(build, { defaultMetrics: !config.disableExporterMetrics });
  const lifecycle = new Lifecycle(logger);

  logger.info('kata-monitor starting', {
    announce: true,
    version: build.version,
    commit: build.commit,
    node_version: build.node,
    config: describeConfig(config),
  });
  for (const w of config.warnings) logger.warn(w);

  const criEndpoint = resolveCriEndpoint(config.runtimeEndpoint, overrides.exists ?? defaultExists);
  if (criEndpoint.source === 'fallback') {
    logger.warn('no CRI socket found at the well-known paths; will keep trying the containerd default', {
      cri_endpoint: criEndpoint.endpoint.display,
    });
  } else {
    logger.info('CRI endpoint', { cri_endpoint: criEndpoint.endpoint.display, source: criEndpoint.source });
  }
  self.buildInfo.reset();
  self.buildInfo.set(
    {
      version: build.version,
      commit: build.commit,
      node_version: build.node,
      cri_endpoint: criEndpoint.endpoint.display,
    },
    1,
  );

  const store = new SandboxStore(config.sandboxRoots);
  const watcher = new SandboxWatcher({
    roots: config.sandboxRoots,
    store,
    logger,
    self,
    ...overrides.watcher,
  });
  const refreshGauges = (): void => {
    const counts = store.countByRuntime();
    self.sandboxes.set({ runtime: 'go' }, counts.go);
    self.sandboxes.set({ runtime: 'rs' }, counts.rs);
    self.sandboxesWithoutMetadata.set(store.withoutMetadata());
  };
  store.onChange(refreshGauges);
  refreshGauges();

  const cri = new CriClient({
    target: criEndpoint.endpoint.target,
    deadlineMs: overrides.criDeadlineMs ?? 2000,
  });
  lifecycle.add('cri-channel', () => cri.close());
  const metadataSync = new MetadataSync({ store, cri, logger, self });

  try {
    await watcher.start();
  } catch (err) {
    watcher.stop();
    await lifecycle.stopAll();
    throw err;
  }
  lifecycle.add('discovery', () => watcher.stop());
  metadataSync.start();
  lifecycle.add('cri-sync', () => metadataSync.stop());

  // One budget of synchronous work per event-loop turn for the shim bodies and both collectors together.
  const slices = new CpuSlices();
  const metricsHandler =
    overrides.metricsHandler?.({ logger, self, store, config }) ??
    createMetricsHandler({
      logger,
      self,
      listSandboxes: () => store.list(),
      config,
      extraSources: overrides.extraSources ?? defaultExtraSources(config, logger, lifecycle, cri, slices),
      slices,
    });
  const app = createApp({
    logger,
    self,
    sandboxes: store,
    readiness: () => watcher.readinessProblems(),
    config,
    metricsHandler,
  });

  const server = http.createServer(app);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const onListening = (): void => {
        server.off('error', reject);
        resolve();
      };
      if (config.listenHost) server.listen(config.listenPort, config.listenHost, onListening);
      else server.listen(config.listenPort, onListening);
    });
  } catch (err) {
    await lifecycle.stopAll();
    throw err;
  }
  const drainMs = overrides.drainMs ?? 5000;
  lifecycle.add('http', async () => {
    const closed = new Promise<void>(resolve => server.close(() => resolve()));
    server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      closed,
      new Promise<void>(resolve => {
        timer = setTimeout(() => {
          server.closeAllConnections();
          resolve();
        }, drainMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
  });
  server.on('error', err => logger.error('HTTP server error', { err }));

  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;
  logger.info('listening', { url, listen_address: config.listenAddress });

  return {
    url,
    server,
    app,
    store,
    watcher,
    metadataSync,
    cri,
    criEndpoint,
    self,
    logger,
    config,
    stop: () => lifecycle.stopAll(),
  };
}
