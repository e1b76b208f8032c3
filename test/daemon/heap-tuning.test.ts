import { spawnSync } from 'node:child_process';
import { flagsToApply, SMALL_HEAP_FLAGS } from '../../src/heap-tuning';

describe('small-heap V8 flags', () => {
  it('applies every flag of the profile when the operator gave none', () => {
    expect(flagsToApply(SMALL_HEAP_FLAGS, [])).toEqual([...SMALL_HEAP_FLAGS]);
    expect(flagsToApply(SMALL_HEAP_FLAGS, ['--inspect', '-e', 'heap-growing-percent'])).toEqual([
      ...SMALL_HEAP_FLAGS,
    ]);
    expect(SMALL_HEAP_FLAGS).toEqual(['--semi-space-growth-factor=1', '--heap-growing-percent=60']);
  });

  it('leaves a flag the operator gave node to them (either spelling)', () => {
    expect(flagsToApply(SMALL_HEAP_FLAGS, ['--heap-growing-percent=80'])).toEqual([
      '--semi-space-growth-factor=1',
    ]);
    expect(
      flagsToApply(SMALL_HEAP_FLAGS, ['--semi_space_growth_factor=4', '--heap-growing-percent']),
    ).toEqual([]);
  });

  it("names flags this Node's V8 knows (an unknown one would only print a warning and do nothing)", () => {
    const r = spawnSync(process.execPath, ['--v8-options'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(0);
    for (const f of SMALL_HEAP_FLAGS) expect(r.stdout).toContain(`  ${f.slice(0, f.indexOf('='))} (`);
  });
});
