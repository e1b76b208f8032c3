/**
 * The I/O loop that labels sandboxes with their pod identity. Decisions come from metadata-policy.ts;
 * this file only runs them: one CRI call at a time, a timer for the next due sandbox, gauges kept current.
 * CRI being down or slow never blocks discovery or HTTP: sandboxes simply stay unlabelled.
 */
import { getErrorMessage } from '../errors';
import type { Logger } from '../log';
import type { SelfMetrics } from '../metrics/self-metrics';
import type { SandboxStore } from '../discovery/sandbox-store';
import type { CriPod, CriStatusResult } from './cri-client';
import { applyAnswer, errorDelayMs, planQuery, type PendingState } from './metadata-policy';

/** What the sync needs from a CRI client (CriClient implements it). */
export interface CriSource {
  listReadySandboxes(): Promise<CriPod[]>;
  podSandboxStatus(id: string): Promise<CriStatusResult>;
}

export interface MetadataSyncOptions {
  store: SandboxStore;
  cri: CriSource;
  logger: Logger;
  self?: SelfMetrics;
  now?: () => number;
}

export class MetadataSync {
  private pending = new Map<string, PendingState>();
  private pausedUntil = 0;
  private failures = 0;
  private running = false;
  private again = false;
  private stopped = true;
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private readonly now: () => number;
  private readonly log: Logger;
  private idle?: Promise<void>;

  constructor(private readonly opts: MetadataSyncOptions) {
    this.now = opts.now ?? Date.now;
    this.log = opts.logger.child({ component: 'cri' });
  }

  start(): void {
    this.stopped = false;
    this.opts.self?.criUp.set(0);
    this.unsubscribe = this.opts.store.onChange(ev => {
      if (ev.type === 'added' && !this.opts.store.hasCri(ev.id)) {
        this.pending.set(ev.id, { attempts: 0, nextAt: this.now() });
        this.wake();
      } else if (ev.type === 'removed') {
        this.pending.delete(ev.id);
      }
      this.refreshGauge();
    });
    for (const id of this.opts.store.ids()) {
      if (!this.opts.store.hasCri(id)) this.pending.set(id, { attempts: 0, nextAt: this.now() });
    }
    this.refreshGauge();
    this.wake();
  }

  /** Stops the loop; resolves once an in-flight CRI call has settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) clearTimeout(this.timer);
    await this.idle;
  }

  /** Ids still waiting for labels, with their backoff state (for tests and debugging). */
  pendingState(): ReadonlyMap<string, PendingState> {
    return this.pending;
  }

  private refreshGauge(): void {
    this.opts.self?.sandboxesWithoutMetadata.set(this.opts.store.withoutMetadata());
  }

  private wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.running = true;
    this.idle = this.loop();
  }

  /**
   * Runs due queries until idle. `running` is cleared synchronously at each exit (not in a promise
   * callback), so a wake() arriving right after the loop went idle starts a new loop instead of being lost.
   */
  private async loop(): Promise<void> {
    for (;;) {
      this.again = false;
      const plan = planQuery(this.pending, this.now(), this.pausedUntil);
      if (plan.kind === 'idle') {
        if (this.again) continue;
        if (plan.wakeAt !== undefined && !this.stopped) {
          const delay = Math.max(0, plan.wakeAt - this.now());
          this.timer = setTimeout(() => this.wake(), delay);
        }
        this.running = false;
        return;
      }
      try {
        await this.execute(plan);
      } catch (err) {
        this.log.error('CRI sync step failed', { err: getErrorMessage(err) });
      }
      if (this.stopped) {
        this.running = false;
        return;
      }
    }
  }

  private async execute(
    plan: { kind: 'status'; id: string } | { kind: 'list'; ids: string[] },
  ): Promise<void> {
    const asked = plan.kind === 'status' ? [plan.id] : plan.ids;
    let pods: CriPod[];
    try {
      if (plan.kind === 'status') {
        const r = await this.opts.cri.podSandboxStatus(plan.id);
        pods = r.found ? [r.pod] : [];
      } else {
        pods = await this.opts.cri.listReadySandboxes();
      }
    } catch (err) {
      if (this.stopped) return;
      this.failures++;
      this.pausedUntil = this.now() + errorDelayMs(this.failures);
      this.opts.self?.criUp.set(0);
      // Logged on the first failure and then every 10th, so a long outage does not flood the log.
      if (this.failures === 1 || this.failures % 10 === 0) {
        this.log.warn('CRI call failed; sandboxes stay unlabelled until it answers', {
          err: getErrorMessage(err),
          failures: this.failures,
          pending: this.pending.size,
        });
      }
      return;
    }
    if (this.stopped) return;
    if (this.failures > 0) this.log.info('CRI answers again', { after_failures: this.failures });
    this.failures = 0;
    this.pausedUntil = 0;
    this.opts.self?.criUp.set(1);
    const byId = new Map(pods.map(p => [p.id, p]));
    const { pending, resolved } = applyAnswer(this.pending, asked, new Set(byId.keys()), this.now());
    this.pending = pending;
    for (const id of resolved) {
      const pod = byId.get(id);
      if (pod) this.opts.store.setCri(id, { uid: pod.uid, name: pod.name, namespace: pod.namespace });
    }
    for (const id of asked) {
      const st = this.pending.get(id);
      if (st) this.log.debug('CRI does not know sandbox yet', { sandbox_id: id, attempts: st.attempts });
    }
    this.refreshGauge();
  }
}
