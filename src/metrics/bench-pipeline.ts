/**
 * Micro-benchmark of the /metrics pipeline without sockets: parse + relabel + merge + write of N synthetic
 * shim bodies (default 100 × ~67 KB / ~860 samples, like a Go runtime + QEMU shim), to a discarding stream,
 * plain and through gzip. Prints wall ms, CPU ms and memory per round.
 *
 *   npx tsc -p tsconfig.build.json && node dist/metrics/bench-pipeline.js [sandboxes] [rounds]
 */
import { Writable } from 'node:stream';
import * as zlib from 'node:zlib';
import { parseYielding, textIsAscii } from './collect';
import { writeFamilies } from './exposition-write';
import { mergeParts, type MergePart } from './merge';
import { renameRuntimeFamilies, resolveLabelCollisions, sandboxLabelText } from './relabel';

const ITEMS = {
  status: [
    'vmpeak',
    'vmsize',
    'vmlck',
    'vmpin',
    'vmhwm',
    'vmrss',
    'rssanon',
    'rssfile',
    'rssshmem',
    'vmdata',
    'vmstk',
    'vmexe',
    'vmlib',
    'vmpte',
    'vmpmd',
    'vmswap',
    'hugetlbpages',
    'voluntary_ctxt_switches',
    'nonvoluntary_ctxt_switches',
  ],
  io: ['rchar', 'wchar', 'syscr', 'syscw', 'readbytes', 'writebytes', 'cancelledwritebytes'],
  stat: ['utime', 'stime', 'cutime', 'cstime'],
  net: [
    'recv_bytes',
    'recv_packets',
    'recv_errs',
    'recv_drop',
    'sent_bytes',
    'sent_packets',
    'sent_errs',
    'sent_drop',
  ],
  actions: [
    'create',
    'start',
    'delete',
    'exec',
    'state',
    'pause',
    'resume',
    'kill',
    'pids',
    'stats',
    'update',
    'wait',
  ],
};

/** A deterministic Go-shim-like body; `seed` varies the values. */
export function syntheticShimBody(seed: number): string {
  let v = seed * 7919 + 1;
  const val = (): string => {
    v = (v * 48271) % 2147483647;
    return String(v % 100000 === 0 ? 0 : (v % 1000000) / 10);
  };
  let out = '';
  const family = (name: string, type: string, help: string, lines: string[]): void => {
    out += `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n` + lines.join('');
  };
  const items = (name: string, list: string[], extra = ''): string[] =>
    list.map(i => `${name}{${extra}item="${i}"} ${val()}\n`);
  family(
    'go_gc_duration_seconds',
    'summary',
    'A summary of the pause duration of garbage collection cycles.',
    [
      ...['0', '0.25', '0.5', '0.75', '1'].map(q => `go_gc_duration_seconds{quantile="${q}"} ${val()}\n`),
      `go_gc_duration_seconds_sum ${val()}\n`,
      `go_gc_duration_seconds_count ${val()}\n`,
    ],
  );
  for (let i = 0; i < 26; i++) {
    family(`go_memstats_stat_${i}_bytes`, 'gauge', 'Number of bytes of some Go runtime statistic.', [
      `go_memstats_stat_${i}_bytes ${val()}\n`,
    ]);
  }
  for (const p of ['kata_hypervisor', 'kata_shim', 'kata_virtiofsd', 'kata_agent']) {
    family(`${p}_proc_status`, 'gauge', 'Process status.', items(`${p}_proc_status`, ITEMS.status));
    family(`${p}_io_stat`, 'gauge', 'Process IO statistics.', items(`${p}_io_stat`, ITEMS.io));
    family(`${p}_proc_stat`, 'gauge', 'Process statistics.', items(`${p}_proc_stat`, ITEMS.stat));
    family(`${p}_fds`, 'gauge', 'Open FDs.', [`${p}_fds ${val()}\n`]);
    family(`${p}_threads`, 'gauge', 'Threads.', [`${p}_threads ${val()}\n`]);
  }
  family('kata_hypervisor_netdev', 'gauge', 'Net devices statistics.', [
    ...items('kata_hypervisor_netdev', ITEMS.net, 'interface="lo",'),
    ...items('kata_hypervisor_netdev', ITEMS.net, 'interface="tap0_kata",'),
  ]);
  for (const h of [
    'kata_shim_rpc_durations_histogram_milliseconds',
    'kata_shim_agent_rpc_durations_histogram_milliseconds',
  ]) {
    const lines: string[] = [];
    for (const a of ITEMS.actions) {
      for (const le of ['1', '2', '4', '8', '16', '32', '64', '128', '256', '512', '+Inf']) {
        lines.push(`${h}_bucket{action="${a}",le="${le}"} ${val()}\n`);
      }
      lines.push(`${h}_sum{action="${a}"} ${val()}\n`, `${h}_count{action="${a}"} ${val()}\n`);
    }
    family(h, 'histogram', 'RPC latency distributions.', lines);
  }
  const mem: string[] = [];
  for (let i = 0; i < 58; i++) mem.push(`kata_guest_meminfo{item="meminfo_field_${i}"} ${val()}\n`);
  family('kata_guest_meminfo', 'gauge', 'Statistics about memory usage in the system.', mem);
  const vm: string[] = [];
  for (let i = 0; i < 140; i++) vm.push(`kata_guest_vm_stat{item="nr_vmstat_counter_${i}"} ${val()}\n`);
  family('kata_guest_vm_stat', 'gauge', 'Statistics about the guest virtual memory.', vm);
  const cpu: string[] = [];
  for (const c of ['total', '0', '1', '2', '3'])
    for (const it of [
      'user',
      'nice',
      'system',
      'idle',
      'iowait',
      'irq',
      'softirq',
      'steal',
      'guest',
      'guest_nice',
    ])
      cpu.push(`kata_guest_cpu_time{cpu="${c}",item="${it}"} ${val()}\n`);
  family('kata_guest_cpu_time', 'gauge', 'Guest CPU statistics.', cpu);
  const disk: string[] = [];
  for (const d of ['vda', 'vdb', 'pmem0'])
    for (let i = 0; i < 17; i++) disk.push(`kata_guest_diskstat{disk="${d}",item="field_${i}"} ${val()}\n`);
  family('kata_guest_diskstat', 'gauge', 'Disks statistics in system.', disk);
  const gnet: string[] = [];
  for (const n of ['eth0', 'lo'])
    for (let i = 0; i < 16; i++)
      gnet.push(`kata_guest_netdev_stat{interface="${n}",item="f${i}"} ${val()}\n`);
  family('kata_guest_netdev_stat', 'gauge', 'Guest net devices statistics.', gnet);
  return out;
}

