/**
 * The agent as an extra metrics source of the /metrics collection (ExtraSource, src/metrics/source.ts):
 *  1. guest + agent families straight from the agent (`GetMetrics`) when the shim could not be scraped
 *     (mode `fallback`, default) or always (mode `always`, families the shim gave are skipped);
 *  2. per-container guest stats from `StatsContainer` (kata_monitor_guest_container_*);
 *  3. kata_monitor_agent_up (health Check) and kata_monitor_agent_info (GetGuestDetails, cached);
 *  4. kata_monitor_agent_errors_total{sandbox_id,reason}, kept across collections.
 * PERMISSION_DENIED (agent policy) and UNIMPLEMENTED answers are remembered per sandbox and method and not
 * retried before `deniedRetryMs`. Everything is bounded by the collection deadline.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { getErrorMessage, isKataMonitorError } from '../errors';
import type { Logger } from '../log';
import type { CollectContext, ExpositionChunk, ExtraSource, ShimOutcome } from '../metrics/source';
import {
  concatFamilies,
  escapeLabelValue,
  FamilyBytes,
  familyHeader,
  renderLabels,
  type LabelPairs,
} from '../metrics/text-builder';
import { SHIM_SOCKET_NAME, shimRequest } from '../shim/shim-client';
import { sandboxLabels, type SandboxInfo } from '../types';
import { AgentClient } from './agent-client';
import { parseAgentUrl } from './agent-url';
import type { VsockBinding } from './dialers';
import { ServingStatus, type GuestDetailsResponse } from './messages';
import type { LeanContainerStats } from './stats-decode';
import { GrpcCode, TtrpcStatusError } from './ttrpc-client';
import { CpuSlices } from '../util/cpu-slices';
import { mapLimit } from '../util/map-limit';

export type AgentMetricsMode = 'fallback' | 'always' | 'never';

export type AgentErrorReason =
  'permission_denied' | 'unimplemented' | 'timeout' | 'unreachable' | 'protocol' | 'vsock_unavailable';

export interface AgentCollectorOptions {
  logger: Logger;
  /** When to take guest/agent families from the agent itself (default `fallback`). */
  agentMetrics?: AgentMetricsMode;
  /** Per-container StatsContainer families (default true). */
  collectContainerStats?: boolean;
  /** Upper bound of one agent call, ms (default 5000; the collection deadline also applies). */
  callTimeoutMs?: number;
  /** Connect + hybrid-vsock handshake deadline, ms (default 2000). */
  dialTimeoutMs?: number;
  /** Container ids of a sandbox when its directory has no per-container sub-directories (runtime-rs). */
  containerIds?: (sb: SandboxInfo) => Promise<readonly string[]> | readonly string[];
  /** Cap on the shim's /agent-url answer, bytes (default 4096). */
  shimMaxBytes?: number;
  /** Deadline of the /agent-url request to the shim, ms (default 1000). */
  shimTimeoutMs?: number;
  /** How long a PERMISSION_DENIED / UNIMPLEMENTED answer is remembered, ms (default 5 minutes). */
  deniedRetryMs?: number;
  /** How long GetGuestDetails answers are cached, ms (default 10 minutes). */
  detailsRefreshMs?: number;
  /**
   * Sandboxes whose agents are asked at the same time (default AGENT_CONCURRENCY). Agent calls are small and
   * go over connections kept from one collection to the next, and each sandbox's calls follow one another,
   * so a bound as low as the shims' (32) made 100 sandboxes wait in turns and slowed every scrape.
   */
  concurrency?: number;
  /** The CPU slices the stats text is written in (the daemon shares one with the shim scrapes; cpu-slices.ts). */
  slices?: CpuSlices;
  /** vsock implementation override (tests); null disables vsock. */
  vsock?: VsockBinding | null;
  /** Clock (tests). */
  now?: () => number;
}

/** Default bound on sandboxes whose agents are asked at once: a safety valve for very large nodes. */
export const AGENT_CONCURRENCY = 256;

