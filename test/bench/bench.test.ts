/**
 * The bench driver (dist/bench/bench.js; `npm test` builds dist first), run for real at 10 sandboxes in its
 * quick mode: the table it writes, and that `--daemon-flag` reaches the daemon. No figure is judged here:
 * speed is measured by `npm run bench`, never asserted by a test.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rmrf, tmpDir } from '../helpers/util';

const REPO = path.resolve(__dirname, '..', '..');
const BENCH = path.join(REPO, 'dist', 'bench', 'bench.js');

function runBench(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BENCH, ...args], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('npm run bench', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir('kbt-');
  });
  afterEach(() => rmrf(dir));

  it('writes a results table, and passes --daemon-flag to every daemon it starts', () => {
    const out = path.join(dir, 'results.md');
    // With the host collector off, the table's host collection column has nothing to show.
    const r = runBench(['--sizes', '10', '--quick', '--out', out, '--daemon-flag', '--collect-host=false']);
    expect(r.status).toBe(0);
    const md = fs.readFileSync(out, 'utf8');
    expect(md).toContain('Every daemon also ran with `--collect-host=false`.');
    const rows = md.split('\n').filter(l => l.startsWith('| healthy |'));
    expect(rows).toHaveLength(1);
    const cells = rows[0]!.split('|').map(c => c.trim());
    const head = md
      .split('\n')
      .find(l => l.startsWith('| scenario |'))!
      .split('|')
      .map(c => c.trim());
    const cell = (name: string): string => cells[head.indexOf(name)]!;
    // header, delimiter and data rows have the same number of cells (else Markdown shows no table)
    const delimiter = md.split('\n').find(l => l.startsWith('|---'))!;
    expect(delimiter.split('|').length).toBe(head.length);
    expect(cells.length).toBe(head.length);
    expect(cell('sandboxes')).toBe('10');
    expect(cell('sandboxes up')).toBe('10');
    expect(Number(cell('samples'))).toBeGreaterThan(5000); // about 860 per shim plus the daemon's own
    expect(cell('plain p50')).toMatch(/^\d+(\.\d)? ms$/);
    expect(cell('CPU per scrape (plain / gzip)')).toMatch(/^\d+(\.\d)? ms \(\d+ \/ \d+\)$/);
    expect(cell('CPU, warm-up scrapes')).toMatch(/^\d+ ms$/);
    expect(cell('peak RSS')).toMatch(/^\d+ MB$/);
    expect(cell('/healthz p99')).toMatch(/^\d+(\.\d)? ms$/);
    expect(cell('host collection')).toBe('–');
  }, 150_000);

  it('compares this build with another on one simulator in pair mode (--against)', () => {
    const out = path.join(dir, 'pair.md');
    const results = path.join(REPO, 'bench', 'results.md');
    const before = fs.statSync(results).mtimeMs;
    // This checkout against itself: both daemons are real, each measured around its own scrapes.
    const r = runBench(['--against', REPO, '--sizes', '10', '--quick', '--rounds', '4', '--out', out]);
    expect(r.status).toBe(0);
    const md = fs.readFileSync(out, 'utf8');
    expect(md).toContain('Pair run: 10 sandboxes, 4 rounds');
    const rows = md.split('\n').filter(l => /^\| (other|this) \|/.test(l));
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      const cells = row.split('|').map(c => c.trim());
      expect(cells[2]).toBe(`\`${REPO}\``);
      expect(cells[3]).toMatch(/^\d+(\.\d)? ms$/);
      expect(cells[7]).toMatch(/^\d+ MB$/);
    }
    expect(md).toMatch(/used less CPU than the other in \d of 4 scrapes/);
    // Pair mode writes only where --out says: bench/results.md is left alone.
    expect(fs.statSync(results).mtimeMs).toBe(before);
  }, 150_000);

  it('refuses --against without a built checkout, and --rounds out of range', () => {
    const missing = runBench(['--against', path.join(dir, 'nothing-here')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('no bin/kata-monitor there');
    const rounds = runBench(['--against', REPO, '--rounds', '1']);
    expect(rounds.status).toBe(1);
    expect(rounds.stderr).toContain('--rounds wants a whole number from 2 to 10000, not 1');
  });

  it('refuses an argument it does not know', () => {
    const r = runBench(['--bogus']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('unknown argument --bogus (accepted: --sizes');
  });
});
