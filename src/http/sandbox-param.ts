/**
 * The `?sandbox=ID` query key, checked before anything touches the filesystem: the id must be well formed
 * (isValidSandboxId) AND a sandbox the daemon knows. Only then is a socket path built, from the store's
 * own directory for that sandbox. Pure.
 */
import { KataMonitorError } from '../errors';
import { isValidSandboxId } from '../discovery/sandbox-id';
import type { SandboxInfo } from '../types';

export interface SandboxLookup {
  get(id: string): SandboxInfo | undefined;
  list(): SandboxInfo[];
}

export function resolveSandboxParam(value: unknown, sandboxes: SandboxLookup): SandboxInfo {
  if (value === undefined || value === '') {
    throw new KataMonitorError('SANDBOX_ID_INVALID', 'missing sandbox query parameter: want ?sandbox=ID');
  }
  if (!isValidSandboxId(value)) {
    throw new KataMonitorError(
      'SANDBOX_ID_INVALID',
      'malformed sandbox id: want 1-128 characters of [A-Za-z0-9_.-], not starting with . _ or -',
    );
  }
  const sb = sandboxes.get(value);
  if (!sb) {
    throw new KataMonitorError('SANDBOX_UNKNOWN', `unknown sandbox ${value}: it may be stopped or deleted`);
  }
  return sb;
}
