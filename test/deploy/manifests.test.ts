/**
 * The kustomize base and its components, rendered here (kubectl is not on CI) and checked against
 * the daemon itself: its own flag parser reads the container args, and every path it reads with
 * those args must be a read-only mount of the right host path.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as yaml from 'js-yaml';
import { parseArgs } from '../../src/config';
import { containerdTaskDir } from '../../src/host/host-paths';
import {
  DAEMONSET_DIR,
  RULES_FILE,
  REPO,
  findObject,
  renderKustomize,
  splitImage,
  type K8sObject,
} from './deploy-helpers';

interface Probe {
  httpGet: { path: string; port: string | number };
}
interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Container {
  name: string;
  image: string;
  args: string[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: Probe;
  readinessProbe: Probe;
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: Record<string, unknown> & { capabilities?: { drop?: string[]; add?: string[] } };
  volumeMounts: VolumeMount[];
  env?: { name: string; value?: string }[];
}
interface PodSpec {
  hostPID?: boolean;
  hostNetwork?: boolean;
  nodeSelector?: Record<string, string>;
  tolerations?: { key?: string; operator?: string; effect?: string }[];
  containers: Container[];
  volumes: { name: string; hostPath?: { path: string; type?: string }; emptyDir?: unknown }[];
}
interface DaemonSet extends K8sObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string>; annotations: Record<string, string> };
      spec: PodSpec;
    };
  };
}

const base = renderKustomize(DAEMONSET_DIR);
const ds = findObject<DaemonSet>(base, 'DaemonSet', 'kata-monitor');
const pod = ds.spec.template.spec;
const container = pod.containers[0] as Container;
const config = parseArgs(container.args);

const isUnder = (p: string, dir: string): boolean =>
  p === dir || p.startsWith(dir.endsWith('/') ? dir : dir + '/');

/** Where a path inside the container comes from on the host, through the hostPath mounts (undefined: not mounted). */
function hostPathOf(containerPath: string): { host: string; readOnly: boolean } | undefined {
  const mounts = container.volumeMounts
    .filter(m => isUnder(containerPath, m.mountPath))
    .sort((a, b) => b.mountPath.length - a.mountPath.length);
  const m = mounts[0];
  if (!m) return undefined;
  const vol = pod.volumes.find(v => v.name === m.name);
  if (!vol?.hostPath) return undefined;
  return {
    host: path.posix.join(vol.hostPath.path, path.posix.relative(m.mountPath, containerPath)),
    readOnly: m.readOnly === true,
  };
}

describe('kustomize base', () => {
  it('renders the Namespace, DaemonSet, headless Service, PodMonitor and PrometheusRule, all in kata-system', () => {
    expect(base.map(o => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'DaemonSet/kata-monitor',
      'Namespace/kata-system',
      'PodMonitor/kata-monitor',
      'PrometheusRule/kata-monitor',
      'Service/kata-monitor',
    ]);
    for (const o of base.filter(o => o.kind !== 'Namespace'))
      expect(o.metadata.namespace).toBe('kata-system');
  });

  it('the servicemonitor component swaps the PodMonitor for a ServiceMonitor (never both: double series)', () => {
    const objs = renderKustomize(DAEMONSET_DIR, [path.join(DAEMONSET_DIR, 'components', 'servicemonitor')]);
    const kinds = objs.map(o => o.kind);
    expect(kinds).toContain('ServiceMonitor');
    expect(kinds).not.toContain('PodMonitor');
    const sm = findObject<K8sObject & { spec: Record<string, unknown> }>(objs, 'ServiceMonitor');
    const svc = findObject<K8sObject & { spec: { ports: { name: string }[] } }>(objs, 'Service');
    const spec = sm.spec as {
      selector: { matchLabels: Record<string, string> };
      namespaceSelector: { matchNames: string[] };
      endpoints: { port: string; path: string }[];
    };
    expect(spec.namespaceSelector.matchNames).toEqual(['kata-system']);
    for (const [k, v] of Object.entries(spec.selector.matchLabels)) expect(svc.metadata.labels?.[k]).toBe(v);
    expect(spec.endpoints.map(e => [e.port, e.path])).toEqual([['metrics', '/metrics']]);
    expect(svc.spec.ports.map(p => p.name)).toContain('metrics');
  });

  it('the no-prometheus-operator component leaves only core kinds (no CRDs needed)', () => {
    const objs = renderKustomize(DAEMONSET_DIR, [
      path.join(DAEMONSET_DIR, 'components', 'no-prometheus-operator'),
    ]);
    expect(objs.map(o => o.kind).sort()).toEqual(['DaemonSet', 'Namespace', 'Service']);
  });

  it('pins the image to the package version, never latest', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    const [name, tag] = splitImage(container.image);
    expect(tag).toBe(pkg.version);
    expect(name).toContain('/');
    for (const f of fs.readdirSync(DAEMONSET_DIR).filter(f => f.endsWith('.yaml'))) {
      expect(fs.readFileSync(path.join(DAEMONSET_DIR, f), 'utf8')).not.toMatch(/image:.*:latest/);
    }
  });
});

