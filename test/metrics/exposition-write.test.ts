import { Writable } from 'node:stream';
import * as zlib from 'node:zlib';
import {
  FLAG_BRACES,
  FLAG_NEED_COMMA,
  flagsOf,
  parseExposition,
  sampleLines,
  sampleMetas,
  splitOf,
} from '../../src/metrics/exposition-parse';
import {
  familiesToString,
  renderByteChunks,
  renderChunks,
  writeFamilies,
} from '../../src/metrics/exposition-write';
import { mergeParts, type MergedFamily } from '../../src/metrics/merge';
import { renameRuntimeFamilies, resolveLabelCollisions, sandboxLabelText } from '../../src/metrics/relabel';

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

  it('lets the event loop turn while a sink that drains at once takes every chunk', async () => {
    // Like http.ServerResponse to a fast client: the response corks its socket per write, so every write
    // returns false, and the socket flushes synchronously and says 'drain' on the next tick. The writer
    // never waits for I/O; other requests must still be served while it writes.
    class CorkedSink extends Writable {
      bytes = 0;
      override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
        this.bytes += chunk.length;
        cb();
      }
    }
    const corked = (): CorkedSink => {
      const sink = new CorkedSink();
      const write = sink.write.bind(sink);
      sink.write = ((chunk: Buffer, cb?: (err?: Error | null) => void): boolean => {
        write(chunk, cb);
        process.nextTick(() => sink.emit('drain'));
        return false;
      }) as typeof sink.write;
      return sink;
    };
    const fams = bigFamilies(20, 2000);
    const sink = corked();
    let immediates = 0;
    let on = true;
    const spin = (): void => {
      immediates++;
      if (on) setImmediate(spin);
    };
    setImmediate(spin);
    const r = await writeFamilies(fams, sink, { chunkChars: 16 * 1024, yieldEveryChars: 64 * 1024 });
    on = false;
    expect(r.completed).toBe(true);
    expect(sink.bytes).toBe(r.chars);
    // About one turn per 64 KB written (the output is over 3 MB); none without the yields.
    expect(r.chars).toBeGreaterThan(3_000_000);
    expect(immediates).toBeGreaterThan(r.chars / (64 * 1024) / 2);
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

/**
 * An independent, line-by-line reference of the output: each sample line decoded, its labels spliced in at
 * the parser's split (a byte offset), re-encoded.
 */
function referenceBytes(fams: readonly MergedFamily[]): Buffer {
  const out: Buffer[] = [];
  for (const f of fams) {
    if (f.help !== undefined) out.push(Buffer.from(`# HELP ${f.name} ${f.help}\n`));
    out.push(Buffer.from(`# TYPE ${f.name} ${f.type}\n`));
    for (const { part, family } of f.entries) {
      const lines = sampleLines(family);
      const metas = sampleMetas(family);
      lines.forEach((line, i) => {
        const bytes = Buffer.from(line);
        const m = metas[i]!;
        const labels = part.labels;
        const splice =
          labels === ''
            ? ''
            : (flagsOf(m) & FLAG_BRACES) === 0
              ? `{${labels}}`
              : (flagsOf(m) & FLAG_NEED_COMMA) !== 0
                ? `,${labels}`
                : labels;
        out.push(
          Buffer.from(family.linePrefix),
          bytes.subarray(0, splitOf(m)),
          Buffer.from(splice),
          bytes.subarray(splitOf(m)),
          Buffer.from('\n'),
        );
      });
    }
  }
  return Buffer.concat(out);
}

describe('UTF-8 text', () => {
  class ByteSink extends Writable {
    readonly chunks: Buffer[] = [];
    override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
      this.chunks.push(chunk);
      cb();
    }
  }

  function partsOf(bodies: Array<{ text: string; labels?: string }>): MergedFamily[] {
    return mergeParts(
      bodies.map((b, i) => ({
        exposition: parseExposition(b.text),
        labels: b.labels ?? sandboxLabelText({ id: `sb${i}` }),
        sandboxId: `sb${i}`,
        origin: `sb${i}`,
      })),
    ).families;
  }

  it('writes UTF-8 bytes for non-ASCII text and the same bytes either way for ASCII text', async () => {
    const fams = partsOf([
      { text: '# HELP m Gr\u00fc\u00dfe.\n# TYPE m gauge\nm{item="a"} 1\n' },
      { text: '# TYPE m gauge\nm{item="\u00e9\u6f22"} 2\n' },
      { text: '# TYPE n gauge\nn 3\n', labels: 'pod="\u00fc"' },
    ]);
    const sink = new ByteSink();
    const r = await writeFamilies(fams, sink);
    expect(r.completed).toBe(true);
    const bytes = Buffer.concat(sink.chunks);
    expect(bytes.equals(referenceBytes(fams))).toBe(true);
    expect(bytes.toString('utf8')).toContain('# HELP m Gr\u00fc\u00dfe.\n');
    expect(bytes.toString('utf8')).toContain('m{item="\u00e9\u6f22",sandbox_id="sb1",');
    expect(bytes.toString('utf8')).toContain('n{pod="\u00fc"} 3\n');
  });
});

