/**
 * Host CPU count and memory size, from systeminformation (`si.cpu().cores`, `si.mem().total`).
 * Asked once at the first collection, then refreshed in the background at most every `refreshMs`
 * (these numbers change only with CPU/memory hotplug). systeminformation is loaded at that first query,
 * not with the daemon: a daemon without the host collector never loads it.
 *
 * Only its `cpu` and `memory` modules are loaded (with its `util`), not the package index: the index loads all
 * of its 20-odd modules, whose sources V8 keeps in the heap (0.9 MB of strings, heap snapshots of the daemon at
 * 100 sandboxes). The package has no `exports` map, so these paths are loadable; a test checks that they give
 * what the index gives, so an upgrade that moves them fails there.
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

/** The systeminformation modules used, and the part of their API used (the package's own typings). */
export const SI_CPU_MODULE = 'systeminformation/lib/cpu';
export const SI_MEMORY_MODULE = 'systeminformation/lib/memory';
type SiCpu = Pick<typeof import('systeminformation'), 'cpu'>;
type SiMemory = Pick<typeof import('systeminformation'), 'mem'>;

async function querySystem(): Promise<HostFacts> {
  const cpuModule = (await import(SI_CPU_MODULE)) as SiCpu;
  const memoryModule = (await import(SI_MEMORY_MODULE)) as SiMemory;
  const [cpu, mem] = await Promise.all([cpuModule.cpu(), memoryModule.mem()]);
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
