/**
 * Host CPU count and memory size, from systeminformation (`si.cpu().cores`, `si.mem().total`).
 * Asked once at the first collection, then refreshed in the background at most every `refreshMs`
 * (these numbers change only with CPU/memory hotplug). systeminformation is loaded at that first query,
 * not with the daemon: a daemon without the host collector never loads it (its code is about 1.3 MB of heap and 2 MB resident).
 */
import type { Logger } from '../log';
import type { HostFacts } from './bounds';

export interface HostFactsProvider {
  /** The facts; the first call waits for systeminformation, later calls answer from the cache. */
  get(): Promise<HostFacts | undefined>;
}

export const DEFAULT_HOST_FACTS_REFRESH_MS = 60 * 60 * 1000;

export function fixedHostFacts(facts: HostFacts): HostFactsProvider {
  const frozen = Object.freeze({ ...facts });
  return { get: () => Promise.resolve(frozen) };
}

async function querySystem(): Promise<HostFacts> {
  const si = await import('systeminformation');
  const [cpu, mem] = await Promise.all([si.cpu(), si.mem()]);
  return { cpus: cpu.cores, memoryBytes: mem.total };
}

export function systemHostFacts(
  logger: Logger,
  refreshMs = DEFAULT_HOST_FACTS_REFRESH_MS,
  query: () => Promise<HostFacts> = querySystem,
): HostFactsProvider {
  let cached: HostFacts | undefined;
  let fetchedAt = -Infinity;
  let inflight: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    inflight ??= query()
      .then(f => {
        if (Number.isFinite(f.cpus) && f.cpus > 0 && Number.isFinite(f.memoryBytes) && f.memoryBytes > 0) {
          cached = f;
        } else {
          logger.warn('systeminformation gave unusable host facts; keeping the previous ones', { facts: f });
        }
      })
      .catch((err: unknown) => logger.warn('systeminformation failed', { err }))
      .finally(() => {
        fetchedAt = performance.now();
        inflight = undefined;
      });
    return inflight;
  };
  return {
    async get() {
      if (cached === undefined) {
        // Not known yet (or the first query failed): ask again, but not more than once a minute.
        if (inflight || performance.now() - fetchedAt >= 60_000) await refresh();
      } else if (performance.now() - fetchedAt >= refreshMs) {
        void refresh();
      }
      return cached;
    },
  };
}
