/**
 * `bin/kata-monitor`: parse the flags, set the process up, then load and start the daemon.
 *
 * Kept apart from main.ts so that the process is set up (the V8 heap profile) before the daemon's modules
 * are loaded: loading them is the first thing that grows the young generation.
 */
import { ConfigError, parseArgs, usageText, type Config } from './config';
import { getErrorMessage } from './errors';
import { applySmallHeap } from './heap-tuning';
import { applyMallocTuning } from './malloc-tuning';
import { createLogger } from './log';
import { versionText } from './version';

/** `bin/kata-monitor`: parse, run, exit 2 on bad flags, 0 after a signal-triggered drain. */
export function run(argv: string[]): void {
  let config: Config;
  try {
    config = parseArgs(argv, process.env);
  } catch (err) {
    const msg = err instanceof ConfigError ? err.message : getErrorMessage(err);
    process.stderr.write(`kata-monitor: ${msg}\n\n${usageText()}`);
    process.exit(2);
  }
  if (config.action === 'help') {
    process.stdout.write(usageText());
    process.exit(0);
  }
  if (config.action === 'version') {
    process.stdout.write(versionText());
    process.exit(0);
  }
  const logger = createLogger({ level: config.logLevel });
  if (config.smallHeap) {
    logger.debug('V8 heap flags set', { flags: applySmallHeap() });
    const malloc = applyMallocTuning();
    if (malloc.applied) logger.debug('malloc mmap threshold set', { bytes: malloc.bytes });
    else logger.debug('malloc mmap threshold left as is', { reason: malloc.reason });
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded after the heap flags are set
  const { startDaemon } = require('./main') as typeof import('./main');
  startDaemon(config, { logger }).then(
    daemon => {
      let signalled = false;
      const onSignal = (signal: NodeJS.Signals): void => {
        if (signalled) {
          logger.warn('second signal: exiting without draining', { signal });
          process.exit(1);
        }
        signalled = true;
        logger.info('shutting down', { signal });
        void daemon.stop().then(() => {
          logger.info('stopped');
          process.exit(0);
        });
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    },
    err => {
      logger.fatal('cannot start', { err: getErrorMessage(err), code: (err as { code?: unknown }).code });
      process.exit(1);
    },
  );
}