export const AGENT_METHOD = {
  getMetrics: 'GetMetrics',
  statsContainer: 'StatsContainer',
  guestDetails: 'GetGuestDetails',
  check: 'Check',
} as const;
type MethodName = (typeof AGENT_METHOD)[keyof typeof AGENT_METHOD];

/** What each method's call gives. */
interface MethodResult {
  GetMetrics: string;
  StatsContainer: LeanContainerStats;
  GetGuestDetails: GuestDetailsResponse;
  Check: number;
}

/** The calls of one sandbox in one collection. */
interface SandboxCalls {
  sandboxId: string;
  st: SandboxState;
  client: AgentClient | undefined;
  callOpts: { deadline: number; signal: AbortSignal };
  fallbackOpts: { deadline: number; signal: AbortSignal };
  /** A broken transport ends this sandbox's collection: one error, not one per call. */
  transportFailed: boolean;
}

type AgentCall<M extends MethodName> = (
  client: AgentClient,
  c: SandboxCalls,
  id: string,
) => Promise<MethodResult[M]>;

/** How each method is called (a key per method: a method without a call does not compile). */
const AGENT_CALLS: { [M in MethodName]: AgentCall<M> } = {
  Check: (client, c) => client.check(c.callOpts),
  GetGuestDetails: (client, c) => client.guestDetails(c.callOpts),
  StatsContainer: (client, c, id) => client.containerStats(id, c.callOpts),
  GetMetrics: (client, c) => client.getMetrics(c.fallbackOpts),
};

/** Valid container id: what containerd / CRI-O use (hex) and what Kata's verify_id accepts. */
const CONTAINER_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

interface SandboxState {
  shimUrl?: string;
  shimUrlInFlight?: Promise<void>;
  client?: AgentClient;
  /** method → Date.now() before which it is not called again */
  backoff: Map<MethodName, number>;
  details?: { value: GuestDetailsResponse; at: number };
  errors: Map<AgentErrorReason, number>;
}

/** Map an agent call failure to an error reason (pure). */
export function agentErrorReason(err: unknown): AgentErrorReason {
  if (err instanceof TtrpcStatusError) {
    if (err.grpcCode === GrpcCode.PERMISSION_DENIED) return 'permission_denied';
    if (err.grpcCode === GrpcCode.UNIMPLEMENTED) return 'unimplemented';
    if (err.grpcCode === GrpcCode.DEADLINE_EXCEEDED) return 'timeout';
    return 'protocol';
  }
  if (isKataMonitorError(err)) {
    switch (err.code) {
      case 'AGENT_TIMEOUT':
        return 'timeout';
      case 'VSOCK_UNAVAILABLE':
        return 'vsock_unavailable';
      case 'AGENT_PROTOCOL':
        return 'protocol';
      default:
        return 'unreachable';
    }
  }
  return 'protocol';
}

/** `{a="x",b="y"` (no closing brace): a label set other labels are appended to. */
function openLabels(labels: LabelPairs): string {
  const r = renderLabels(labels);
  return r.slice(0, -1);
}

/** Rendered label sets of one container: `{<sandbox labels>,container_id="…"}` and its per-op / per-interface sets. */
export interface ContainerLabelText {
  /** `{…,container_id="…"` */
  open: string;
  /** `{…,container_id="…"}` */
  closed: string;
  /** op → `{…,container_id="…",op="…"}` */
  ops: Map<string, string>;
  /** interface → `{…,container_id="…",interface="…"}` */
  ifaces: Map<string, string>;
  /** Collection in which it was last used (pruning). */
  gen: number;
}

/** Rendered label sets of one sandbox, valid while its label values are those of `key`. */
export interface SandboxLabelText {
  key: string;
  /** `{sandbox_id="…",cri_uid="…",cri_name="…",cri_namespace="…"` */
  open: string;
  closed: string;
  containers: Map<string, ContainerLabelText>;
  /** The kata_monitor_agent_info label set and the details it was rendered from. */
  info?: { details: GuestDetailsResponse; text: string };
}

