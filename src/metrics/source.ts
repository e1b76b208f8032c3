/**
 * The contract between the /metrics collection and the producers that add to it beyond the shims
 * (the agent collector, the host collector). Pure types.
 */
import type { SandboxInfo, ScrapeErrorReason } from '../types';

/** What happened when one sandbox's shim was asked for /metrics in this collection. */
export type ShimOutcome =
  | {
      ok: true;
      durationMs: number;
      /** family names (after renaming) the shim gave */ families: ReadonlySet<string>;
    }
  | { ok: false; durationMs: number; reason: ScrapeErrorReason; message: string };

/**
 * A piece of Prometheus text to merge into the aggregated output.
 * - `sandbox` set: every sample gets the four sandbox labels appended (`sandbox_id`, `cri_uid`, `cri_name`,
 *   `cri_namespace`), exactly like shim output; pre-existing labels with those names move to `exported_<name>`.
 * - `renameRuntimeFamilies`: `go_*` / `process_*` families become `kata_shim_go_*` / `kata_shim_process_*`.
 * - `sandbox` unset: the text already carries every label it needs and is merged as is.
 * - `skipFamilies`: families of this text that must be dropped (e.g. already given by the shim).
 */
export interface ExpositionChunk {
  text: string | Buffer;
  sandbox?: SandboxInfo;
  renameRuntimeFamilies?: boolean;
  skipFamilies?: ReadonlySet<string>;
}

export interface CollectContext {
  /** The sandboxes of this collection, sorted by id. */
  sandboxes: readonly SandboxInfo[];
  /**
   * The shim outcome of a sandbox of `sandboxes`, settling as soon as that shim's scrape ends (sources run
   * concurrently with the shim scrapes, so a source can react to one failed shim without waiting for all).
   */
  shimOutcome(sandboxId: string): Promise<ShimOutcome>;
  /** Aborted when the collection's deadline is reached; a source must resolve soon after. */
  signal: AbortSignal;
  /**
   * Absolute deadline (Date.now() based) of this collection: what a source has for work that can only start
   * once a shim failed (the agent fallback). Later than `shimDeadline` when Prometheus allows it.
   */
  deadline: number;
  /** Absolute deadline of the shim scrapes (default `deadline`); work that runs alongside them keeps to it. */
  shimDeadline?: number;
}

/** A producer of extra families, called once per collection, concurrently with the shim scrapes. */
export interface ExtraSource {
  readonly name: string;
  /** Never rejects for a per-sandbox failure: failures are reported as metrics in the returned text. */
  collect(ctx: CollectContext): Promise<ExpositionChunk[]>;
}
