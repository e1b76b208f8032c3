/**
 * The V8 heap settings of the `kata-monitor` process (`--small-heap`, on by default).
 *
 * Node's defaults suit a throughput server: the young generation grows to 16 MB semi-spaces (32 MB resident
 * once a scrape has run) and the old generation is allowed to reach about three times its live data before a
 * full GC. A scrape at 100 sandboxes allocates 10-15 MB, most of which lives until the scrape ends, so with the
 * defaults the daemon peaks at 130-220 MB resident with under 20 MB of live heap (docs/performance.md).
 *
 * Both settings are V8 flags that V8 reads whenever it sizes a space, so they take effect when set at
 * startup from inside the process (`v8.setFlagsFromString`); the heap limits V8 fixes when it creates the
 * isolate are not touched. A flag the operator already gave node on its command line wins (node refuses
 * both in NODE_OPTIONS). A Node whose V8 no longer knows one of them prints V8's `unrecognized flag` line on
 * stderr and goes on with its default: test/daemon/heap-tuning.test.ts checks that `node --v8-options` of the
 * Node running the tests lists both.
 * Measured cost and gain: docs/performance.md.
 */
import * as v8 from 'node:v8';

/** The flags of the small-heap profile. */
export const SMALL_HEAP_FLAGS: readonly string[] = [
  // Keep the young generation at its initial 1 MB semi-spaces (V8 doubles them while objects survive).
  '--semi-space-growth-factor=1',
  // Start a full GC once the old generation grew 60 % over what the last one left live (instead of up to 4×).
  '--heap-growing-percent=60',
];

/** The flag's name (`--heap-growing-percent`) of `--name=value`. */
function nameOf(flag: string): string {
  const eq = flag.indexOf('=');
  return (eq === -1 ? flag : flag.slice(0, eq)).replace(/_/g, '-');
}

/**
 * The flags of `profile` the operator did not set themselves (pure): a flag named in node's own arguments
 * (either spelling, `-` or `_`) is left to them.
 */
export function flagsToApply(profile: readonly string[], execArgv: readonly string[]): string[] {
  const given = new Set<string>();
  for (const a of execArgv) if (a.startsWith('--')) given.add(nameOf(a));
  return profile.filter(f => !given.has(nameOf(f)));
}

/** Apply the small-heap profile to this process; returns the flags set (for the startup log). */
export function applySmallHeap(execArgv: readonly string[] = process.execArgv): string[] {
  const flags = flagsToApply(SMALL_HEAP_FLAGS, execArgv);
  for (const f of flags) v8.setFlagsFromString(f);
  return flags;
}