function sandboxLabelKey(sb: Pick<SandboxInfo, 'id' | 'cri'>): string {
  const c = sb.cri;
  return c ? `${sb.id}\0${c.uid}\0${c.name}\0${c.namespace}` : sb.id;
}

/**
 * Label sets of sandboxes and their containers rendered once and reused across collections (pure, no I/O): the
 * cache is keyed by the label values, so a CRI rename shows on the next collection. `retain` drops sandboxes
 * that went, `pruneContainers` the containers not used in the current collection.
 */
export class LabelTextCache {
  private readonly sandboxes = new Map<string, SandboxLabelText>();
  private gen = 0;

  /** Start a collection: containers not used from now on are dropped by pruneContainers(). */
  nextGeneration(): void {
    this.gen++;
  }

  sandbox(sb: Pick<SandboxInfo, 'id' | 'cri'>): SandboxLabelText {
    const key = sandboxLabelKey(sb);
    let t = this.sandboxes.get(sb.id);
    if (t?.key !== key) {
      const labels = sandboxLabels(sb);
      t = { key, open: openLabels(labels), closed: renderLabels(labels), containers: new Map() };
      this.sandboxes.set(sb.id, t);
    }
    return t;
  }

  container(s: SandboxLabelText, containerId: string): ContainerLabelText {
    let c = s.containers.get(containerId);
    if (!c) {
      const open = `${s.open},container_id="${escapeLabelValue(containerId)}"`;
      c = { open, closed: open + '}', ops: new Map(), ifaces: new Map(), gen: this.gen };
      s.containers.set(containerId, c);
    }
    c.gen = this.gen;
    return c;
  }

  /** The agent_info label set of a sandbox for these details (re-rendered when the details object changes). */
  info(s: SandboxLabelText, details: GuestDetailsResponse): string | undefined {
    const d = details.agent_details;
    if (!d) return undefined;
    if (s.info?.details !== details) {
      const text = `${s.open},version="${escapeLabelValue(d.version)}",init_daemon="${String(d.init_daemon)}",supports_seccomp="${String(d.supports_seccomp)}"}`;
      s.info = { details, text };
    }
    return s.info.text;
  }

  /** Keep only the sandboxes in `ids`. */
  retain(ids: ReadonlySet<string>): void {
    for (const id of this.sandboxes.keys()) if (!ids.has(id)) this.sandboxes.delete(id);
  }

  /** Drop the containers not used since nextGeneration(). */
  pruneContainers(): void {
    for (const s of this.sandboxes.values())
      for (const [id, c] of s.containers) if (c.gen !== this.gen) s.containers.delete(id);
  }

  get size(): number {
    return this.sandboxes.size;
  }
}

/** [op, bytes] pairs by op name (a module-level comparator: see mapWorker in util/map-limit.ts). */
const byOpName = (x: [string, number], y: [string, number]): number => x[0].localeCompare(y[0]);

/** A container's label set with one more label (`op`, `interface`), rendered once per value into `cache`. */
function withLabel(c: ContainerLabelText, cache: Map<string, string>, name: string, value: string): string {
  let t = cache.get(value);
  if (t === undefined) {
    t = `${c.open},${name}="${escapeLabelValue(value)}"}`;
    cache.set(value, t);
  }
  return t;
}

/**
 * The kata_monitor_guest_container_* families of one collection, byte for byte what TextBuilder writes (families
 * in a fixed order, the samples of a family together in the order containers are added), from label sets
 * rendered beforehand (pure).
 */
export class ContainerStatsText {
  private readonly cpu = new FamilyBytes(CONTAINER_HEADERS.cpu);
  private readonly memUsage = new FamilyBytes(CONTAINER_HEADERS.memUsage);
  private readonly memLimit = new FamilyBytes(CONTAINER_HEADERS.memLimit);
  private readonly pids = new FamilyBytes(CONTAINER_HEADERS.pids);
  private readonly blkio = new FamilyBytes(CONTAINER_HEADERS.blkio);
  private readonly rx = new FamilyBytes(CONTAINER_HEADERS.rx);
  private readonly tx = new FamilyBytes(CONTAINER_HEADERS.tx);

