/**
 * Golden test of the whole aggregated /metrics for a fixed simulated node (fixed seed, first scrape of every
 * shim). Run with UPDATE_GOLDEN=1 to rewrite test/fixtures/golden/node-metrics.prom after an intended change.
 *
 * Only shim-derived families and the deterministic per-sandbox self families are compared: the daemon's
 * process/runtime metrics, durations and build info depend on the machine and the moment.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from '../../src/config';
import { silentLogger } from '../../src/log';
import { startDaemon, type Daemon } from '../../src/main';
import { SimNode } from '../../src/sim/node';
import { rmrf, tmpDir, waitFor } from '../helpers/util';

const GOLDEN = path.join(__dirname, '..', 'fixtures', 'golden', 'node-metrics.prom');
const KEEP_SELF = new Set([
  'kata_monitor_sandbox_up',
  'kata_monitor_running_shim_count',
  'kata_monitor_sandboxes',
]);

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, res => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', d => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

/** Drop the families whose values depend on the machine or the clock (whole families, headers included). */
function stable(body: string): string {
  const out: string[] = [];
  let keep = true;
  for (const line of body.split('\n')) {
    const m = /^# (?:HELP|TYPE) (\S+)/.exec(line);
    if (m) keep = !m[1]!.startsWith('kata_monitor_') || KEEP_SELF.has(m[1]!);
    if (keep && line !== '') out.push(line);
  }
  return out.join('\n') + '\n';
}

describe('golden /metrics of a fixed simulated node', () => {
  let dir: string;
  let node: SimNode;
  let daemon: Daemon;

  beforeAll(async () => {
    dir = tmpDir('kg-');
    node = await SimNode.start({ dir, sandboxes: 1, rs: 1, seed: 2024 });
    const config = parseArgs([
      '--listen-address=127.0.0.1:0',
      `--sandbox-roots=${path.join(dir, 'vc', 'sbs')},${path.join(dir, 'kata')}`,
      `--runtime-endpoint=unix://${path.join(dir, 'cri.sock')}`,
      '--agent-metrics=never',
      '--collect-container-stats=false',
      '--collect-host=false',
    ]);
    daemon = await startDaemon(config, { logger: silentLogger });
    // Discovered and labelled, without scraping any shim (their values depend on how often they were asked).
    await waitFor(() => daemon.store.list().length === 2 && daemon.store.withoutMetadata() === 0, 10000, 50);
  }, 30000);

  afterAll(async () => {
    await daemon?.stop();
    await node?.stop();
    rmrf(dir);
  });

  it('matches the golden file byte for byte', async () => {
    const body = stable(await get(`${daemon.url}/metrics`));
    if (process.env.UPDATE_GOLDEN === '1') fs.writeFileSync(GOLDEN, body);
    const golden = fs.readFileSync(GOLDEN, 'utf8');
    // Compare line by line first for a readable failure, then the whole text.
    const a = body.split('\n');
    const b = golden.split('\n');
    const firstDiff = a.findIndex((l, i) => l !== b[i]);
    expect({ firstDiff, line: a[firstDiff], golden: b[firstDiff] }).toEqual({
      firstDiff: -1,
      line: undefined,
      golden: undefined,
    });
    expect(body).toBe(golden);
  });
});
