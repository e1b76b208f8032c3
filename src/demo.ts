/**
 * `npm run demo`: a simulated Kata node (8 Go + 4 runtime-rs sandboxes, the first one with a hung shim,
 * a CRI runtime) in a temp dir, and the daemon in-process against it on 127.0.0.1:8090.
 * Extra arguments are daemon flags and win over the demo's (`npm run demo -- --listen-address 127.0.0.1:9999`).
 * Ctrl-C stops both and removes the temp dir.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, parseArgs, usageText } from './config';
import { getErrorMessage } from './errors';
import { createLogger } from './log';
import { startDaemon, type Daemon } from './main';
import { SimNode } from './sim/node';
import { defaultSimHooks, simSysfs } from './sim/default-hooks';

async function demo(argv: string[]): Promise<void> {
  // Short: `<dir>/vc/sbs/<64 hex>/shim-monitor.sock` must stay under the 108-byte unix socket limit.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-'));
  let sim: SimNode | undefined;
  let daemon: Daemon | undefined;
  const cleanup = async (): Promise<void> => {
    await daemon?.stop();
    await sim?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    sim = await SimNode.start({
      dir,
      sandboxes: 8,
      rs: 4,
      seed: 42,
      faults: [{ target: { index: 0 }, shim: { kind: 'hang' } }],
      // runtime-rs QEMU agents need real AF_VSOCK, which a demo machine rarely has; Firecracker shows the
      // unsafe-shim handling (skipped, guest metrics from the agent) just as well.
      hypervisors: { rs: ['dragonball', 'clh', 'firecracker', 'dragonball'] },
      hooks: defaultSimHooks({ dir }),
    });
    const config = parseArgs([
      '--listen-address=127.0.0.1:8090',
      `--sandbox-roots=${path.join(dir, 'vc', 'sbs')},${path.join(dir, 'kata')}`,
      `--runtime-endpoint=unix://${path.join(dir, 'cri.sock')}`,
      `--path.run=${dir}`,
      `--path.sysfs=${simSysfs(dir)}`,
      '--log-level=warn',
      ...argv,
    ]);
    daemon = await startDaemon(config, { logger: createLogger({ level: config.logLevel }) });
  } catch (err) {
    await cleanup();
    throw err;
  }
  const summary = sim.summary();
  const hung = summary.sandboxes.find(s => s.shimFault)?.id;
  const goId = summary.sandboxes.find(s => s.runtime === 'go' && !s.shimFault)?.id ?? '';
  const rsId = summary.sandboxes.find(s => s.runtime === 'rs')?.id ?? '';
  const base = daemon.url;
  process.stdout.write(
    [
      `kata-monitor demo: ${summary.sandboxes.length} simulated sandboxes under ${dir}`,
      `(${summary.sandboxes.filter(s => s.runtime === 'go').length} Go, ${summary.sandboxes.filter(s => s.runtime === 'rs').length} runtime-rs; ${hung ? `${hung.slice(0, 12)}… has a hung shim` : 'no faults'})`,
      '',
      'Try:',
      `  curl ${base}/`,
      `  curl ${base}/sandboxes`,
      `  curl ${base}/metrics`,
      `  curl '${base}/metrics?filter_family=kata_hypervisor'`,
      `  curl '${base}/agent-url?sandbox=${goId}'`,
      `  curl '${base}/agent-url?sandbox=${rsId}'`,
      hung ? `  curl '${base}/agent-url?sandbox=${hung}'     # hung shim: 502 after the shim timeout` : '',
      `  curl '${base}/debug/pprof/?sandbox=${goId}'`,
      `  curl ${base}/readyz`,
      '',
      'Ctrl-C to stop.',
      '',
    ]
      .filter(l => l !== undefined)
      .join('\n'),
  );
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping…\n');
    void cleanup().then(() => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

demo(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) process.stderr.write(`demo: ${err.message}\n\n${usageText()}`);
  else process.stderr.write(`demo failed: ${getErrorMessage(err)}\n`);
  // main.ts owns process.exit; a non-zero exit code is enough here.
  process.exitCode = err instanceof ConfigError ? 2 : 1;
});
