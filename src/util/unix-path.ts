/**
 * Unix socket paths longer than the kernel's limit (`sun_path`: 108 bytes with the terminating NUL).
 *
 * Kata's own paths fit (`/run/vc/firecracker/<64 hex>/root/kata.hvsock` is 104 bytes), but the same layout under
 * a longer root (a test or demo directory, a container's host mount such as `/host/run`) does not, and
 * connect()/bind() then fail or, worse, silently use a truncated path. For such a path we open its directory
 * and go through `/proc/self/fd/<fd>/<name>`, which the kernel resolves to the same socket file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Longest path `connect(2)`/`bind(2)` accept for a unix socket on Linux, in bytes. */
export const UNIX_PATH_MAX = 107;

export interface UsableUnixPath {
  /** A path short enough for connect/bind that names the same socket file. */
  path: string;
  /** Release the directory descriptor once connect/bind has completed (or failed). Idempotent. */
  release(): void;
}

/**
 * A connectable form of `socketPath`. Short paths are returned as they are. Throws the fs error (e.g. ENOENT)
 * when a long path's directory cannot be opened.
 */
export function usableUnixPath(socketPath: string): UsableUnixPath {
  if (Buffer.byteLength(socketPath) <= UNIX_PATH_MAX || process.platform !== 'linux') {
    return { path: socketPath, release: () => undefined };
  }
  const fd = fs.openSync(path.dirname(socketPath), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  let open = true;
  return {
    path: `/proc/self/fd/${fd}/${path.basename(socketPath)}`,
    release: () => {
      if (!open) return;
      open = false;
      try {
        fs.closeSync(fd);
      } catch {
        /* already closed */
      }
    },
  };
}
