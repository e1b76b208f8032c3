/**
 * Spawns the real `bin/kata-sim`, which runs dist/: `npm test` builds first (package.json `pretest`);
 * when running jest directly, run `npm run build` before.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseSimArgs } from '../../src/sim/cli';
import { rmrf, tmpDir } from '../helpers/util';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'kata-sim');

function requireBuild(): void {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'sim', 'cli.js'))) {
    throw new Error('dist/sim/cli.js missing: run `npm run build` (npm test does it in pretest)');
  }
}

describe('parseSimArgs', () => {
  it('maps flags to node options', () => {
    const r = parseSimArgs([
      '--dir',
      '/d',
      '--sandboxes',
      '4',
      '--rs',
      '2',
      '--faults',
      '0:hang',
      '--seed',
      '9',
      '--cri-lag',
      '300',
      '--churn-every',
      '5',
    ]);
    expect(r).toEqual({
      help: false,
      options: expect.objectContaining({
        dir: '/d',
        sandboxes: 4,
        rs: 2,
        seed: 9,
        criLagMs: 300,
        churnEverySec: 5,
        faults: [{ target: { index: 0 }, shim: { kind: 'hang' } }],
      }),
      hooks: { dir: '/d', agents: true, processes: 'light' },
    });
    expect(parseSimArgs(['--dir', '/d', '--no-agents', '--processes', 'none'])).toMatchObject({
      hooks: { agents: false, processes: 'none' },
    });
    expect(parseSimArgs(['--help'])).toEqual({ help: true });
  });
  it.each([
    [['--sandboxes', '2']],
    [['--dir', '/d', '--sandboxes', 'x']],
    [['--dir', '/d', '--bogus']],
    [['--dir', '/d', '--faults', '1:nope']],
    [['--dir', '/d', '--processes', 'heavy']],
  ])('rejects %j', argv => {
    expect(() => parseSimArgs(argv)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});

describe('kata-sim CLI', () => {
  let dir: string;
  let child: ChildProcess | undefined;

  beforeEach(() => {
    dir = tmpDir('k-');
  });
  afterEach(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    child = undefined;
    rmrf(dir);
  });

  it('prints the summary as one JSON line, then cleans up and exits 0 on SIGTERM', async () => {
    requireBuild();
    const nodeDir = path.join(dir, 'n');
    child = spawn(process.execPath, [BIN, '--dir', nodeDir, '--sandboxes', '3', '--rs', '1', '--seed', '5'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr!.on('data', d => (err += d));
    const line = await new Promise<string>((resolve, reject) => {
      child!.stdout!.on('data', d => {
        out += d;
        if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
      });
      child!.on('exit', code => reject(new Error(`exited ${code}: ${err}`)));
    });
    const summary = JSON.parse(line);
    expect(summary.sandboxes).toHaveLength(4);
    expect(summary.criSocket).toBe(path.join(nodeDir, 'cri.sock'));
    expect(fs.statSync(summary.sandboxes[0].shimSocket).isSocket()).toBe(true);
    const exited = new Promise<number | null>(resolve => child!.on('exit', code => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(fs.existsSync(nodeDir)).toBe(false);
  });

  it('bad flags: one-line error and usage on stderr, exit 2', () => {
    requireBuild();
    const r = spawnSync(process.execPath, [BIN, '--dir', dir, '--sandboxes', 'many'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(/^kata-sim: --sandboxes must be an integer/);
    expect(r.stderr).toContain('usage: kata-sim');
    expect(r.stdout).toBe('');
  });
});
