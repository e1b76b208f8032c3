import { Writable } from 'node:stream';
import * as zlib from 'node:zlib';
import { parseExposition } from '../../src/metrics/exposition-parse';
import {
  familiesToString,
  renderChunks,
  renderTaggedChunks,
  writeFamilies,
} from '../../src/metrics/exposition-write';
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

describe('ASCII tagging (latin1 fast path)', () => {
  class ByteSink extends Writable {
    readonly chunks: Buffer[] = [];
    override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
      this.chunks.push(chunk);
      cb();
    }
  }

  function partsOf(bodies: Array<{ text: string; ascii?: boolean; labels?: string }>): MergedFamily[] {
    return mergeParts(
      bodies.map((b, i) => ({
        exposition: parseExposition(b.text),
        labels: b.labels ?? sandboxLabelText({ id: `sb${i}` }),
        sandboxId: `sb${i}`,
        origin: `sb${i}`,
        ...(b.ascii === undefined ? {} : { ascii: b.ascii }),
      })),
    ).families;
  }

  it('tags a chunk ASCII only when every part in it (and every HELP) is', () => {
    const many = Array.from({ length: 200 }, (_, i) => `m{item="i${i}"} ${i}\n`).join('');
    const fams = partsOf([
      { text: `# TYPE m gauge\n${many}`, ascii: true },
      { text: `# TYPE m gauge\nm{item="caf\u00e9"} 1\n`, ascii: false },
      { text: `# TYPE m gauge\n${many}`, ascii: true },
      { text: `# TYPE m gauge\n${many}` }, // unknown: treated as not ASCII
    ]);
    const chunks = [...renderTaggedChunks(fams, 4096)];
    expect(chunks.map(c => c.text).join('')).toBe(familiesToString(fams));
    expect(chunks[0]!.ascii).toBe(true);
    const withAccent = chunks.findIndex(c => c.text.includes('caf\u00e9'));
    expect(chunks[withAccent]!.ascii).toBe(false);
    // Chunks holding only lines of ASCII parts after the accented one are ASCII again; the unknown part is not.
    expect(chunks.some((c, i) => i > withAccent && c.ascii)).toBe(true);
    expect(chunks[chunks.length - 1]!.ascii).toBe(false);
    const nonAsciiHelp = partsOf([{ text: '# HELP h Gr\u00fc\u00dfe.\n# TYPE h gauge\nh 1\n', ascii: true }]);
    expect([...renderTaggedChunks(nonAsciiHelp)][0]!.ascii).toBe(false);
  });

  it('writes UTF-8 bytes for non-ASCII text and the same bytes either way for ASCII text', async () => {
    const fams = partsOf([
      { text: '# TYPE m gauge\nm{item="a"} 1\n', ascii: true },
      { text: '# TYPE m gauge\nm{item="\u00e9\u6f22"} 2\n', ascii: false },
      { text: '# TYPE n gauge\nn 3\n', ascii: false, labels: 'pod="\u00fc"' },
    ]);
    const sink = new ByteSink();
    const r = await writeFamilies(fams, sink);
    expect(r.completed).toBe(true);
    const bytes = Buffer.concat(sink.chunks);
    expect(bytes.equals(Buffer.from(familiesToString(fams), 'utf8'))).toBe(true);
    expect(bytes.toString('utf8')).toContain('m{item="\u00e9\u6f22",sandbox_id="sb1",');
    expect(bytes.toString('utf8')).toContain('n{pod="\u00fc"} 3\n');
  });
});
