/**
 * OpenFileReader on the real /proc: reads go through a held descriptor (same text as a fresh read), a process
 * that exits fails the read as `gone` (the held fd is dropped, the path reopened), unused descriptors are
 * closed by sweep(), and everything by closeAll().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { OpenFileReader, readTextSync } from '../../src/host/fs-read';
import { parseProcStat } from '../../src/host/proc-parse';

const children: ChildProcess[] = [];
const readers: OpenFileReader[] = [];

function sleeper(): ChildProcess {
  const c = spawn('sleep', ['30'], { stdio: 'ignore' });
  children.push(c);
  return c;
}

const exited = (c: ChildProcess): Promise<void> =>
  c.exitCode !== null || c.signalCode !== null
    ? Promise.resolve()
    : new Promise(r => c.once('exit', () => r()));

afterEach(async () => {
  for (const r of readers.splice(0)) r.closeAll();
  for (const c of children.splice(0)) {
    c.kill('SIGKILL');
    await exited(c);
  }
});

const ownFds = (): number => fs.readdirSync('/proc/self/fd').length;

describe('OpenFileReader', () => {
  it('reads /proc/<pid>/stat through one held descriptor, as a fresh read would', () => {
    const c = sleeper();
    const r = new OpenFileReader();
    readers.push(r);
    const file = `/proc/${c.pid}/stat`;
    const before = ownFds();
    const a = r.readParsed(file, parseProcStat);
    const b = r.readParsed(file, parseProcStat);
    expect(a.ok && b.ok).toBe(true);
    expect(r.size).toBe(1);
    expect(ownFds()).toBe(before + 1);
    const fresh = readTextSync(file);
    expect(fresh.ok && a.ok && b.ok && parseProcStat(fresh.value).startTimeTicks).toBe(
      a.ok && a.value.startTimeTicks,
    );
  });

  it('fails as gone once the process exited and drops its descriptor', async () => {
    const c = sleeper();
    const r = new OpenFileReader();
    readers.push(r);
    const file = `/proc/${c.pid}/statm`;
    expect(r.readText(file).ok).toBe(true);
    c.kill('SIGKILL');
    await exited(c); // reaped: the pid directory is gone
    const after = r.readText(file);
    expect(after.ok).toBe(false);
    expect(!after.ok && after.reason).toBe('gone');
    expect(r.size).toBe(0);
  });

  it('sweep closes descriptors not read since the previous sweep; closeAll closes the rest', () => {
    const a = sleeper();
    const b = sleeper();
    const r = new OpenFileReader();
    readers.push(r);
    const before = ownFds();
    r.readText(`/proc/${a.pid}/stat`);
    r.readText(`/proc/${b.pid}/stat`);
    r.sweep(); // both were read in this round: kept
    expect(r.size).toBe(2);
    r.readText(`/proc/${a.pid}/stat`);
    r.sweep(); // b was not read: closed
    expect(r.size).toBe(1);
    expect(ownFds()).toBe(before + 1);
    r.closeAll();
    expect(r.size).toBe(0);
    expect(ownFds()).toBe(before);
  });

  it('reports a file that cannot be opened without holding anything', () => {
    const r = new OpenFileReader();
    readers.push(r);
    const res = r.readText('/proc/0/stat');
    expect(!res.ok && res.reason).toBe('gone');
    expect(r.size).toBe(0);
  });
});
