/**
 * The host file readers: synchronous small-file reads (short and multi-chunk files, failures as values),
 * fd counting by stat vs by listing, and mapLimit's order, concurrency and yielding.
 */
import { mapLimit } from '../../src/util/map-limit';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  countEntries,
  countFds,
  fdCountFromStatWorks,
  readParsedSync,
  readTextSync,
} from '../../src/host/fs-read';
import { rmrf, tmpDir, waitFor } from '../helpers/util';

let dir: string;
let children: ChildProcess[];

beforeEach(() => {
  dir = tmpDir('kfr-');
  children = [];
});

afterEach(async () => {
  await Promise.all(
    children.map(
      c =>
        new Promise<void>(resolve => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGKILL');
        }),
    ),
  );
  rmrf(dir);
});

describe('readTextSync', () => {
  it('reads short files and files larger than one read chunk, byte for byte', () => {
    const small = path.join(dir, 'small');
    fs.writeFileSync(small, 'Threads:\t7\n');
    expect(readTextSync(small)).toEqual({ ok: true, value: 'Threads:\t7\n' });
    // 16 KiB is the chunk size: exactly one chunk, and several chunks plus a tail.
    for (const size of [16 * 1024, 40 * 1024 + 17]) {
      const big = path.join(dir, `big-${size}`);
      const text = Array.from({ length: size }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
      fs.writeFileSync(big, text);
      const r = readTextSync(big);
      expect(r.ok && r.value).toBe(text);
    }
  });

  it('reads /proc files to their end (they report size 0)', () => {
    const r = readTextSync('/proc/self/status');
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value).toMatch(/^Threads:\s+\d+$/m);
  });

  it('returns failures as reasons, and parser exceptions as `parse`', () => {
    const r = readTextSync(path.join(dir, 'missing'));
    expect(r).toMatchObject({ ok: false, reason: 'gone' });
    const f = path.join(dir, 'f');
    fs.writeFileSync(f, 'x');
    const p = readParsedSync(f, () => {
      throw new Error('bad');
    });
    expect(p).toEqual({ ok: false, reason: 'parse', message: 'bad' });
  });
});

describe('countFds', () => {
  it('never trusts a directory size outside a real procfs', async () => {
    fs.mkdirSync(path.join(dir, 'self', 'fd'), { recursive: true });
    expect(fdCountFromStatWorks(dir)).toBe(false);
    const fdDir = path.join(dir, 'self', 'fd');
    for (const n of ['0', '1', '2', '5']) fs.writeFileSync(path.join(fdDir, n), '');
    expect(await countFds(fdDir, false)).toEqual({ ok: true, value: 4 });
    expect(await countEntries(fdDir)).toEqual({ ok: true, value: 4 });
  });

  it('gives the same count by stat as by listing for a live process', async () => {
    // A process with a known, stable fd table: stdin/stdout/stderr on /dev/null and two extra fds.
    const null1 = fs.openSync('/dev/null', 'r');
    const null2 = fs.openSync('/dev/null', 'r');
    let child: ChildProcess;
    try {
      child = spawn('sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore', null1, null2] });
    } finally {
      fs.closeSync(null1);
      fs.closeSync(null2);
    }
    children.push(child);
    const fdDir = `/proc/${child.pid}/fd`;
    await waitFor(() => fs.readlinkSync(`/proc/${child.pid}/exe`).endsWith('sleep'));
    const listed = await countFds(fdDir, false);
    // At least the five it was given (the test runner may pass an inherited fd along).
    expect(listed.ok && listed.value).toBeGreaterThanOrEqual(5);
    const bySize = fdCountFromStatWorks('/proc');
    // The child's fd table can still settle right after exec (inherited descriptors being closed), so compare
    // a stat count with a listing taken around it until the two readings of the same moment agree.
    await waitFor(
      async () => {
        const before = await countFds(fdDir, false);
        const stat = await countFds(fdDir, bySize);
        const after = await countFds(fdDir, false);
        return (
          JSON.stringify(before) === JSON.stringify(after) && JSON.stringify(stat) === JSON.stringify(before)
        );
      },
      3000,
      50,
      'stat and listing agree on a settled fd table',
    );
  });

  it('reports a vanished process as gone either way', async () => {
    for (const bySize of [false, true]) {
      expect(await countFds('/proc/999999999/fd', bySize)).toMatchObject({ ok: false, reason: 'gone' });
    }
  });
});

describe('mapLimit', () => {
  it('keeps input order, bounds concurrency and lets timers run while it works', async () => {
    let inFlight = 0;
    let peak = 0;
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      const out = await mapLimit(
        Array.from({ length: 40 }, (_, i) => i),
        3,
        async i => {
          inFlight++;
          peak = Math.max(peak, inFlight);
          // Synchronous work only, like the host reads: without mapLimit's yields no timer could fire.
          const until = Date.now() + 2;
          while (Date.now() < until);
          await Promise.resolve();
          inFlight--;
          return i * 2;
        },
      );
      expect(out).toEqual(Array.from({ length: 40 }, (_, i) => i * 2));
      expect(peak).toBeLessThanOrEqual(3);
      expect(ticks).toBeGreaterThan(0);
    } finally {
      clearInterval(timer);
    }
  });
});