class NullSink extends Writable {
  bytes = 0;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.bytes += chunk.length;
    cb();
  }
}

async function round(
  bodies: Buffer[],
  gzip: boolean,
): Promise<{ ms: number; cpuMs: number; outBytes: number }> {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const parts: MergePart[] = [];
  for (let i = 0; i < bodies.length; i++) {
    const ascii = textIsAscii(bodies[i]!);
    const body = bodies[i]!;
    const exposition = ascii
      ? await parseYielding(body.toString('latin1'), body)
      : await parseYielding(body.toString('utf8'));
    renameRuntimeFamilies(exposition);
    resolveLabelCollisions(exposition);
    const id = i.toString(16).padStart(64, '0');
    const sb = {
      id,
      cri: { uid: `uid-${i}-0000-0000-0000-000000000000`, name: `pod-${i}`, namespace: 'default' },
    };
    const labels = sandboxLabelText(sb);
    parts.push({ exposition, labels, sandboxId: id, origin: id, ascii: ascii && textIsAscii(labels) });
  }
  const families = mergeParts(parts).families;
  const sink = new NullSink();
  if (gzip) {
    const gz = zlib.createGzip({ level: 1 });
    gz.pipe(sink);
    const done = new Promise(resolve => sink.on('finish', resolve));
    await writeFamilies(families, gz);
    gz.end();
    await done;
  } else {
    await writeFamilies(families, sink);
  }
  const cpu = process.cpuUsage(c0);
  return {
    ms: Number(process.hrtime.bigint() - t0) / 1e6,
    cpuMs: (cpu.user + cpu.system) / 1000,
    outBytes: sink.bytes,
  };
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 100);
  const rounds = Number(process.argv[3] ?? 10);
  const bodies = Array.from({ length: n }, (_, i) => Buffer.from(syntheticShimBody(i)));
  const samples = bodies[0]!
    .toString()
    .split('\n')
    .filter(l => l && !l.startsWith('#')).length;
  console.log(`${n} bodies, ${(bodies[0]!.length / 1024).toFixed(1)} KB and ${samples} samples each`);
  let peakRss = 0;
  const probe = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 5);
  for (const gzip of [false, true]) {
    const ms: number[] = [];
    const cpu: number[] = [];
    let out = 0;
    for (let r = 0; r < rounds; r++) {
      const res = await round(bodies, gzip);
      ms.push(res.ms);
      cpu.push(res.cpuMs);
      out = res.outBytes;
    }
    ms.sort((a, b) => a - b);
    cpu.sort((a, b) => a - b);
    const med = (a: number[]): string => a[Math.floor(a.length / 2)]!.toFixed(1);
    console.log(
      `${gzip ? 'gzip ' : 'plain'}: median ${med(ms)} ms wall, ${med(cpu)} ms CPU, output ${(out / 1e6).toFixed(2)} MB`,
    );
  }
  clearInterval(probe);
  console.log(
    `peak RSS ${(peakRss / 1e6).toFixed(1)} MB, heap used now ${(process.memoryUsage().heapUsed / 1e6).toFixed(1)} MB`,
  );
}

if (require.main === module) {
  main().catch(err => {
    console.error(err);
    process.exitCode = 1;
  });
}
