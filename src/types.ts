/**
 * Domain types shared across the daemon. Pure: no I/O.
 */

/** Which Kata runtime owns a sandbox: the Go shim (`/run/vc/sbs`) or runtime-rs (`/run/kata`). */
export type Runtime = 'go' | 'rs';

/** Pod identity as reported by the CRI runtime. Empty strings until CRI answers. */
export interface CriMetadata {
  uid: string;
  name: string;
  namespace: string;
}

/** What the daemon knows about one sandbox. */
export interface SandboxInfo {
  /** Sandbox id: the directory name under the root (64 hex chars in practice). */
  readonly id: string;
  readonly runtime: Runtime;
  /** The sandbox root the directory lives in, e.g. `/run/vc/sbs`. */
  readonly root: string;
  /** `<root>/<id>` */
  readonly dir: string;
  /** Hypervisor type from persist.json / state.json when readable (`qemu`, `clh`, `dragonball`, ...). */
  hypervisor?: string;
  /** Agent URL recorded on disk (`AgentState.URL`), when readable. */
  agentUrl?: string;
  /** CRI metadata, once known. */
  cri?: CriMetadata;
}

/** The four labels kata-monitor appends to every sample of a sandbox, in upstream order. */
export const SANDBOX_LABEL_NAMES = ['sandbox_id', 'cri_uid', 'cri_name', 'cri_namespace'] as const;

/**
 * Sandboxes by id (code-unit order). One module-level comparator: a comparator made per call is compiled again
 * after a full GC (util/map-limit.ts).
 */
export const bySandboxId = (a: Pick<SandboxInfo, 'id'>, b: Pick<SandboxInfo, 'id'>): number =>
  a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

/** Label pairs for a sandbox in upstream order (values unescaped). */
export function sandboxLabels(s: Pick<SandboxInfo, 'id' | 'cri'>): [string, string][] {
  return [
    ['sandbox_id', s.id],
    ['cri_uid', s.cri?.uid ?? ''],
    ['cri_name', s.cri?.name ?? ''],
    ['cri_namespace', s.cri?.namespace ?? ''],
  ];
}

/** Reasons a sandbox could not be scraped; values of `kata_monitor_sandbox_scrape_errors_total{reason}`. */
export type ScrapeErrorReason =
  | 'timeout'
  | 'refused'
  | 'http_status'
  | 'parse'
  | 'too_large'
  | 'gone'
  | 'unsafe_skipped'
  | 'permission_denied'
  | 'unimplemented'
  | 'agent_error';