describe('byte writer (samples copied from the body Buffer)', () => {
  /** Parse like the collector does: on the body's bytes. */
  function shimPart(body: string, i: number, labels = sandboxLabelText({ id: `sb${i}` })) {
    const exposition = parseExposition(Buffer.from(body, 'utf8'));
    renameRuntimeFamilies(exposition);
    resolveLabelCollisions(exposition);
    return { exposition, labels, sandboxId: `sb${i}`, origin: `sb${i}` };
  }

  const body = [
    '# HELP go_goroutines Number of goroutines.',
    '# TYPE go_goroutines gauge',
    'go_goroutines 12',
    '# TYPE kata_x counter',
    'kata_x{a="1"} 1',
    'kata_x{a="2",} 2 1700000000000',
    'kata_x{} 3',
    'kata_x   4',
    '# TYPE coll gauge',
    'coll{sandbox_id="inner",k="v"} 5',
    'coll{k="w"} 6',
    `long{v="${'x'.repeat(400)}"} 7`,
    '',
  ].join('\n');

  it('points into the body, except for families rebuilt because of colliding labels', () => {
    const buf = Buffer.from(body, 'utf8');
    const exposition = parseExposition(buf);
    resolveLabelCollisions(exposition);
    const fams = exposition.families;
    expect(fams.get('go_goroutines')!.bytes).toBe(buf);
    expect(fams.get('kata_x')!.bytes).toBe(buf);
    expect(fams.get('coll')!.bytes).not.toBe(buf);
    expect(sampleLines(fams.get('coll')!)).toEqual([
      'coll{exported_sandbox_id="inner",k="v"} 5',
      'coll{k="w"} 6',
    ]);
  });

  it('writes exactly the bytes of the line-by-line reference, whatever the chunk size', () => {
    const parts = [
      shimPart(body, 0),
      shimPart('# HELP kata_x Gr\u00fc\u00dfe.\n# TYPE kata_x counter\nkata_x{a="\u00e9"} 9\n', 1),
      shimPart(body, 2, 'pod="\u00fc",ns="n\\"q\\""'),
      shimPart(body, 3, ''),
      shimPart('# TYPE kata_x counter\nkata_x{a="\u00e9",sandbox_id="\u6f22"} 10\n', 4),
    ];
    const fams = mergeParts(parts).families;
    const expected = referenceBytes(fams);
    expect(Buffer.from(familiesToString(fams), 'utf8').equals(expected)).toBe(true);
    const text = expected.toString('utf8');
    const l0 = sandboxLabelText({ id: 'sb0' });
    expect(text).toContain(`kata_shim_go_goroutines{${l0}} 12\n`);
    expect(text).toContain(`kata_x{a="2",${l0}} 2 1700000000000\n`);
    expect(text).toContain(`kata_x{${l0}} 3\n`);
    expect(text).toContain(`kata_x{${l0}}   4\n`);
    expect(text).toContain(`coll{exported_sandbox_id="inner",k="v",${l0}} 5\n`);
    expect(text).toContain('kata_x{a="\u00e9",sandbox_id="sb1",');
    expect(text).toContain(
      `kata_x{a="\u00e9",exported_sandbox_id="\u6f22",${sandboxLabelText({ id: 'sb4' })}} 10\n`,
    );
    expect(text).toContain('kata_x{a="1",pod="\u00fc",ns="n\\"q\\""} 1\n');
    expect(text).toContain('kata_x{a="1"} 1\n');
    for (const size of [256, 1000, 4096, 64 * 1024]) {
      const chunks = [...renderByteChunks(fams, size)];
      expect(Buffer.concat(chunks).equals(expected)).toBe(true);
      for (const c of chunks) {
        expect(c[c.length - 1]).toBe(10);
        // only a single line longer than a chunk may exceed the size
        if (c.length > size) expect(c.indexOf(10)).toBe(c.length - 1);
      }
      if (size === 256) expect(chunks.length).toBeGreaterThan(10);
    }
  });

  it('recycles chunks only after the sink is done with them (gzip and a slow Writable)', async () => {
    const fams = mergeParts(Array.from({ length: 20 }, (_, i) => shimPart(body, i))).families;
    const expected = Buffer.from(familiesToString(fams), 'utf8');
    const gz = zlib.createGzip({ level: 1 });
    const out: Buffer[] = [];
    gz.on('data', (b: Buffer) => out.push(b));
    const ended = new Promise(resolve => gz.on('end', resolve));
    const r = await writeFamilies(fams, gz, { chunkChars: 1024, recycleChunks: true });
    gz.end();
    await ended;
    expect(r.completed).toBe(true);
    expect(zlib.gunzipSync(Buffer.concat(out)).equals(expected)).toBe(true);

    // A sink that copies in _write (as sockets and zlib do) and calls back later.
    const copies: Buffer[] = [];
    const slow = new Writable({
      highWaterMark: 2048,
      write(chunk: Buffer, _enc, cb) {
        const copy = Buffer.from(chunk);
        setTimeout(() => {
          copies.push(copy);
          cb();
        }, 1);
      },
    });
    await writeFamilies(fams, slow, { chunkChars: 1024, recycleChunks: true });
    await new Promise<void>(resolve => slow.end(resolve));
    expect(Buffer.concat(copies).equals(expected)).toBe(true);
  });

  it('never reuses a chunk it handed out (a stream may still hold it)', () => {
    const fams = mergeParts([shimPart(body, 0), shimPart(body, 1), shimPart(body, 2)]).families;
    const seen: Array<{ chunk: Buffer; copy: Buffer }> = [];
    for (const chunk of renderByteChunks(fams, 300)) seen.push({ chunk, copy: Buffer.from(chunk) });
    expect(seen.length).toBeGreaterThan(5);
    for (const { chunk, copy } of seen) expect(chunk.equals(copy)).toBe(true);
  });
});
