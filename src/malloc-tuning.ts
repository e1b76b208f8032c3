/**
 * The C heap half of `--small-heap`: glibc's mmap threshold, set to 64 KiB at startup through the optional
 * addon native/malloc (`mallopt(M_MMAP_THRESHOLD)`).
 *
 * Shim bodies are tens of KB and live in pooled Buffers whose memory comes from malloc. Below glibc's default
 * threshold (128 KiB) they are carved from its main heap, between the small blocks node and the sample tables
 * free at every GC, and that heap keeps the holes resident. From 64 KiB up, each block gets its own mapping,
 * which goes back to the kernel when it is freed; the pool reuses bodies, so few such maps are made. Measured
 * at 100 sandboxes: docs/performance.md.
 *
 * glibc reads `MALLOC_MMAP_THRESHOLD_` itself at startup: an operator who sets it (or who runs the image,
 * which sets it for a node without a compiler to build the addon) keeps their value. Without the addon, or on
 * a C library without mallopt, nothing changes and the reason goes to the startup log.
 */
import * as path from 'node:path';
import { getErrorMessage } from './errors';

export const MMAP_THRESHOLD_BYTES = 64 * 1024;

/** The environment variable glibc reads for the same setting. */
export const MMAP_THRESHOLD_ENV = 'MALLOC_MMAP_THRESHOLD_';

export interface MallocBinding {
  /** True when the C library took the setting. */
  setMmapThreshold(bytes: number): boolean;
}

/** Where native/build.sh puts the addon, relative to src/ or dist/. */
export const MALLOC_ADDON_PATH = path.resolve(
  __dirname,
  '..',
  'native',
  'malloc',
  'build',
  'Release',
  'malloc_tune.node',
);

export type MallocTuning = { applied: true; bytes: number } | { applied: false; reason: string };

/** Load the addon; a string says why it cannot be used. Never throws. */
export function loadMallocBinding(addonPath: string = MALLOC_ADDON_PATH): MallocBinding | string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(addonPath) as Partial<MallocBinding>;
    if (typeof mod.setMmapThreshold !== 'function') return `${addonPath} does not export setMmapThreshold`;
    return mod as MallocBinding;
  } catch (err) {
    return getErrorMessage(err).split('\n')[0] ?? 'load failed';
  }
}

/** Set the threshold unless the operator set it; reports what was done (for the startup log). */
export function applyMallocTuning(
  env: NodeJS.ProcessEnv = process.env,
  load: () => MallocBinding | string = loadMallocBinding,
): MallocTuning {
  if (env[MMAP_THRESHOLD_ENV] !== undefined) {
    return { applied: false, reason: `${MMAP_THRESHOLD_ENV} is set in the environment` };
  }
  const binding = load();
  if (typeof binding === 'string') return { applied: false, reason: `addon unavailable: ${binding}` };
  if (!binding.setMmapThreshold(MMAP_THRESHOLD_BYTES)) {
    return { applied: false, reason: 'the C library does not take mallopt(M_MMAP_THRESHOLD)' };
  }
  return { applied: true, bytes: MMAP_THRESHOLD_BYTES };
}
