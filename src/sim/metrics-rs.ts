/**
 * The body a runtime-rs shim serves on `/metrics` (pure): `agent + hypervisor + shim`, three independently
 * encoded Prometheus texts concatenated (so families are not globally sorted), as `metrics_url_handler` does.
 * The hypervisor part is the Dragonball registry for dragonball sandboxes and empty otherwise.
 */
import { type MetricsSandbox, agentTemplate } from './metrics-agent';
import {
  BodyTemplate,
  type Labels,
  type SimFamily,
  type Val,
  TICK,
  Values,
  cachedTemplate,
  compileRegistry,
} from './metrics-model';
import {
  applyFamilyFaults,
  familyFaultVariant,
  GARBAGE_LINES,
  goShimBody,
  goShimTemplate,
  insertBeforeFamily,
  insertHuge,
  type BodySandbox,
} from './metrics-go';
import { procFamilies } from './procfs-model';

export const DRAGONBALL_VCPU_ITEMS = [
  'exit_io_in',
  'exit_io_out',
  'exit_mmio_read',
  'exit_mmio_write',
  'failures',
  'filter_cpuid',
] as const;

/** Dragonball's in-process VMM registry (§2.4.2 labels at HEAD: `cpu_id`, `item`). */
export function dragonballFamilies(sb: MetricsSandbox): SimFamily[] {
  const v = new Values(sb.seed ^ 0x0db0db0d);
  const vcpu: Array<{ labels: Labels; value: Val }> = [];
  for (let c = 0; c < sb.vcpus; c++) {
    for (const it of DRAGONBALL_VCPU_ITEMS) {
      const rate =
        it === 'exit_mmio_write' ? 4000 : it === 'exit_mmio_read' ? 1500 : it.startsWith('exit_io') ? 200 : 0;
      vcpu.push({
        labels: [
          ['cpu_id', String(c)],
          ['item', it],
        ],
        value: rate === 0 ? 0 : v.counter(`vcpu/${c}/${it}`, rate * 300, rate),
      });
    }
  }
  return [
    {
      name: 'kata_hypervisor_scrape_count',
      help: 'Hypervisor metrics scrape count.',
      type: 'counter',
      series: [{ labels: [], value: TICK }],
    },
    {
      name: 'kata_hypervisor_vcpu',
      help: "Hypervisor metrics specific to VCPUs' mode of functioning.",
      type: 'gauge',
      series: vcpu,
    },
    {
      name: 'kata_hypervisor_seccomp',
      help: 'Hypervisor metrics for the seccomp filtering.',
      type: 'gauge',
      series: [{ labels: [['item', 'num_faults']], value: 0 }],
    },
    {
      name: 'kata_hypervisor_signals',
      help: 'Hypervisor metrics related to signals.',
      type: 'gauge',
      series: [
        { labels: [['item', 'sigbus']], value: 0 },
        { labels: [['item', 'sigsegv']], value: 0 },
      ],
    },
  ];
}

/** runtime-rs shim registry: the 5 `kata_shim_*` process families (kB, Rust spellings). */
export function rsShimFamilies(sb: MetricsSandbox): SimFamily[] {
  const v = new Values(sb.seed);
  // With Dragonball the VMM lives inside the shim process, so the shim is big.
  const inProcessVmm = sb.hypervisor === 'dragonball';
  return procFamilies(
    v,
    'rsshim',
    {
      vszBytes: inProcessVmm ? 2.9e9 : 8e8,
      rssBytes: inProcessVmm ? 3.1e8 : 2.4e7,
      threads: inProcessVmm ? 14 + sb.vcpus : 9,
      fds: inProcessVmm ? 60 : 30,
      ticksPerTick: inProcessVmm ? 25 : 2,
      ioPerTick: 2e5,
    },
    {
      threads: { name: 'kata_shim_threads', help: 'Kata containerd shim v2 process threads.' },
      fds: { name: 'kata_shim_fds', help: 'Kata containerd shim v2 open FDs.' },
      procStat: { name: 'kata_shim_proc_stat', help: 'Kata containerd shim v2 process statistics.' },
      procStatus: { name: 'kata_shim_proc_status', help: 'Kata containerd shim v2 process status.' },
      ioStat: { name: 'kata_shim_io_stat', help: 'Kata containerd shim v2 process IO statistics.' },
    },
    'rust',
  );
}

/** The compiled runtime-rs body of a sandbox for its current faults (cached like `goShimTemplate`). */
export function rsShimTemplate(sb: BodySandbox): BodyTemplate {
  const variant = familyFaultVariant(sb);
  const withAgent = !sb.agentFault;
  return cachedTemplate(sb, `rs|${sb.hypervisor}|${variant}|${withAgent ? 'agent' : ''}`, () => {
    const parts: BodyTemplate[] = [];
    if (withAgent) parts.push(agentTemplate(sb, 'rust', variant, fams => applyFamilyFaults(fams, sb)));
    if (sb.hypervisor === 'dragonball') parts.push(compileRegistry(dragonballFamilies(sb), 'rust'));
    parts.push(compileRegistry(rsShimFamilies(sb), 'rust'));
    return BodyTemplate.concat(parts);
  });
}

/** The full runtime-rs `/metrics` body at `tick`. */
export function rsShimBody(sb: BodySandbox, tick: number): string {
  let body = rsShimTemplate(sb).render(tick);
  if (sb.shimFault?.kind === 'garbage') body = insertBeforeFamily(body, 'kata_shim_fds', GARBAGE_LINES);
  if (sb.shimFault?.kind === 'huge' && !sb.agentFault) body = insertHuge(body);
  return body;
}

/** The `/metrics` body for either runtime. */
export function shimBody(sb: BodySandbox & { runtime: 'go' | 'rs' }, tick: number): string {
  return sb.runtime === 'rs' ? rsShimBody(sb, tick) : goShimBody(sb, tick);
}

/**
 * The `/metrics` body for either runtime as bytes, rendered straight from the cached template (what the
 * simulated shim serves; the same bytes as `Buffer.from(shimBody(sb, tick))`).
 */
export function shimBodyBuffer(sb: BodySandbox & { runtime: 'go' | 'rs' }, tick: number): Buffer {
  const kind = sb.shimFault?.kind;
  if (kind === 'garbage' || kind === 'huge') return Buffer.from(shimBody(sb, tick));
  return (sb.runtime === 'rs' ? rsShimTemplate(sb) : goShimTemplate(sb)).renderBuffer(tick);
}