describe('DaemonSet against the daemon', () => {
  it("container args parse with the daemon's own parser: all interfaces on 8090, containerd's CRI socket", () => {
    expect(config.action).toBe('run');
    expect(config.listenHost).toBe('0.0.0.0');
    expect(config.listenPort).toBe(8090);
    expect(config.runtimeEndpoint?.socketPath).toBe('/run/containerd/containerd.sock');
    expect(config.warnings).toEqual([]);
  });

  it('mounts, read-only, the right host path for everything the daemon reads with these args', () => {
    const roots = config.sandboxRoots.map(r => r.path);
    expect(roots).toEqual(['/run/vc/sbs', '/run/kata']);
    // container path the daemon uses → host path it must see there
    const needs: [string, string][] = [
      ...config.sandboxRoots.map(r => [r.path, r.path] as [string, string]),
      [config.runtimeEndpoint?.socketPath as string, '/run/containerd/containerd.sock'],
      [containerdTaskDir(config.runPath), '/run/containerd/io.containerd.runtime.v2.task'],
      // hybrid-vsock agent sockets and hypervisor pid files
      [path.posix.join(config.runPath, 'vc', 'vm'), '/run/vc/vm'],
      [path.posix.join(config.runPath, 'vc', 'firecracker'), '/run/vc/firecracker'],
      [path.posix.join(config.runPath, 'kata'), '/run/kata'],
      // pod and overhead cgroups
      [path.posix.join(config.sysfsPath, 'fs', 'cgroup'), '/sys/fs/cgroup'],
    ];
    for (const [inContainer, onHost] of needs) {
      expect({ path: inContainer, mount: hostPathOf(inContainer) }).toEqual({
        path: inContainer,
        mount: { host: onHost, readOnly: true },
      });
    }
    for (const m of container.volumeMounts) {
      const v = pod.volumes.find(x => x.name === m.name);
      if (v?.hostPath)
        expect({ mount: m.mountPath, readOnly: m.readOnly }).toEqual({ mount: m.mountPath, readOnly: true });
    }
  });

  it('sees host processes through hostPID (/proc is not a mount) and needs no host network', () => {
    expect(config.procfsPath).toBe('/proc');
    expect(pod.hostPID).toBe(true);
    expect(pod.hostNetwork).toBeFalsy();
    expect(hostPathOf('/proc')).toBeUndefined();
    // The reason is written next to it.
    expect(fs.readFileSync(path.join(DAEMONSET_DIR, 'daemonset.yaml'), 'utf8')).toMatch(
      /# hostPID: [^\n]*\/proc\/<pid>/,
    );
  });

  it('probes and annotations use the port and the paths the daemon serves', () => {
    const port = container.ports.find(p => p.name === 'metrics');
    expect(port?.containerPort).toBe(config.listenPort);
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(ds.spec.template.metadata.annotations).toEqual({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(config.listenPort),
      'prometheus.io/path': '/metrics',
    });
  });

  it('runs on tainted Kata nodes only, as root with a read-only root filesystem and limited resources', () => {
    expect(pod.nodeSelector).toEqual({ 'katacontainers.io/kata-runtime': 'true' });
    expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
    const sc = container.securityContext;
    expect(sc).toMatchObject({
      runAsUser: 0,
      readOnlyRootFilesystem: true,
      privileged: false,
      allowPrivilegeEscalation: false,
    });
    expect(sc.capabilities?.drop).toEqual(['ALL']);
    expect(container.resources.requests).toEqual({ cpu: '100m', memory: '192Mi' });
    expect(container.resources.limits).toEqual({ cpu: '1', memory: '512Mi' });
    // V8's old-space cap stays under the memory limit, so the heap is collected before the cgroup kills it.
    const nodeOptions = (container.env ?? []).find(e => e.name === 'NODE_OPTIONS')?.value;
    expect(Number(/--max-old-space-size=(\d+)/.exec(nodeOptions ?? '')?.[1])).toBeLessThan(512);
  });

  it('the Service and the PodMonitor select the DaemonSet pods on the named port', () => {
    const podLabels = ds.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) expect(podLabels[k]).toBe(v);
    const svc = findObject<K8sObject & { spec: Record<string, unknown> }>(base, 'Service');
    const s = svc.spec as {
      clusterIP: string;
      selector: Record<string, string>;
      ports: { name: string; port: number; targetPort: string }[];
    };
    expect(s.clusterIP).toBe('None');
    for (const [k, v] of Object.entries(s.selector)) expect(podLabels[k]).toBe(v);
    expect(s.ports).toEqual([{ name: 'metrics', port: 8090, targetPort: 'metrics', protocol: 'TCP' }]);
    const pm = findObject<K8sObject & { spec: Record<string, unknown> }>(base, 'PodMonitor');
    const p = pm.spec as {
      selector: { matchLabels: Record<string, string> };
      namespaceSelector: { matchNames: string[] };
      podMetricsEndpoints: { port: string; path: string; interval: string; scrapeTimeout: string }[];
    };
    for (const [k, v] of Object.entries(p.selector.matchLabels)) expect(podLabels[k]).toBe(v);
    expect(p.namespaceSelector.matchNames).toEqual(['kata-system']);
    expect(p.podMetricsEndpoints.map(e => [e.port, e.path])).toEqual([['metrics', '/metrics']]);
    // Prometheus requires scrape_timeout <= interval; and it must exceed the daemon's per-shim timeout.
    const seconds = (d: string): number => Number(/^(\d+)s$/.exec(d)?.[1]);
    for (const e of p.podMetricsEndpoints) {
      expect(seconds(e.scrapeTimeout)).toBeLessThanOrEqual(seconds(e.interval));
      expect(seconds(e.scrapeTimeout) * 1000).toBeGreaterThan(config.shimTimeoutMs);
    }
  });

  it('the PrometheusRule embeds exactly the groups of the plain rules file', () => {
    const pr = findObject<K8sObject & { spec: unknown }>(base, 'PrometheusRule');
    const rules = yaml.load(fs.readFileSync(RULES_FILE, 'utf8'));
    expect(pr.spec).toEqual(rules);
  });
});
