/**
 * The set of known sandboxes. Pure: no I/O, no timers; the watcher feeds it, the CRI sync labels it,
 * the HTTP layer reads it.
 *
 * An id can exist under several roots (e.g. a 3.1.x Go shim leaked a directory under /run/kata): the
 * entry of the first Go root wins, then the other roots in configured order.
 */
import { bySandboxId, type CriMetadata, type Runtime, type SandboxInfo } from '../types';
import type { SandboxRoot } from '../config';
import type { OnDiskState } from './sandbox-state';
import * as path from 'node:path';

export type StoreEvent =
  { type: 'added'; id: string } | { type: 'removed'; id: string } | { type: 'labelled'; id: string };
export type StoreListener = (ev: StoreEvent) => void;

export class SandboxStore {
  /** Roots in precedence order. */
  private readonly roots: readonly SandboxRoot[];
  /** root path → id → info */
  private readonly byRoot = new Map<string, Map<string, SandboxInfo>>();
  private readonly cri = new Map<string, CriMetadata>();
  private readonly listeners: StoreListener[] = [];

  constructor(roots: readonly SandboxRoot[]) {
    this.roots = [...roots.filter(r => r.runtime === 'go'), ...roots.filter(r => r.runtime !== 'go')];
    for (const r of this.roots) this.byRoot.set(r.path, new Map());
  }

  onChange(listener: StoreListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  private emit(ev: StoreEvent): void {
    for (const l of [...this.listeners]) l(ev);
  }

  /** Adds `<root>/<id>`; returns true when it was new under that root. */
  add(rootPath: string, id: string): boolean {
    const root = this.roots.find(r => r.path === rootPath);
    const map = this.byRoot.get(rootPath);
    if (!root || !map || map.has(id)) return false;
    const wasKnown = this.has(id);
    const info: SandboxInfo = { id, runtime: root.runtime, root: root.path, dir: path.join(root.path, id) };
    const meta = this.cri.get(id);
    if (meta) info.cri = meta;
    map.set(id, info);
    if (!wasKnown) this.emit({ type: 'added', id });
    return true;
  }

  remove(rootPath: string, id: string): boolean {
    const map = this.byRoot.get(rootPath);
    if (!map || !map.delete(id)) return false;
    if (!this.has(id)) {
      this.cri.delete(id);
      this.emit({ type: 'removed', id });
    }
    return true;
  }

  /** Ids currently recorded under a root. */
  idsUnder(rootPath: string): string[] {
    return [...(this.byRoot.get(rootPath)?.keys() ?? [])];
  }

  entry(rootPath: string, id: string): SandboxInfo | undefined {
    return this.byRoot.get(rootPath)?.get(id);
  }

  setOnDiskState(rootPath: string, id: string, st: OnDiskState): void {
    const info = this.entry(rootPath, id);
    if (!info) return;
    if (st.hypervisor !== undefined) info.hypervisor = st.hypervisor;
    if (st.agentUrl !== undefined) info.agentUrl = st.agentUrl;
  }

  has(id: string): boolean {
    for (const m of this.byRoot.values()) if (m.has(id)) return true;
    return false;
  }

  /** The effective entry for an id (Go root first). */
  get(id: string): SandboxInfo | undefined {
    for (const r of this.roots) {
      const info = this.byRoot.get(r.path)?.get(id);
      if (info) return info;
    }
    return undefined;
  }

  /** Every sandbox once (effective entries), sorted by id. */
  list(): SandboxInfo[] {
    return [...this.unique().values()].sort(bySandboxId);
  }

  /** Every sandbox once (the first root that has it wins), unsorted: for counts, which run on every change. */
  private unique(): Map<string, SandboxInfo> {
    const seen = new Map<string, SandboxInfo>();
    for (const r of this.roots) {
      for (const [id, info] of this.byRoot.get(r.path) ?? []) if (!seen.has(id)) seen.set(id, info);
    }
    return seen;
  }

  ids(): string[] {
    return this.list().map(s => s.id);
  }

  setCri(id: string, meta: CriMetadata): void {
    if (!this.has(id)) return;
    const frozen = Object.freeze({ uid: meta.uid, name: meta.name, namespace: meta.namespace });
    this.cri.set(id, frozen);
    for (const m of this.byRoot.values()) {
      const info = m.get(id);
      if (info) info.cri = frozen;
    }
    this.emit({ type: 'labelled', id });
  }

  hasCri(id: string): boolean {
    return this.cri.has(id);
  }

  /** Sandboxes CRI has not labelled yet. */
  withoutMetadata(): number {
    let n = 0;
    for (const id of this.unique().keys()) if (!this.cri.has(id)) n++;
    return n;
  }

  countByRuntime(): Record<Runtime, number> {
    const out: Record<Runtime, number> = { go: 0, rs: 0 };
    for (const s of this.unique().values()) out[s.runtime]++;
    return out;
  }
}
