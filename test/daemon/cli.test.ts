/**
 * The real binary (`bin/kata-monitor` → dist/cli.js; `npm test` builds dist first).
 */
import { loadMallocBinding } from '../../src/malloc-tuning';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rmrf, tmpDir, waitFor } from '../helpers/util';
import { get, hexId, makeGoSandbox } from './fixtures';

const REPO = path.resolve(__dirname, '..', '..');
const BIN = path.join(REPO, 'bin', 'kata-monitor');

function runBin(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('kata-monitor binary', () => {
  it.each([['--version'], ['-version'], ['version']])('%s prints the version and exits 0', arg => {
    const r = runBin([arg]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /^kata-monitor\n Version:\t\d+\.\d+\.\d+.*\n Node version:\tv\d+.*\n Git commit:\t.*\n OS\/Arch:\t\w+\/\w+\n$/,
    );
  });

  it('--help prints usage and exits 0', () => {
    const r = runBin(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--sandbox-roots');
  });

  it.each([
    [
      ['--log-level', 'loud'],
      /^kata-monitor: invalid value "loud" for flag -log-level: want one of trace\|debug/,
    ],
    [['-shim-timeout=3'], /^kata-monitor: invalid value "3" for flag -shim-timeout: want a Go duration/],
    [['--listen-adress', ':1'], /^kata-monitor: flag provided but not defined: -listen-adress/],
    [
      ['--runtime-endpoint', 'http://x'],
      /^kata-monitor: invalid value "http:\/\/x" for flag -runtime-endpoint/,
    ],
  ])('%j: one-line error naming the flag, usage, exit 2', (args, first) => {
    const r = runBin(args);
    expect(r.status).toBe(2);
    const lines = r.stderr.split('\n');
    expect(lines[0]).toMatch(first);
    expect(r.stderr).toContain('Usage: kata-monitor [flags]');
    expect(r.stdout).toBe('');
  });

  describe('running', () => {
    let dir: string;
    let child: ChildProcess | undefined;
    afterEach(() => {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      child = undefined;
      rmrf(dir);
    });

    /** The binary started with `nodeArgs` for node and `args` for it, once it listens; its JSON log records. */
    async function startBin(
      nodeArgs: string[],
      args: string[],
    ): Promise<{ records: () => Record<string, unknown>[]; url: string; exited: Promise<number | null> }> {
      child = spawn(process.execPath, [...nodeArgs, BIN, '-listen-address', '127.0.0.1:0', ...args], {
        cwd: REPO,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<number | null>(resolve => child?.once('exit', code => resolve(code)));
      const records = (): Record<string, unknown>[] =>
        stderr
          .split('\n')
          .filter(Boolean)
          .map(l => JSON.parse(l) as Record<string, unknown>);
      const listening = await waitFor(
        () => records().find(r => r.msg === 'listening'),
        15_000,
        50,
        'listening',
      );
      return { records, url: String(listening?.url), exited };
    }

    it('announces itself, serves, and drains on SIGTERM with exit 0', async () => {
      dir = tmpDir('km-cli-');
      const goRoot = path.join(dir, 'vc', 'sbs');
      makeGoSandbox(goRoot, hexId(1));
      const { records, url, exited } = await startBin(
        [],
        [`--sandbox-roots=${goRoot},${dir}/kata`, '--runtime-endpoint', path.join(dir, 'cri.sock')],
      );
      const announce = records().find(r => r.announce === true);
      expect(announce).toMatchObject({
        level: 'info',
        version: expect.any(String),
        commit: expect.any(String),
      });
      expect((announce?.config as Record<string, unknown>).sandbox_roots).toEqual([
        `go:${goRoot}`,
        `rs:${dir}/kata`,
      ]);
      expect(records().some(r => r.level === 'warn' && /deprecated/.test(String(r.msg)))).toBe(true);
      const r = await get(url + '/sandboxes');
      expect(r.body).toBe(hexId(1) + '\n');
      child?.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(fs.existsSync(goRoot)).toBe(true);
    });

    /** Start the binary, wait until it listens, stop it with SIGTERM (exit 0); its log records. */
    async function startAndStop(nodeArgs: string[], args: string[]): Promise<Record<string, unknown>[]> {
      dir = tmpDir('km-cli-');
      const { records, exited } = await startBin(nodeArgs, [`--sandbox-roots=${dir}/vc/sbs`, ...args]);
      child?.kill('SIGTERM');
      expect(await exited).toBe(0);
      return records();
    }

    it('sets the small-heap V8 flags at startup, leaving those given to node to the operator', async () => {
      const records = await startAndStop(['--heap-growing-percent=80'], ['--log-level=debug']);
      expect(records.find(r => r.msg === 'V8 heap flags set')?.flags).toEqual([
        '--semi-space-growth-factor=1',
      ]);
      const malloc = records.find(r => String(r.msg).startsWith('malloc mmap threshold'));
      if (typeof loadMallocBinding() === 'string')
        expect(malloc?.msg).toBe('malloc mmap threshold left as is');
      else expect(malloc).toMatchObject({ msg: 'malloc mmap threshold set', bytes: 65536 });
      expect((records.find(r => r.announce === true)?.config as Record<string, unknown>).small_heap).toBe(
        true,
      );
    });

    it('--small-heap=false leaves the V8 defaults alone', async () => {
      const records = await startAndStop([], ['--log-level=debug', '--small-heap=false']);
      expect(records.some(r => r.msg === 'V8 heap flags set')).toBe(false);
      expect(records.some(r => String(r.msg).startsWith('malloc mmap threshold'))).toBe(false);
      expect((records.find(r => r.announce === true)?.config as Record<string, unknown>).small_heap).toBe(
        false,
      );
    });
  });
});
