/**
 * Micro-benchmark of the /metrics pipeline without sockets: parse + relabel + merge + write of N synthetic
 * shim bodies (default 100 × ~67 KB / ~860 samples, like a Go runtime + QEMU shim), to a discarding stream,
 * plain and through gzip. Prints wall ms, CPU ms and memory per round.
 *
 *   npx tsc -p tsconfig.build.json && node dist/metrics/bench-pipeline.js [sandboxes] [rounds]
 */
import { Writable } from 'node:stream';
import * as zlib from 'node:zlib';
import { ExpositionParser, reparse, type ParseTemplate } from './exposition-parse';
import { writeFamilies } from './exposition-write';
import { mergeParts, type MergePart } from './merge';
import { renameRuntimeFamilies, resolveLabelCollisions, sandboxLabelText } from './relabel';
import { goShimBody } from '../sim/metrics-go';
import { drawSandbox } from '../sim/plan';

/**
 * A realistic Go-runtime shim body: the simulator's own (the families, vocabularies and sizes of the reference,
 * about 860 samples and 67 KB), for sandbox `index` of a node seeded with `seed`, at its first scrape.
 */
export function syntheticShimBody(seed: number, index = 0): string {
  const d = drawSandbox(seed, index);
  return goShimBody(
    { id: d.id, seed: d.seed, vcpus: d.vcpus, containers: d.containers, hypervisor: 'clh', runtime: 'go' },
    1,
  );
}

class NullSink extends Writable {
  bytes = 0;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.bytes += chunk.length;
    cb();
  }
}

/** Per body, the template of its first parse (as the collector keeps one per sandbox). */
const templates = new Map<number, ParseTemplate>();

function parseBody(i: number, body: Buffer): ReturnType<ExpositionParser['result']> {
  const t = templates.get(i);
  const quick = t ? reparse(t, body) : undefined;
  if (quick) return quick;
  const p = new ExpositionParser(body);
  p.parseSome(Number.POSITIVE_INFINITY);
  templates.set(i, p.template());
  return p.result();
}

async function round(
  bodies: Buffer[],
  gzip: boolean,
): Promise<{ ms: number; cpuMs: number; outBytes: number }> {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const parts: MergePart[] = [];
  for (let i = 0; i < bodies.length; i++) {
    const exposition = parseBody(i, bodies[i]!);
    renameRuntimeFamilies(exposition);
    resolveLabelCollisions(exposition);
    const id = i.toString(16).padStart(64, '0');
    const sb = {
      id,
      cri: { uid: `uid-${i}-0000-0000-0000-000000000000`, name: `pod-${i}`, namespace: 'default' },
    };
    const labels = sandboxLabelText(sb);
    parts.push({ exposition, labels, sandboxId: id, origin: id });
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
  const bodies = Array.from({ length: n }, (_, i) => Buffer.from(syntheticShimBody(1, i)));
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
