import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import {
  applyMallocTuning,
  loadMallocBinding,
  MALLOC_ADDON_PATH,
  MMAP_THRESHOLD_BYTES,
  type MallocBinding,
} from '../../src/malloc-tuning';

const REPO = path.resolve(__dirname, '..', '..');

function fake(ok: boolean): MallocBinding & { calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    setMmapThreshold: (bytes: number) => {
      calls.push(bytes);
      return ok;
    },
  };
}

describe('malloc tuning (small-heap)', () => {
  it('sets a 64 KiB mmap threshold through the addon', () => {
    const b = fake(true);
    expect(applyMallocTuning({}, () => b)).toEqual({ applied: true, bytes: 65536 });
    expect(b.calls).toEqual([MMAP_THRESHOLD_BYTES]);
  });

  it("leaves the operator's MALLOC_MMAP_THRESHOLD_ alone and does not load the addon", () => {
    let loaded = false;
    const r = applyMallocTuning({ MALLOC_MMAP_THRESHOLD_: '131072' }, () => {
      loaded = true;
      return fake(true);
    });
    expect(r).toEqual({ applied: false, reason: 'MALLOC_MMAP_THRESHOLD_ is set in the environment' });
    expect(loaded).toBe(false);
  });

  it('says why when the addon is missing or the C library refuses', () => {
    const missing = loadMallocBinding(path.join(REPO, 'native', 'malloc', 'nope.node'));
    expect(typeof missing).toBe('string');
    const r = applyMallocTuning({}, () => loadMallocBinding(path.join(REPO, 'nope.node')));
    expect(r.applied).toBe(false);
    expect(!r.applied && r.reason).toMatch(/^addon unavailable: /);
    expect(applyMallocTuning({}, () => fake(false))).toEqual({
      applied: false,
      reason: 'the C library does not take mallopt(M_MMAP_THRESHOLD)',
    });
  });

  it('the built addon takes the setting on glibc and refuses a non-positive size', () => {
    const b = loadMallocBinding();
    if (typeof b === 'string') {
      // not built here (no compiler): the loader reports it instead of throwing
      expect(b.length).toBeGreaterThan(0);
      return;
    }
    expect(() => b.setMmapThreshold(0)).toThrow(/positive integer/);
    const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } }).header
      ?.glibcVersionRuntime;
    // A child process, so that this worker's allocator keeps its defaults.
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `process.stdout.write(String(require(${JSON.stringify(MALLOC_ADDON_PATH)}).setMmapThreshold(65536)))`,
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(r.stdout).toBe(glibc ? 'true' : 'false');
  });
});
