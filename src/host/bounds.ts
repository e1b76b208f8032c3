/**
 * Physical sanity bounds for host samples (pure). A sample outside them is dropped and counted in
 * `kata_monitor_invalid_samples_total{family}` (operator demand K17: upstream once reported negative CPU and
 * 1.8e19 bytes of memory).
 */

/** Headroom for measurement skew between files read at slightly different instants (10 %). */
export const CPU_RATE_SLACK = 1.1;
/** Absolute headroom in CPU seconds (a few clock ticks of rounding). */
export const CPU_ABS_SLACK_SECONDS = 0.05;

export interface HostFacts {
  /** Logical CPUs of the host. */
  cpus: number;
  /** Physical memory of the host, bytes. */
  memoryBytes: number;
}

/** Finite and not negative. */
export function isSaneNumber(v: number): boolean {
  return Number.isFinite(v) && v >= 0;
}

/** A memory amount (resident, working set, overhead): sane and no larger than the host's memory. */
export function isValidMemoryBytes(v: number, facts: HostFacts): boolean {
  return isSaneNumber(v) && v <= facts.memoryBytes;
}

/**
 * CPU seconds accumulated by a process that has been alive `ageSeconds`: it cannot exceed what all host CPUs
 * could give it in that time. `ageSeconds` undefined (uptime unreadable): only the sanity check applies.
 */
export function isValidProcessCpu(
  cpuSeconds: number,
  ageSeconds: number | undefined,
  facts: HostFacts,
): boolean {
  if (!isSaneNumber(cpuSeconds)) return false;
  if (ageSeconds === undefined || !Number.isFinite(ageSeconds)) return true;
  return cpuSeconds <= Math.max(0, ageSeconds) * facts.cpus * CPU_RATE_SLACK + CPU_ABS_SLACK_SECONDS;
}

/**
 * A CPU-seconds counter that went from `prev` to `cur` in `elapsedSeconds` of wall time: growth faster than all
 * host CPUs allow is invalid. A decrease is a counter reset (new cgroup, restarted process) and is allowed.
 */
export function isValidCpuGrowth(
  prev: number,
  cur: number,
  elapsedSeconds: number,
  facts: HostFacts,
): boolean {
  if (!isSaneNumber(cur)) return false;
  if (!isSaneNumber(prev) || cur <= prev) return true;
  return cur - prev <= Math.max(0, elapsedSeconds) * facts.cpus * CPU_RATE_SLACK + CPU_ABS_SLACK_SECONDS;
}

/** Host usage minus guest usage, clamped at 0 (guest and host are read at different instants). */
export function overhead(host: number, guest: number): number {
  return Math.max(0, host - guest);
}
