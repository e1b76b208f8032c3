/**
 * The host collector's family names are a public contract (dashboards, alerts, docs). The behaviour tests
 * address them through the collector's own table `F`; this pins that table to the documented spellings so a
 * rename cannot pass silently.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { F } from '../../src/host/host-collector';

const DOCUMENTED = {
  hostCpus: 'kata_monitor_host_cpus',
  hostMemory: 'kata_monitor_host_memory_bytes',
  procCpu: 'kata_monitor_sandbox_process_cpu_seconds_total',
  procRss: 'kata_monitor_sandbox_process_resident_memory_bytes',
  procVsz: 'kata_monitor_sandbox_process_virtual_memory_bytes',
  procFds: 'kata_monitor_sandbox_process_open_fds',
  procThreads: 'kata_monitor_sandbox_process_threads',
  procIoRead: 'kata_monitor_sandbox_process_io_read_bytes_total',
  procIoWrite: 'kata_monitor_sandbox_process_io_write_bytes_total',
  podCpu: 'kata_monitor_pod_cpu_seconds_total',
  podMem: 'kata_monitor_pod_memory_working_set_bytes',
  podOvhCpu: 'kata_monitor_pod_overhead_cpu_seconds_total',
  podOvhMem: 'kata_monitor_pod_overhead_memory_bytes',
  invalid: 'kata_monitor_invalid_samples_total',
  readErrors: 'kata_monitor_host_read_errors_total',
  pidReused: 'kata_monitor_host_pid_reused_total',
  duration: 'kata_monitor_host_collection_duration_seconds',
};

describe('host collector family names', () => {
  it('are the documented ones', () => {
    expect(F).toEqual(DOCUMENTED);
  });

  it('each appears in docs/host-metrics.md', () => {
    const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'host-metrics.md'), 'utf8');
    for (const name of Object.values(DOCUMENTED))
      expect({ name, documented: doc.includes('`' + name + '`') }).toEqual({ name, documented: true });
  });
});
