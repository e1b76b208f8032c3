/**
 * Ordered shutdown of the daemon's components: stop functions run in reverse order of registration
 * (the HTTP server first, then CRI sync, then watchers), each bounded so one stuck component cannot
 * hold the process.
 */
import { getErrorMessage } from './errors';
import type { Logger } from './log';

export type StopFn = () => void | Promise<void>;

export class Lifecycle {
  private readonly stops: { name: string; fn: StopFn }[] = [];
  private stopping?: Promise<void>;

  constructor(
    private readonly logger: Logger,
    /** Longest wait for one component to stop, ms. */
    private readonly stepTimeoutMs = 10_000,
  ) {}

  /** Register a component's stop function (call right after starting it). */
  add(name: string, fn: StopFn): void {
    this.stops.push({ name, fn });
  }

  /** Stop everything once; later calls return the same promise. Never rejects. */
  stopAll(): Promise<void> {
    this.stopping ??= this.run();
    return this.stopping;
  }

  private async run(): Promise<void> {
    for (const { name, fn } of [...this.stops].reverse()) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(fn),
          new Promise<void>(resolve => {
            timer = setTimeout(() => {
              this.logger.warn('component did not stop in time', {
                component: name,
                timeout_ms: this.stepTimeoutMs,
              });
              resolve();
            }, this.stepTimeoutMs);
          }),
        ]);
      } catch (err) {
        this.logger.warn('component failed to stop cleanly', { component: name, err: getErrorMessage(err) });
      } finally {
        if (timer) clearTimeout(timer);
      }
    }
  }
}
