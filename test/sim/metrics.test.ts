import { spawnSync } from 'node:child_process';
import { agentExposition, goShimBody, guestContainerStats } from '../../src/sim/metrics-go';
import { countSamples, formatGoFloat } from '../../src/sim/metrics-model';
import { rsShimBody } from '../../src/sim/metrics-rs';
import { PROC_STATUS_ITEMS_RUST } from '../../src/sim/procfs-model';
import { drawSandbox } from '../../src/sim/plan';
import type { ShimFault } from '../../src/sim/types';
import { findBinary } from '../helpers/util';

function sandbox(hypervisor: string, runtime: 'go' | 'rs' = 'go', index = 0, shimFault?: ShimFault) {
  const d = drawSandbox(42, index);
  return { id: d.id, seed: d.seed, vcpus: d.vcpus, containers: d.containers, hypervisor, runtime, shimFault };
}

/** promtool exits 0 (clean) or 3 (lint warnings only); anything else, or a parse error, is a failure. */
function promtoolErrors(body: string): string | undefined {
  const promtool = findBinary('promtool');
  if (!promtool)
    throw new Error('promtool not found on PATH: install the Debian package prometheus (CI does)');
  const r = spawnSync(promtool, ['check', 'metrics'], { input: body, encoding: 'utf8', maxBuffer: 64 << 20 });
  const out = `${r.stdout}${r.stderr}`;
  if ((r.status === 0 || r.status === 3) && !/error while linting|parsing error/i.test(out)) return undefined;
  return `promtool exit ${r.status}: ${out.slice(0, 500)}`;
}

function value(body: string, series: string): number {
  const line = body.split('\n').find(l => l.startsWith(series + ' '));
  if (!line) throw new Error(`series ${series} not in body`);
  return Number(line.slice(series.length + 1));
}

function familyOrder(body: string): string[] {
  return body
    .split('\n')
    .filter(l => l.startsWith('# TYPE '))
    .map(l => l.split(' ')[2]!);
}

