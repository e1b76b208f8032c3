/**
 * Helpers for the deployment tests: a small kustomize renderer (kubectl is not on CI), the
 * dashboard's queries, PromQL metric-name extraction and the metric names kata-monitor serves.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as yaml from 'js-yaml';

export const REPO = path.resolve(__dirname, '..', '..');
export const DAEMONSET_DIR = path.join(REPO, 'daemonset');
export const DASHBOARD_FILE = path.join(DAEMONSET_DIR, 'grafana', 'kata-monitor-dashboard.json');
export const RULES_FILE = path.join(DAEMONSET_DIR, 'rules', 'kata-monitor-rules.yml');
export const EXAMPLE_SCRAPE_CONFIG = path.join(DAEMONSET_DIR, 'examples', 'prometheus.yml');

// ---------------------------------------------------------------------------------------------
// kustomize

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: unknown;
  [key: string]: unknown;
}

/** The kustomization keys this renderer implements; anything else fails the render rather than being ignored. */
const SUPPORTED_KEYS = new Set([
  'apiVersion',
  'kind',
  'namespace',
  'resources',
  'components',
  'images',
  'patches',
]);
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
]);

interface Kustomization {
  kind?: string;
  namespace?: string;
  resources?: string[];
  components?: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
  patches?: ({ patch?: string; path?: string } & Record<string, unknown>)[];
}

function loadKustomization(dir: string): Kustomization {
  const file = ['kustomization.yaml', 'kustomization.yml']
    .map(f => path.join(dir, f))
    .find(f => fs.existsSync(f));
  if (!file) throw new Error(`no kustomization.yaml in ${dir}`);
  const k = yaml.load(fs.readFileSync(file, 'utf8')) as Kustomization & Record<string, unknown>;
  for (const key of Object.keys(k)) {
    if (!SUPPORTED_KEYS.has(key))
      throw new Error(`${file}: kustomization key "${key}" not supported by the test renderer`);
  }
  return k;
}

function loadResourceFile(file: string): K8sObject[] {
  return yaml
    .loadAll(fs.readFileSync(file, 'utf8'))
    .filter(d => d !== null && d !== undefined) as K8sObject[];
}

const sameObject = (a: K8sObject, b: K8sObject): boolean =>
  a.apiVersion === b.apiVersion &&
  a.kind === b.kind &&
  a.metadata.name === b.metadata.name &&
  (b.metadata.namespace === undefined || a.metadata.namespace === b.metadata.namespace);

function applyPatches(objs: K8sObject[], k: Kustomization, where: string): K8sObject[] {
  let out = objs;
  for (const p of k.patches ?? []) {
    if (typeof p.patch !== 'string') throw new Error(`${where}: only inline patches are supported`);
    const doc = yaml.load(p.patch) as K8sObject & { $patch?: string };
    if (doc.$patch !== 'delete') throw new Error(`${where}: only "$patch: delete" patches are supported`);
    const before = out.length;
    out = out.filter(o => !sameObject(o, doc));
    if (out.length === before)
      throw new Error(`${where}: delete patch matches nothing: ${doc.kind}/${doc.metadata.name}`);
  }
  return out;
}

function setImages(objs: K8sObject[], k: Kustomization): void {
  for (const o of objs) {
    const pod = (o.spec as { template?: { spec?: { containers?: { image: string }[] } } } | undefined)
      ?.template?.spec;
    for (const c of pod?.containers ?? []) {
      const [name, tag] = splitImage(c.image);
      const rule = k.images?.find(i => i.name === name);
      if (rule) c.image = `${rule.newName ?? name}:${rule.newTag ?? tag}`;
    }
  }
}

/** `repo/name:tag` → [`repo/name`, `tag`] (digests are not used in our manifests). */
export function splitImage(image: string): [string, string] {
  const i = image.lastIndexOf(':');
  if (i <= image.lastIndexOf('/')) return [image, 'latest'];
  return [image.slice(0, i), image.slice(i + 1)];
}

/**
 * Render a kustomization directory like `kubectl kustomize` for the features our manifests use:
 * resources (files or kustomization directories), components (resources + delete patches),
 * namespace and images. `extraComponents` are applied as an overlay using the directory as its base would.
 */
