/**
 * Host facts: systeminformation answers with this machine's CPU count and memory size, and it is loaded only
 * when the facts are first asked for (a daemon without the host collector never loads it).
 */
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { SI_CPU_MODULE, SI_MEMORY_MODULE, systemHostFacts } from '../../src/host/host-facts';
import { silentLogger } from '../../src/log';

const REPO = path.resolve(__dirname, '..', '..');

describe('systemHostFacts', () => {
  it("gives this machine's CPU count and memory size", async () => {
    const facts = await systemHostFacts(silentLogger).get();
    expect(facts).toBeDefined();
    expect(facts!.cpus).toBeGreaterThan(0);
    expect(facts!.cpus).toBeLessThanOrEqual(os.cpus().length * 2); // cores, or threads where it cannot tell
    // os.totalmem() is MemTotal; systeminformation reads the same /proc/meminfo line.
    expect(facts!.memoryBytes).toBe(os.totalmem());
  });

  it('is loaded by the first query, not with the daemon (built dist, `npm test` builds it)', () => {
    const script = `
      const loaded = () => Object.keys(require.cache)
        .filter(k => k.includes('/node_modules/systeminformation/'))
        .map(k => k.slice(k.lastIndexOf('/') + 1))
        .sort();
      require(${JSON.stringify(path.join(REPO, 'dist', 'main.js'))});
      const before = loaded();
      const { systemHostFacts } = require(${JSON.stringify(path.join(REPO, 'dist', 'host', 'host-facts.js'))});
      systemHostFacts({ warn() {} }).get().then(f => {
        console.log(JSON.stringify({ before, after: loaded(), cpus: f && f.cpus }));
      });`;
    const r = spawnSync(process.execPath, ['-e', script], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { before: string[]; after: string[]; cpus: number };
    // Only the modules it needs, not the package index and its 20-odd modules.
    expect(out).toEqual({ before: [], after: ['cpu.js', 'memory.js', 'util.js'], cpus: expect.any(Number) });
  });

  it("loads systeminformation's cpu and memory modules, which answer as the package index does", async () => {
    const facts = await systemHostFacts(silentLogger).get();
    const si = await import('systeminformation');
    const [cpu, mem] = await Promise.all([si.cpu(), si.mem()]);
    expect(facts).toEqual({ cpus: cpu.cores, memoryBytes: mem.total });
    expect(typeof ((await import(SI_CPU_MODULE)) as { cpu: unknown }).cpu).toBe('function');
    expect(typeof ((await import(SI_MEMORY_MODULE)) as { mem: unknown }).mem).toBe('function');
  });
});
