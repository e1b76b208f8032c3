/**
 * Which directory names are sandboxes. Pure.
 *
 * Rule (documented in docs/configuration.md):
 * - the name must match `^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$` (so `..`, names with `/`, `%` or spaces never
 *   become sandbox ids, and no path built from an id can leave its root);
 * - Go roots (`/run/vc/sbs`): every such directory is a sandbox (the Go runtime keeps nothing else there);
 * - runtime-rs roots (`/run/kata`): runtime-rs also creates helper directories there (jailed Firecracker
 *   makes `/run/kata/firecracker/<id>/`), so a directory counts only when its name is a 64-hex id (what
 *   containerd and CRI-O generate) or it already holds `state.json` or `shim-monitor.sock`.
 */
import type { Runtime } from '../types';

const SANDBOX_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;

export function isValidSandboxId(id: unknown): id is string {
  return typeof id === 'string' && SANDBOX_ID_RE.test(id);
}

/** What a directory under a root is. `maybe`: valid name but not (yet) proven a runtime-rs sandbox. */
export type EntryVerdict = 'sandbox' | 'maybe' | 'ignore';

export function classifyEntry(
  runtime: Runtime,
  name: string,
  contents: { hasStateJson: boolean; hasShimSocket: boolean },
): EntryVerdict {
  if (!isValidSandboxId(name)) return 'ignore';
  if (runtime === 'go') return 'sandbox';
  if (HEX64_RE.test(name) || contents.hasStateJson || contents.hasShimSocket) return 'sandbox';
  return 'maybe';
}