  /** Samples of one container's stats. */
  add(c: ContainerLabelText, stats: LeanContainerStats): void {
    if (stats.cpuTotalNs !== undefined) this.cpu.line(F.cpu, c.closed, stats.cpuTotalNs / 1e9);
    const mem = stats.memory;
    if (mem) {
      this.memUsage.line(F.memUsage, c.closed, mem.usage);
      this.memLimit.line(F.memLimit, c.closed, mem.limit);
    }
    if (stats.pids !== undefined) this.pids.line(F.pids, c.closed, stats.pids);
    const entries = stats.blkioServiceBytes;
    if (entries.length === 1) {
      const e = entries[0]!;
      this.blkio.line(F.blkio, withLabel(c, c.ops, 'op', e.op.toLowerCase()), e.value);
    } else if (entries.length > 1) {
      // Entries of the same op (one per device) are summed; ops in localeCompare order.
      const ops = new Map<string, number>();
      for (const e of entries) {
        const op = e.op.toLowerCase();
        ops.set(op, (ops.get(op) ?? 0) + e.value);
      }
      for (const [op, v] of [...ops].sort(byOpName))
        this.blkio.line(F.blkio, withLabel(c, c.ops, 'op', op), v);
    }
    for (const n of stats.network) {
      const labels = withLabel(c, c.ifaces, 'interface', n.name);
      this.rx.line(F.rx, labels, n.rx_bytes);
      this.tx.line(F.tx, labels, n.tx_bytes);
    }
  }

  /** The families, in their fixed order, as one text. */
  families(): FamilyBytes[] {
    return [this.cpu, this.memUsage, this.memLimit, this.pids, this.blkio, this.rx, this.tx];
  }

  toString(): string {
    return concatFamilies(this.families()).toString('utf8');
  }
}

/** Container stats of one container as exposition text (pure; labels rendered for this call only). */
export function renderContainerStats(
  sb: Pick<SandboxInfo, 'id' | 'cri'>,
  containerId: string,
  stats: LeanContainerStats,
): string {
  const cache = new LabelTextCache();
  const out = new ContainerStatsText();
  out.add(cache.container(cache.sandbox(sb), containerId), stats);
  return out.toString();
}

const F = {
  cpu: 'kata_monitor_guest_container_cpu_usage_seconds_total',
  memUsage: 'kata_monitor_guest_container_memory_usage_bytes',
  memLimit: 'kata_monitor_guest_container_memory_limit_bytes',
  pids: 'kata_monitor_guest_container_pids',
  blkio: 'kata_monitor_guest_container_blkio_bytes_total',
  rx: 'kata_monitor_guest_container_network_receive_bytes_total',
  tx: 'kata_monitor_guest_container_network_transmit_bytes_total',
  up: 'kata_monitor_agent_up',
  info: 'kata_monitor_agent_info',
  errors: 'kata_monitor_agent_errors_total',
} as const;

const CONTAINER_HEADERS = {
  cpu: familyHeader(
    F.cpu,
    'counter',
    'CPU time used by a container inside the guest, from the agent (StatsContainer).',
  ),
  memUsage: familyHeader(
    F.memUsage,
    'gauge',
    'Memory used by a container inside the guest (cgroup usage), from the agent.',
  ),
  memLimit: familyHeader(
    F.memLimit,
    'gauge',
    'Memory limit of a container inside the guest (cgroup limit), from the agent.',
  ),
  pids: familyHeader(F.pids, 'gauge', 'Processes (tasks) of a container inside the guest, from the agent.'),
  blkio: familyHeader(
    F.blkio,
    'counter',
    'Bytes of block I/O done by a container inside the guest, by operation.',
  ),
  rx: familyHeader(F.rx, 'counter', 'Bytes received on a guest interface of a container, from the agent.'),
  tx: familyHeader(F.tx, 'counter', 'Bytes sent on a guest interface of a container, from the agent.'),
};

