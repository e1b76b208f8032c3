import { Writable } from 'node:stream';
import * as zlib from 'node:zlib';
import { parseExposition } from '../../src/metrics/exposition-parse';
import { familiesToString, renderChunks, writeFamilies } from '../../src/metrics/exposition-write';
import { mergeParts, type MergedFamily } from '../../src/metrics/merge';
import { sandboxLabelText } from '../../src/metrics/relabel';

function bigFamilies(nSandboxes: number, perSandbox: number): MergedFamily[] {
  const parts = [];
  for (let s = 0; s < nSandboxes; s++) {
    let text = '# HELP big_metric A big one.\n# TYPE big_metric gauge\n';
    for (let i = 0; i < perSandbox; i++) text += `big_metric{item="item_${i}"} ${i * s}\n`;
    text += '# TYPE other gauge\nother 1\n';
    const id = `sb${String(s).padStart(4, '0')}`;
    parts.push({
      exposition: parseExposition(text),
      labels: sandboxLabelText({ id }),
      sandboxId: id,
      origin: id,
    });
  }
  return mergeParts(parts).families;
}

/** A Writable that accepts a chunk only every few ms (a slow client). */
class SlowSink extends Writable {
  readonly chunks: Buffer[] = [];
  maxBuffered = 0;
  constructor() {
    super({ highWaterMark: 1024 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.maxBuffered = Math.max(this.maxBuffered, this.writableLength);
    this.chunks.push(chunk);
    setTimeout(() => cb(), 1);
  }
}

describe('writer', () => {
  it('chunks at family and sample boundaries and reassembles to the full text', () => {
    const fams = bigFamilies(3, 500);
    const chunks = [...renderChunks(fams, 1000)];
    expect(chunks.length).toBeGreaterThan(10);
    for (const c of chunks) expect(c.endsWith('\n')).toBe(true);
    expect(chunks.join('')).toBe(familiesToString(fams));
  });

  it('respects backpressure of a slow Writable and writes everything', async () => {
    const fams = bigFamilies(5, 400);
    const sink = new SlowSink();
    const r = await writeFamilies(fams, sink, { chunkChars: 4096 });
    await new Promise<void>(resolve => sink.end(resolve));
    expect(r.completed).toBe(true);
    const text = Buffer.concat(sink.chunks).toString('utf8');
    expect(text).toBe(familiesToString(fams));
    // never more than one chunk queued beyond the high-water mark: we waited for 'drain'
    expect(sink.maxBuffered).toBeLessThanOrEqual(1024 + 4096 * 2);
  });

  it('round-trips through gzip', async () => {
    const fams = bigFamilies(4, 300);
    const gz = zlib.createGzip({ level: 1 });
    const out: Buffer[] = [];
    gz.on('data', (b: Buffer) => out.push(b));
    const ended = new Promise(resolve => gz.on('end', resolve));
    await writeFamilies(fams, gz);
    gz.end();
    await ended;
    expect(zlib.gunzipSync(Buffer.concat(out)).toString('utf8')).toBe(familiesToString(fams));
  });

  it('stops when the stream is destroyed mid-way', async () => {
    const fams = bigFamilies(5, 400);
    const sink = new SlowSink();
    let n = 0;
    sink.on('pipe', () => undefined);
    const origWrite = sink.write.bind(sink);
    sink.write = ((chunk: string) => {
      if (++n === 3) sink.destroy();
      return origWrite(chunk);
    }) as typeof sink.write;
    const r = await writeFamilies(fams, sink, { chunkChars: 2048 });
    expect(r.completed).toBe(false);
    expect(n).toBe(3);
  });
});