describe('simulated metric bodies', () => {
  it('formats floats like Go expfmt', () => {
    expect(formatGoFloat(2990080)).toBe('2.99008e+06');
    expect(formatGoFloat(123456)).toBe('123456');
    expect(formatGoFloat(1048576)).toBe('1.048576e+06');
    expect(formatGoFloat(2 ** 63)).toBe('9.223372036854776e+18');
    expect(formatGoFloat(0.00001)).toBe('1e-05');
    expect(formatGoFloat(0.5)).toBe('0.5');
  });

  it.each(['clh', 'qemu'])('Go + %s: 800-1,000 samples, 60-70 KB, sorted shim families then agent', hv => {
    for (let i = 0; i < 6; i++) {
      const body = goShimBody(sandbox(hv, 'go', i), 5);
      const n = countSamples(body);
      expect(n).toBeGreaterThanOrEqual(800);
      expect(n).toBeLessThanOrEqual(1000);
      expect(body.length).toBeGreaterThanOrEqual(60 * 1024);
      expect(body.length).toBeLessThanOrEqual(70 * 1024);
    }
    const body = goShimBody(sandbox(hv), 5);
    const fams = familyOrder(body);
    const agentStart = fams.findIndex(f => f.startsWith('kata_agent_'));
    const shim = fams.slice(0, agentStart);
    const agent = fams.slice(agentStart);
    expect(shim).toEqual([...shim].sort());
    expect(agent).toEqual([...agent].sort());
    expect(shim).toContain('go_goroutines');
    expect(shim).toContain('process_start_time_seconds');
    expect(shim).toContain('kata_shim_rpc_durations_histogram_milliseconds');
    expect(shim).toContain('kata_hypervisor_netdev');
    expect(shim.some(f => f.startsWith('kata_firecracker_'))).toBe(false);
    expect(agent.every(f => f.startsWith('kata_agent_') || f.startsWith('kata_guest_'))).toBe(true);
    expect(body).toContain('kata_shim_rpc_durations_histogram_milliseconds_bucket{action="create",le="512"}');
    expect(body).toContain(
      'kata_shim_agent_rpc_durations_histogram_milliseconds_bucket{action="grpc.GetMetricsRequest",le="1"}',
    );
    expect(body).toContain('kata_hypervisor_netdev{interface="tap0_kata",item="recv_bytes"}');
    expect(body).toContain('kata_shim_proc_status{item="vmpmd"}');
    expect(body).toContain('kata_shim_io_stat{item="cancelledwritebytes"}');
    expect(body).toContain('kata_agent_io_stat{item="cancelled_write_bytes"}');
    expect(body).not.toContain('sandbox_id=');
    expect(promtoolErrors(body)).toBeUndefined();
  });

  it('Go + firecracker adds the 142 kata_firecracker_* series and no virtiofsd vecs', () => {
    const body = goShimBody(sandbox('firecracker'), 1);
    expect(body.split('\n').filter(l => l.startsWith('kata_firecracker_')).length).toBe(142);
    expect(body).toContain('kata_virtiofsd_threads 0');
    expect(body).not.toContain('kata_virtiofsd_proc_status');
    expect(promtoolErrors(body)).toBeUndefined();
  });

  it('counters and histogram counts grow with the tick, gauges stay in range', () => {
    const sb = sandbox('clh');
    const a = goShimBody(sb, 3);
    const b = goShimBody(sb, 4);
    for (const s of [
      'kata_agent_scrape_count',
      'kata_shim_agent_rpc_durations_histogram_milliseconds_count{action="grpc.GetMetricsRequest"}',
      'kata_guest_cpu_time{cpu="total",item="user"}',
      'process_cpu_seconds_total',
    ]) {
      expect(value(b, s)).toBeGreaterThan(value(a, s));
    }
    expect(value(b, 'kata_agent_scrape_count')).toBe(4);
    expect(goShimBody(sb, 3)).toBe(a); // deterministic
  });

  it('runtime-rs body: agent + dragonball + shim, independently sorted, Rust spellings and kB', () => {
    const body = rsShimBody(sandbox('dragonball', 'rs'), 2);
    const fams = familyOrder(body);
    const hv = fams.indexOf('kata_hypervisor_scrape_count');
    const shim = fams.indexOf('kata_shim_fds');
    expect(fams[0]).toBe('kata_agent_io_stat');
    expect(hv).toBeGreaterThan(fams.indexOf('kata_guest_vm_stat'));
    expect(shim).toBeGreaterThan(fams.indexOf('kata_hypervisor_vcpu'));
    expect(fams.slice(shim)).toEqual([
      'kata_shim_fds',
      'kata_shim_io_stat',
      'kata_shim_proc_stat',
      'kata_shim_proc_status',
      'kata_shim_threads',
    ]);
    expect(fams.some(f => f.startsWith('go_') || f.startsWith('process_'))).toBe(false);
    expect(body).toMatch(/kata_hypervisor_vcpu\{cpu_id="0",item="exit_mmio_write"\} \d+/);
    expect(body).toContain('kata_shim_io_stat{item="cancelled_write_bytes"}');
    const statusItems = body.split('\n').filter(l => l.startsWith('kata_shim_proc_status{'));
    expect(statusItems).toHaveLength(PROC_STATUS_ITEMS_RUST.length);
    expect(value(body, 'kata_shim_proc_status{item="vmrss"}')).toBeLessThan(2e6); // kB, not bytes
    expect(promtoolErrors(body)).toBeUndefined();

    const clh = rsShimBody(sandbox('clh', 'rs'), 2);
    expect(clh).not.toContain('kata_hypervisor_');
    expect(promtoolErrors(clh)).toBeUndefined();
  });

  it('agentExposition is the agent part of the bodies; guestContainerStats agrees with it', () => {
    const sb = sandbox('clh');
    const text = agentExposition(sb, 7);
    expect(familyOrder(text)[0]).toBe('kata_agent_io_stat');
    expect(promtoolErrors(text)).toBeUndefined();
    expect(rsShimBody({ ...sb, hypervisor: 'clh' }, 7).startsWith(text)).toBe(true);
    const st1 = guestContainerStats(sb, sb.containers[1]!, 7)!;
    const st2 = guestContainerStats(sb, sb.containers[1]!, 8)!;
    expect(st2.cpuUsageNs).toBeGreaterThan(st1.cpuUsageNs);
    expect(st1.cpuUsageNs).toBe(
      st1.cpuUserNs + st1.cpuKernelNs + (st1.cpuUsageNs - st1.cpuUserNs - st1.cpuKernelNs),
    );
    const totalMs =
      value(text, 'kata_guest_cpu_time{cpu="total",item="user"}') +
      value(text, 'kata_guest_cpu_time{cpu="total",item="system"}');
    expect(st1.cpuUsageNs).toBeLessThan(totalMs * 1e6);
    expect(st1.cpuUsageNs).toBeGreaterThan(0);
    expect(st1.network[0]!.rxBytes).toBe(
      value(text, 'kata_guest_netdev_stat{interface="eth0",item="recv_bytes"}'),
    );
    expect(st1.memoryUsageBytes).toBeLessThan(value(text, 'kata_guest_meminfo{item="anon_pages"}'));
    expect(guestContainerStats(sb, 'nope', 7)).toBeUndefined();
  });

  it('faults change the body: garbage, conflict, prelabelled, huge', () => {
    const garbage = goShimBody(sandbox('clh', 'go', 0, { kind: 'garbage' }), 1);
    expect(promtoolErrors(garbage)).toBeDefined();
    const lines = garbage.split('\n');
    const bad = lines.findIndex(l => l.startsWith('kata_hypervisor_threads{state="running" 12'));
    expect(bad).toBeGreaterThan(100);
    expect(bad).toBeLessThan(lines.length - 100);

    const conflict = goShimBody(sandbox('clh', 'go', 0, { kind: 'conflict' }), 1);
    expect(conflict).toContain('# TYPE kata_guest_load counter');
    expect(goShimBody(sandbox('clh'), 1)).toContain('# TYPE kata_guest_load gauge');

    const sb = sandbox('clh', 'go', 0, { kind: 'prelabelled' });
    const pre = goShimBody(sb, 1);
    expect(pre).toContain(`kata_guest_load{item="load1",sandbox_id="${sb.id}"}`);
    expect(promtoolErrors(pre)).toBeUndefined();

    const huge = goShimBody(sandbox('clh', 'go', 0, { kind: 'huge' }), 1);
    expect(huge.length).toBeGreaterThan(20 * 1024 * 1024);
    expect(huge).toMatch(/kata_guest_vm_stat\{item="sim_extra_0000001"\} \d+/);
  });

  it('an agent fault leaves only the shim families in the body', () => {
    const body = goShimBody({ ...sandbox('clh'), agentFault: { kind: 'deny' } }, 1);
    expect(body).not.toContain('kata_agent_');
    expect(body).toContain('kata_shim_threads');
  });
});