const AGENT_HEADERS = {
  up: familyHeader(
    F.up,
    'gauge',
    'Whether the Kata agent of a sandbox answered its health check as SERVING (1) or not (0).',
  ),
  info: familyHeader(
    F.info,
    'gauge',
    'Kata agent details reported by the guest (GetGuestDetails); value is always 1.',
  ),
  errors: familyHeader(
    F.errors,
    'counter',
    'Failed calls from kata-monitor to the Kata agent of a sandbox, by reason.',
  ),
};

/** Read the container ids of a Go-runtime sandbox: the valid-id sub-directories of its directory. */
export async function containerDirs(dir: string): Promise<string[]> {
  try {
    const entries = await fsp.readdir(dir, { withFileTypes: true });
    return entries
      .filter(e => e.isDirectory() && CONTAINER_ID_RE.test(e.name))
      .map(e => e.name)
      .sort();
  } catch {
    return [];
  }
}

class Cancelled extends Error {}

export interface AgentCollector extends ExtraSource {
  /**
   * Guest containers' summed CPU seconds and memory for a sandbox, from the most recent collection in which
   * the agent answered StatsContainer for every container (the host collector's overhead formula uses it).
   */
  guestUsage(sandboxId: string): { cpuSeconds: number; memoryBytes: number } | undefined;
  close(): Promise<void>;
}