export function renderKustomize(dir: string, extraComponents: string[] = []): K8sObject[] {
  const k = loadKustomization(dir);
  let objs: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const p = path.resolve(dir, r);
    objs.push(...(fs.statSync(p).isDirectory() ? renderKustomize(p) : loadResourceFile(p)));
  }
  for (const c of [...(k.components ?? []).map(c => path.resolve(dir, c)), ...extraComponents]) {
    const ck = loadKustomization(c);
    if (ck.kind !== 'Component') throw new Error(`${c} is not a kustomize Component`);
    for (const r of ck.resources ?? []) objs.push(...loadResourceFile(path.resolve(c, r)));
    objs = applyPatches(objs, ck, c);
  }
  objs = applyPatches(objs, k, dir);
  if (k.namespace) {
    for (const o of objs) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  setImages(objs, k);
  return objs;
}

export function findObject<T = K8sObject>(objs: K8sObject[], kind: string, name?: string): T {
  const found = objs.filter(o => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1)
    throw new Error(`expected one ${kind}${name ? `/${name}` : ''}, found ${found.length}`);
  return found[0] as T;
}

// ---------------------------------------------------------------------------------------------
// Dashboard and PromQL

/** The metric names kata-monitor serves (the deployment brief's list): the only ones the dashboard may use. */
export const DAEMON_METRICS: readonly string[] = [
  // shim/hypervisor/agent/guest families relabelled with sandbox_id and cri_*
  'kata_guest_load',
  'kata_hypervisor_threads',
  'kata_shim_threads',
  'kata_agent_total_rss',
  // kata-monitor's own
  'kata_monitor_running_shim_count',
  'kata_monitor_scrape_count',
  'kata_monitor_scrape_failed_count',
  'kata_monitor_scrape_durations_histogram_milliseconds_bucket',
  'kata_monitor_scrape_durations_histogram_milliseconds_sum',
  'kata_monitor_scrape_durations_histogram_milliseconds_count',
  'kata_monitor_sandbox_up',
  'kata_monitor_sandbox_scrape_duration_seconds',
  'kata_monitor_sandbox_scrape_errors_total',
  'kata_monitor_cri_up',
  'kata_monitor_sandboxes',
  'kata_monitor_sandboxes_without_metadata',
  'kata_monitor_sandbox_root_watch_up',
  'kata_monitor_build_info',
  'kata_monitor_agent_up',
  'kata_monitor_agent_info',
  'kata_monitor_guest_container_cpu_usage_seconds_total',
  'kata_monitor_guest_container_memory_usage_bytes',
  'kata_monitor_sandbox_process_cpu_seconds_total',
  'kata_monitor_sandbox_process_resident_memory_bytes',
  'kata_monitor_pod_cpu_seconds_total',
  'kata_monitor_pod_memory_working_set_bytes',
  'kata_monitor_pod_overhead_cpu_seconds_total',
  'kata_monitor_pod_overhead_memory_bytes',
  'kata_monitor_host_cpus',
  'kata_monitor_host_memory_bytes',
];

export interface DashboardQuery {
  panel: string;
  refId: string;
  expr: string;
}

interface DashboardPanel {
  type: string;
  title: string;
  targets?: { refId: string; expr: string }[];
  panels?: DashboardPanel[];
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: DashboardPanel[];
  templating: { list: { name: string; type: string; query?: unknown; definition?: string }[] };
}

export function loadDashboard(): Dashboard {
  return JSON.parse(fs.readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
}

/** Every panel query of the dashboard (rows' nested panels included). */
export function dashboardQueries(d: Dashboard = loadDashboard()): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  const walk = (ps: DashboardPanel[]): void => {
    for (const p of ps) {
      for (const t of p.targets ?? []) out.push({ panel: p.title, refId: t.refId, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  return out;
}

/** Replace Grafana variables: template variables match everything, interval macros become `rateInterval`. */
export function substituteVariables(expr: string, rateInterval = '1m'): string {
  return expr
    .replace(/\$__(rate_)?interval\b/g, rateInterval)
    .replace(/\$__range\b/g, rateInterval)
    .replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, '.*');
}

const PROMQL_KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

/** Metric names referenced by a PromQL expression (selectors only: not functions, labels or keywords). */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // string literals
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range / subquery durations
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  const names = new Set<string>();
  const re = /([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g;
  for (let m = re.exec(stripped); m; m = re.exec(stripped)) {
    const name = m[1] as string;
    const before = stripped[m.index - 1];
    if (m[2] !== undefined) continue; // function call
    if (before !== undefined && /[0-9.]/.test(before)) continue; // part of a number such as 1e3
    if (PROMQL_KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names];
}
