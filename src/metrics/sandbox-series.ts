/**
 * The per-sandbox families of the daemon's own metrics: kata_monitor_sandbox_up,
 * kata_monitor_sandbox_scrape_duration_seconds and kata_monitor_sandbox_scrape_errors_total (pure).
 *
 * They have a series per sandbox (and per failure reason), so at 100 sandboxes they are most of the own
 * registry's series. prom-client hashes a label object on every `set` and formats every series of every
 * family from its label object on every render (object spreads, arrays, three regex replaces per label
 * value): about 13 ms of CPU and 1 MB of garbage per scrape for the own registry at 100 sandboxes. Here a
 * sandbox's label text is rendered once (and again only when its CRI metadata changes), and a render is one
 * line per series. The text is what prom-client wrote for these families, with the series in sandbox-id
 * order (and reason order within a sandbox) instead of first-seen order.
 */
import type { SandboxInfo, ScrapeErrorReason } from '../types';
import { sandboxLabelText } from './relabel';
import { escapeLabelValue, familyHeader, formatValue } from './text-builder';

export const SANDBOX_SERIES_FAMILIES = {
  up: 'kata_monitor_sandbox_up',
  duration: 'kata_monitor_sandbox_scrape_duration_seconds',
  errors: 'kata_monitor_sandbox_scrape_errors_total',
} as const;

const HEADERS = {
  up: familyHeader(
    SANDBOX_SERIES_FAMILIES.up,
    'gauge',
    "Whether the sandbox's shim was scraped successfully in the last aggregated scrape.",
  ),
  duration: familyHeader(
    SANDBOX_SERIES_FAMILIES.duration,
    'gauge',
    "How long the last scrape of the sandbox's shim took, in seconds.",
  ),
  errors: familyHeader(SANDBOX_SERIES_FAMILIES.errors, 'counter', 'Failed scrapes of a sandbox, by reason.'),
};

interface Entry {
  /** Rendered `{sandbox_id="…",cri_uid="…",cri_name="…",cri_namespace="…"} ` (with the trailing blank). */
  labels: string;
  /** The CRI metadata the label text was rendered from. */
  uid: string;
  name: string;
  namespace: string;
  /** Whether the last scrape of the sandbox succeeded, and how long it took (seconds); undefined before one. */
  up?: number;
  durationSeconds?: number;
  /** Failed scrapes by reason, kept while the sandbox is known. */
  errors: Map<ScrapeErrorReason, number>;
  /** `{sandbox_id="…",reason="` (the reason and `"} ` follow). */
  errorPrefix: string;
}

export class SandboxSeries {
  private readonly entries = new Map<string, Entry>();
  /** Sandbox ids in order, rebuilt on the next render after a sandbox came or went. */
  private order: string[] | undefined = [];

  private entry(sb: Pick<SandboxInfo, 'id' | 'cri'>): Entry {
    const uid = sb.cri?.uid ?? '';
    const name = sb.cri?.name ?? '';
    const namespace = sb.cri?.namespace ?? '';
    let e = this.entries.get(sb.id);
    if (!e) {
      e = {
        labels: `{${sandboxLabelText(sb)}} `,
        uid,
        name,
        namespace,
        errors: new Map(),
        errorPrefix: `{sandbox_id="${escapeLabelValue(sb.id)}",reason="`,
      };
      this.entries.set(sb.id, e);
      this.order = undefined;
    } else if (e.uid !== uid || e.name !== name || e.namespace !== namespace) {
      e.uid = uid;
      e.name = name;
      e.namespace = namespace;
      e.labels = `{${sandboxLabelText(sb)}} `;
    }
    return e;
  }

  /** The outcome of the last scrape of a sandbox (a failure also counts one error of `reason`). */
  record(
    sb: Pick<SandboxInfo, 'id' | 'cri'>,
    outcome: { ok: boolean; durationMs: number; reason?: ScrapeErrorReason },
  ): void {
    const e = this.entry(sb);
    e.up = outcome.ok ? 1 : 0;
    e.durationSeconds = outcome.durationMs / 1000;
    if (!outcome.ok && outcome.reason !== undefined)
      e.errors.set(outcome.reason, (e.errors.get(outcome.reason) ?? 0) + 1);
  }

  /** Forget every sandbox not in `ids` (their series go away). */
  retain(ids: ReadonlySet<string>): void {
    for (const id of this.entries.keys()) {
      if (!ids.has(id)) {
        this.entries.delete(id);
        this.order = undefined;
      }
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** The three families as exposition text; empty when no sandbox was scraped yet. */
  render(): string {
    if (this.order === undefined) this.order = [...this.entries.keys()].sort(byCodeUnit);
    let up = '';
    let duration = '';
    let errors = '';
    for (const id of this.order) {
      const e = this.entries.get(id)!;
      if (e.up !== undefined) up += SANDBOX_SERIES_FAMILIES.up + e.labels + e.up + '\n';
      if (e.durationSeconds !== undefined)
        duration += SANDBOX_SERIES_FAMILIES.duration + e.labels + formatValue(e.durationSeconds) + '\n';
      if (e.errors.size > 0) {
        for (const reason of [...e.errors.keys()].sort(byCodeUnit))
          errors += `${SANDBOX_SERIES_FAMILIES.errors}${e.errorPrefix}${reason}"} ${e.errors.get(reason)!}\n`;
      }
    }
    let out = '';
    if (up !== '') out += HEADERS.up + up;
    if (duration !== '') out += HEADERS.duration + duration;
    if (errors !== '') out += HEADERS.errors + errors;
    return out;
  }
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