export function createAgentCollector(opts: AgentCollectorOptions): AgentCollector {
  const log = opts.logger.child({ component: 'agent-collector' });
  const mode = opts.agentMetrics ?? 'fallback';
  const collectStats = opts.collectContainerStats ?? true;
  const callTimeoutMs = opts.callTimeoutMs ?? 5000;
  const dialTimeoutMs = opts.dialTimeoutMs ?? 2000;
  const shimMaxBytes = opts.shimMaxBytes ?? 4096;
  const shimTimeoutMs = opts.shimTimeoutMs ?? 1000;
  const deniedRetryMs = opts.deniedRetryMs ?? 5 * 60_000;
  const detailsRefreshMs = opts.detailsRefreshMs ?? 10 * 60_000;
  const now = opts.now ?? Date.now;
  const slices = opts.slices ?? new CpuSlices();
  const concurrency = opts.concurrency ?? AGENT_CONCURRENCY;
  const states = new Map<string, SandboxState>();
  const labelText = new LabelTextCache();
  let closed = false;

  const stateOf = (id: string): SandboxState => {
    let s = states.get(id);
    if (!s) {
      s = { backoff: new Map(), errors: new Map() };
      states.set(id, s);
    }
    return s;
  };

  const dropState = (id: string, s: SandboxState): void => {
    states.delete(id);
    void s.client?.close();
  };

  /** Ask the shim for /agent-url, cache a usable answer. Never rejects. */
  const fetchShimUrl = (sb: SandboxInfo, st: SandboxState, signal: AbortSignal): Promise<void> => {
    st.shimUrlInFlight ??= shimRequest(path.join(sb.dir, SHIM_SOCKET_NAME), '/agent-url', {
      timeoutMs: shimTimeoutMs,
      maxBytes: shimMaxBytes,
      signal,
    })
      .then(res => {
        const url = res.body.toString('utf8').trim();
        if (url === '') return; // runtime-rs answers an empty 200 on error
        parseAgentUrl(url);
        st.shimUrl = url;
      })
      .catch(err => log.debug('no agent url from the shim', { sandbox_id: sb.id, err: getErrorMessage(err) }))
      .finally(() => {
        st.shimUrlInFlight = undefined;
      });
    return st.shimUrlInFlight;
  };

  /** The agent URL: the shim's (cached), else the on-disk one while the shim is asked in the background. */
  const agentUrlOf = async (
    sb: SandboxInfo,
    st: SandboxState,
    signal: AbortSignal,
  ): Promise<string | undefined> => {
    if (st.shimUrl) return st.shimUrl;
    if (sb.agentUrl) {
      void fetchShimUrl(sb, st, signal);
      return sb.agentUrl;
    }
    await fetchShimUrl(sb, st, signal);
    return st.shimUrl;
  };

  const clientFor = (st: SandboxState, url: string): AgentClient => {
    if (st.client && urlKey(st.client) === url) return st.client;
    void st.client?.close();
    st.client = new AgentClient({ url, callTimeoutMs, dialTimeoutMs, vsock: opts.vsock });
    clientUrls.set(st.client, url);
    return st.client;
  };
  const clientUrls = new WeakMap<AgentClient, string>();
  const urlKey = (c: AgentClient): string | undefined => clientUrls.get(c);

  /** Container ids per sandbox directory, reused while the directory's mtime (its entry list) is unchanged. */
  const dirCache = new Map<string, { mtimeMs: number; ids: string[] }>();
  const cachedContainerDirs = async (dir: string): Promise<string[]> => {
    let mtimeMs: number;
    try {
      // One stat instead of a listing per sandbox per scrape; /run is tmpfs, so synchronous is cheaper.
      mtimeMs = fs.statSync(dir).mtimeMs;
    } catch {
      dirCache.delete(dir);
      return [];
    }
    const hit = dirCache.get(dir);
    if (hit && hit.mtimeMs === mtimeMs) return hit.ids;
    const ids = await containerDirs(dir);
    dirCache.set(dir, { mtimeMs, ids });
    return ids;
  };

  const containersOf = async (sb: SandboxInfo): Promise<string[]> => {
    let ids = sb.runtime === 'go' ? [...(await cachedContainerDirs(sb.dir))] : [];
    if (ids.length === 0 && opts.containerIds) ids = [...(await opts.containerIds(sb))];
    return ids;
  };

  interface SandboxResult {
    chunk?: ExpositionChunk;
    up?: number;
    details?: GuestDetailsResponse;
    /** StatsContainer answers in container order; rendered after every sandbox finished, in sandbox order. */
    stats?: Array<[string, LeanContainerStats]>;
  }

  /** Sum of the guest containers' CPU seconds and memory from the last collection that reached the agent. */
  const guestUsageBySandbox = new Map<string, { cpuSeconds: number; memoryBytes: number }>();

  const count = (st: SandboxState, reason: AgentErrorReason): void => {
    st.errors.set(reason, (st.errors.get(reason) ?? 0) + 1);
  };

  /** One agent call of `c`'s sandbox (`id`: the container of StatsContainer). */
  const invoke = <M extends MethodName>(c: SandboxCalls, method: M, id: string): Promise<MethodResult[M]> =>
    (AGENT_CALLS[method] as AgentCall<M>)(c.client!, c, id);

  /**
   * Make one call unless the sandbox's transport broke in this collection or the method is backed off; a
   * failure is counted (once per broken transport) and gives undefined. A collector-level function, not a
   * closure per sandbox: see mapWorker in util/map-limit.ts.
   */
  const attempt = async <M extends MethodName>(
    c: SandboxCalls,
    method: M,
    id = '',
  ): Promise<MethodResult[M] | undefined> => {
    const st = c.st;
    if (c.transportFailed) return undefined;
    if ((st.backoff.get(method) ?? 0) > now()) return undefined;
    try {
      const v = await invoke(c, method, id);
      st.backoff.delete(method);
      return v;
    } catch (err) {
      if (
        err instanceof TtrpcStatusError &&
        err.grpcCode === GrpcCode.NOT_FOUND &&
        method === 'StatsContainer'
      ) {
        return undefined; // the container went away between listing and asking
      }
      const reason = agentErrorReason(err);
      if (reason === 'permission_denied' || reason === 'unimplemented') {
        st.backoff.set(method, now() + deniedRetryMs);
      } else if (!(err instanceof TtrpcStatusError)) {
        c.transportFailed = true;
      }
      count(st, reason);
      log.debug('agent call failed', { sandbox_id: c.sandboxId, method, reason, err: getErrorMessage(err) });
      return undefined;
    }
  };

  async function collectOne(
    sb: SandboxInfo,
    ctx: CollectContext,
    cancelled: Promise<never>,
  ): Promise<SandboxResult> {
    const st = stateOf(sb.id);
    const result: SandboxResult = {};
    // Health, details and container stats run beside the shim scrapes and keep to their deadline; only the
    // fallback GetMetrics, which can start only once the shim failed, may use the collection's longer one.
    const c: SandboxCalls = {
      sandboxId: sb.id,
      st,
      client: undefined,
      callOpts: { deadline: ctx.shimDeadline ?? ctx.deadline, signal: ctx.signal },
      fallbackOpts: { deadline: ctx.deadline, signal: ctx.signal },
      transportFailed: false,
    };

    const wantMetricsNow = mode === 'always';
    const outcomeP: Promise<ShimOutcome | undefined> =
      mode === 'never' ? Promise.resolve(undefined) : Promise.race([ctx.shimOutcome(sb.id), cancelled]);
    outcomeP.catch(() => undefined); // awaited below; early returns must not leave it unhandled

    const url = await agentUrlOf(sb, st, ctx.signal);
    if (!url) {
      count(st, 'unreachable');
      result.up = 0;
      return result;
    }
    let client: AgentClient;
    try {
      client = clientFor(st, url);
    } catch (err) {
      count(st, agentErrorReason(err));
      result.up = 0;
      return result;
    }

    const checkBackedOff = (st.backoff.get('Check') ?? 0) > now();
    c.client = client;
    const status = await attempt(c, 'Check');
    const checkDeniedNow = !checkBackedOff && (st.backoff.get('Check') ?? 0) > now();
    // A Check the agent policy refuses says nothing about health: no agent_up sample then.
    if (!checkBackedOff && !checkDeniedNow) result.up = status === ServingStatus.SERVING ? 1 : 0;

    if (!st.details || now() - st.details.at > detailsRefreshMs) {
      const d = await attempt(c, 'GetGuestDetails');
      if (d) st.details = { value: d, at: now() };
    }
    result.details = st.details?.value;

    if (collectStats) {
      const ids = await containersOf(sb);
      const got: Array<[string, LeanContainerStats]> = [];
      let cpuSeconds = 0;
      let memoryBytes = 0;
      for (const id of ids) {
        const s = await attempt(c, 'StatsContainer', id);
        if (!s) continue;
        got.push([id, s]);
        cpuSeconds += (s.cpuTotalNs ?? 0) / 1e9;
        memoryBytes += s.memory?.usage ?? 0;
      }
      result.stats = got;
      if (got.length > 0 && got.length === ids.length)
        guestUsageBySandbox.set(sb.id, { cpuSeconds, memoryBytes });
      else guestUsageBySandbox.delete(sb.id);
    }

    if (mode !== 'never') {
      let outcome: ShimOutcome | undefined;
      try {
        outcome = await outcomeP;
      } catch (err) {
        if (!(err instanceof Cancelled)) throw err;
        return result;
      }
      const shimFailed = outcome !== undefined && !outcome.ok;
      if (wantMetricsNow || shimFailed) {
        const text = await attempt(c, 'GetMetrics');
        if (text !== undefined) {
          result.chunk = { text, sandbox: sb };
          if (outcome?.ok) result.chunk.skipFamilies = outcome.families;
        }
      }
    }
    return result;
  }

  /** collectOne that never rejects (made once: see mapWorker in util/map-limit.ts). */
  const collectSafely = async (
    sb: SandboxInfo,
    a: { ctx: CollectContext; cancelled: Promise<never> },
  ): Promise<SandboxResult> => {
    try {
      return await collectOne(sb, a.ctx, a.cancelled);
    } catch (err) {
      log.warn('agent collection failed', { sandbox_id: sb.id, err: getErrorMessage(err) });
      return {};
    }
  };

  return {
    name: 'agent',
    guestUsage: (id: string) => guestUsageBySandbox.get(id),
    async collect(ctx: CollectContext): Promise<ExpositionChunk[]> {
      if (closed) return [];
      const present = new Set(ctx.sandboxes.map(s => s.id));
      for (const [id, s] of states) if (!present.has(id)) dropState(id, s);
      const dirs = new Set(ctx.sandboxes.map(s => s.dir));
      for (const dir of dirCache.keys()) if (!dirs.has(dir)) dirCache.delete(dir);

      for (const id of guestUsageBySandbox.keys()) if (!present.has(id)) guestUsageBySandbox.delete(id);
      // One abort listener for the whole collection (not one per sandbox).
      const abort = whenAborted(ctx.signal);
      let results: SandboxResult[];
      try {
        results = await mapLimit(ctx.sandboxes, concurrency, collectSafely, slices, {
          ctx,
          cancelled: abort.promise,
        });
      } finally {
        abort.dispose();
      }

      // Label sets rendered once per sandbox / container and reused while their values are unchanged.
      labelText.retain(present);
      labelText.nextGeneration();
      const up = new FamilyBytes(AGENT_HEADERS.up);
      const info = new FamilyBytes(AGENT_HEADERS.info);
      const errors = new FamilyBytes(AGENT_HEADERS.errors);
      const stats = new ContainerStatsText();
      for (let i = 0; i < ctx.sandboxes.length; i++) {
        // 100 sandboxes' stats are tens of ms of text: written in turns of the shared CPU slices.
        if (slices.due) await slices.turn();
        const sb = ctx.sandboxes[i]!;
        const r = results[i]!;
        const text = labelText.sandbox(sb);
        if (r.up !== undefined) up.line(F.up, text.closed, r.up);
        const infoLabels = r.details ? labelText.info(text, r.details) : undefined;
        if (infoLabels !== undefined) info.line(F.info, infoLabels, 1);
        const st = states.get(sb.id);
        if (st && st.errors.size > 0) {
          for (const [reason, n] of [...st.errors].sort((a, b) => a[0].localeCompare(b[0]))) {
            errors.line(
              F.errors,
              renderLabels([
                ['sandbox_id', sb.id],
                ['reason', reason],
              ]),
              n,
            );
          }
        }
        for (const [id, s] of r.stats ?? []) stats.add(labelText.container(text, id), s);
      }
      labelText.pruneContainers();
      const chunks: ExpositionChunk[] = [];
      for (const r of results) if (r.chunk) chunks.push(r.chunk);
      const text = concatFamilies([up, info, errors, ...stats.families()]);
      if (text.length > 0) chunks.push({ text });
      return chunks;
    },
    async close(): Promise<void> {
      closed = true;
      const pending: Promise<unknown>[] = [];
      for (const [id, s] of states) {
        if (s.shimUrlInFlight) pending.push(s.shimUrlInFlight);
        if (s.client) pending.push(s.client.close());
        states.delete(id);
      }
      await Promise.allSettled(pending);
    },
  };
}

/**
 * A promise that rejects with Cancelled once `signal` aborts (never resolves), shared by every sandbox of a
 * collection; `dispose` removes its listener. Its rejection is marked handled: racing it is optional.
 */
function whenAborted(signal: AbortSignal): { promise: Promise<never>; dispose(): void } {
  if (signal.aborted) {
    const promise = Promise.reject(new Cancelled('aborted'));
    promise.catch(() => undefined);
    return { promise, dispose: () => undefined };
  }
  let onAbort: () => void = () => undefined;
  const promise = new Promise<never>((_resolve, reject) => {
    onAbort = (): void => reject(new Cancelled('aborted'));
  });
  promise.catch(() => undefined);
  signal.addEventListener('abort', onAbort, { once: true });
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}
