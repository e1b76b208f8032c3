/**
 * `kata-sim`: start a simulated Kata node and keep it running until SIGINT/SIGTERM.
 *
 *   kata-sim --dir D --sandboxes N [--rs M] [--churn-every SEC] [--faults SPEC] [--seed S] [--cri-lag MS]
 *
 * Prints the node summary as one JSON line on stdout once everything is up; removes what it made on exit.
 */
import { parseArgs } from 'node:util';
import { KataMonitorError, getErrorMessage } from '../errors';
import { parseFaultSpec } from './faults';
import { SimNode, type SimNodeOptions } from './node';
import type { SimHooks } from './types';
import { defaultSimHooks, simSysfs, type DefaultHooksOptions } from './default-hooks';

export const USAGE = `usage: kata-sim --dir DIR [--sandboxes N] [--rs M] [--churn-every SEC] [--faults SPEC] [--seed S]
                [--cri-lag MS] [--cri-api v1,v1alpha2] [--unknown-to-cri I,J]
                [--processes light|node|none] [--no-agents] [--help]
  --dir DIR          node directory standing for /run (sandboxes under DIR/vc/sbs and DIR/kata, CRI at DIR/cri.sock)
  --sandboxes N      Go-runtime sandboxes (default 3)
  --rs M             runtime-rs sandboxes (default 0)
  --churn-every SEC  every SEC seconds remove one sandbox and add one
  --faults SPEC      e.g. 0:hang,3:slow:2000,5:garbage,7:agent:deny (TARGET = index or id prefix)
  --seed S           seed for ids, pods and metric values (default 1)
  --cri-lag MS       CRI reports a sandbox only MS after it was created
  --cri-api LIST     CRI API versions served (default v1,v1alpha2)
  --unknown-to-cri L sandbox indexes CRI does not report
  --processes KIND   stand-in hypervisor/virtiofsd processes: light (default, /bin/sh), node (can burn CPU
                     and hold memory), none; their pod cgroups are mirrored under DIR/sys (cgroup v2)
  --no-agents        no simulated Kata agents on the sandboxes' vsock sockets`;

function intFlag(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min) {
    throw new KataMonitorError('CONFIG_INVALID', `--${name} must be an integer >= ${min}, got "${v}"`);
  }
  return Number(v);
}

/** argv → node options (pure; throws CONFIG_INVALID). Returns `help: true` for --help. */
export function parseSimArgs(
  argv: string[],
): { help: true } | { help: false; options: SimNodeOptions; hooks: DefaultHooksOptions } {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        dir: { type: 'string' },
        sandboxes: { type: 'string' },
        rs: { type: 'string' },
        'churn-every': { type: 'string' },
        faults: { type: 'string' },
        seed: { type: 'string' },
        'cri-lag': { type: 'string' },
        'cri-api': { type: 'string' },
        'unknown-to-cri': { type: 'string' },
        processes: { type: 'string' },
        'no-agents': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new KataMonitorError('CONFIG_INVALID', getErrorMessage(err), { cause: err });
  }
  if (values.help) return { help: true };
  const dir = values.dir;
  if (typeof dir !== 'string' || dir === '')
    throw new KataMonitorError('CONFIG_INVALID', '--dir is required');
  const str = (k: string): string | undefined =>
    typeof values[k] === 'string' ? (values[k] as string) : undefined;
  const apis = str('cri-api')
    ?.split(',')
    .map(s => s.trim());
  if (apis && (apis.length === 0 || apis.some(a => a !== 'v1' && a !== 'v1alpha2'))) {
    throw new KataMonitorError(
      'CONFIG_INVALID',
      `--cri-api must list v1 and/or v1alpha2, got "${str('cri-api')}"`,
    );
  }
  const unknown = str('unknown-to-cri')
    ?.split(',')
    .filter(s => s !== '')
    .map(s => intFlag('unknown-to-cri', s, 0)!);
  const processes = str('processes') ?? 'light';
  if (processes !== 'light' && processes !== 'node' && processes !== 'none') {
    throw new KataMonitorError(
      'CONFIG_INVALID',
      `--processes must be light, node or none, got "${processes}"`,
    );
  }
  return {
    help: false,
    hooks: { dir, agents: values['no-agents'] !== true, processes },
    options: {
      dir,
      sandboxes: intFlag('sandboxes', str('sandboxes'), 0) ?? 3,
      rs: intFlag('rs', str('rs'), 0) ?? 0,
      churnEverySec: intFlag('churn-every', str('churn-every'), 1),
      faults: parseFaultSpec(str('faults') ?? ''),
      seed: intFlag('seed', str('seed'), 0) ?? 1,
      criLagMs: intFlag('cri-lag', str('cri-lag'), 0),
      criApis: apis as SimNodeOptions['criApis'],
      unknownToCri: unknown,
    },
  };
}

/** Start a node from CLI-style arguments (for the demo and the benchmark, in-process). */
export async function startSimFromArgs(argv: string[], extra: { hooks?: SimHooks } = {}): Promise<SimNode> {
  const parsed = parseSimArgs(argv);
  if (parsed.help) throw new KataMonitorError('CONFIG_INVALID', 'startSimFromArgs: --help is not a node');
  return SimNode.start({ ...parsed.options, hooks: extra.hooks ?? defaultSimHooks(parsed.hooks) });
}

/** The `kata-sim` entry point (bin/kata-sim). */
export function run(argv: string[], extra: { hooks?: SimHooks } = {}): void {
  let parsed: ReturnType<typeof parseSimArgs>;
  try {
    parsed = parseSimArgs(argv);
  } catch (err) {
    process.stderr.write(`kata-sim: ${getErrorMessage(err)}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  if (parsed.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const options = parsed.options;
  let node: SimNode | undefined;
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    void (node ? node.stop() : Promise.resolve()).then(
      () => process.exit(0),
      err => {
        process.stderr.write(`kata-sim: cleanup failed: ${getErrorMessage(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  SimNode.start({
    ...options,
    hooks: extra.hooks ?? defaultSimHooks(parsed.hooks),
    onError: (err, what) => process.stderr.write(`kata-sim: ${what}: ${getErrorMessage(err)}\n`),
  }).then(
    n => {
      node = n;
      if (stopping) {
        stopping = false;
        shutdown();
        return;
      }
      const sysfs = parsed.hooks.processes === 'none' ? {} : { sysfs: simSysfs(options.dir) };
      process.stdout.write(JSON.stringify({ ...n.summary(), ...sysfs }) + '\n');
    },
    err => {
      process.stderr.write(`kata-sim: ${getErrorMessage(err)}\n`);
      process.exit(1);
    },
  );
}
