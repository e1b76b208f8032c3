import { BODY_GRANULE, BodyPool } from '../../src/metrics/body-pool';
import {
  HttpResponseError,
  HttpResponseReader,
  MAX_HEAD_BYTES,
  oversized,
} from '../../src/shim/http-response';

/** Feed `raw` split at the given cut points; returns the reader and whether push reported completion. */
function feed(raw: Buffer, cuts: number[], maxBody = 1 << 20): { reader: HttpResponseReader; done: boolean } {
  const reader = new HttpResponseReader(maxBody);
  let done = false;
  let at = 0;
  for (const cut of [...cuts, raw.length]) {
    if (cut > at) done = reader.push(raw.subarray(at, cut)) || done;
    at = Math.max(at, cut);
  }
  return { reader, done };
}

function errorOf(fn: () => unknown): HttpResponseError {
  try {
    fn();
  } catch (err) {
    if (err instanceof HttpResponseError) return err;
    throw err;
  }
  throw new Error('expected an HttpResponseError');
}

const body = 'a_total{x="1"} 3\n'.repeat(40);
const chunked = Buffer.from(
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nTransfer-Encoding: chunked\r\n\r\n' +
    `${(300).toString(16)}\r\n${body.slice(0, 300)}\r\n` +
    `${(body.length - 300).toString(16)};ext=1\r\n${body.slice(300)}\r\n` +
    '0\r\nX-Trailer: t\r\n\r\n',
);
const withLength = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
const untilEof = Buffer.from(`HTTP/1.0 200 OK\r\nServer: x\r\n\r\n${body}`);

describe('HttpResponseReader', () => {
  it.each([
    ['chunked', chunked, true],
    ['Content-Length', withLength, true],
    ['read until the connection ends', untilEof, false],
  ])('decodes a %s body split at every byte position', (_what, raw, completesEarly) => {
    for (let cut = 0; cut <= raw.length; cut += 7) {
      const { reader, done } = feed(raw, [cut, cut + 1, cut + 3]);
      expect(done).toBe(completesEarly);
      const r = reader.end();
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe(body);
    }
  });

  it('reads headers case-insensitively and joins repeated ones', () => {
    const raw = Buffer.from('HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-LENGTH: 2\r\n\r\nhi');
    const { reader, done } = feed(raw, []);
    expect(done).toBe(true);
    expect(reader.end().headers).toEqual({ 'x-a': '1, 2', 'content-length': '2' });
  });

  it('ignores bytes after a complete response and skips an interim 100 response', () => {
    const raw = Buffer.from(
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found trailing junk',
    );
    const { reader, done } = feed(raw, [10, 30]);
    expect(done).toBe(true);
    const r = reader.end();
    expect(r.status).toBe(404);
    expect(r.body.toString()).toBe('not found');
  });

  it('accepts bare LF line ends in the head', () => {
    const { reader } = feed(Buffer.from('HTTP/1.1 200 OK\nContent-Length: 3\n\nabc'), [5]);
    expect(reader.end().body.toString()).toBe('abc');
  });

  it('reports a connection closed mid-body, mid-chunk and before anything', () => {
    expect(errorOf(() => feed(withLength.subarray(0, withLength.length - 5), []).reader.end()).kind).toBe(
      'truncated',
    );
    const cutChunked = feed(chunked.subarray(0, chunked.length - 20), []).reader;
    expect(cutChunked.done).toBe(false);
    expect(errorOf(() => cutChunked.end()).message).toContain('mid-response');
    expect(errorOf(() => new HttpResponseReader(10).end()).message).toContain('before any response');
  });

  it('stops at the cap, declared or streamed', () => {
    expect(errorOf(() => feed(withLength, [], 100)).kind).toBe('too_large');
    expect(errorOf(() => feed(chunked, [200], 100)).kind).toBe('too_large');
    expect(errorOf(() => feed(untilEof, [], 100)).kind).toBe('too_large');
    // exactly at the cap is fine
    expect(feed(withLength, [], body.length).reader.end().body.length).toBe(body.length);
  });

  it.each([
    ['a non-HTTP answer', 'SSH-2.0-OpenSSH\r\n\r\n'],
    ['a bad status line', 'HTTP/2 200 OK\r\n\r\n'],
    ['a header without a colon', 'HTTP/1.1 200 OK\r\nbroken\r\n\r\n'],
    ['a bad content-length', 'HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n'],
    ['an unknown transfer-encoding', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n'],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['chunk data longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n'],
  ])('rejects %s as malformed', (_what, raw) => {
    expect(errorOf(() => feed(Buffer.from(raw), [])).kind).toBe('malformed');
  });

  it('gives up on a head that never ends', () => {
    const reader = new HttpResponseReader(10);
    reader.push(Buffer.from('HTTP/1.1 200 OK\r\n'));
    const filler = Buffer.alloc(4096, 'x');
    const err = errorOf(() => {
      for (let n = 0; n <= MAX_HEAD_BYTES / filler.length + 1; n++) reader.push(filler);
    });
    expect(err.kind).toBe('malformed');
  });

  it('takes no body for 204 and for HEAD', () => {
    const r204 = new HttpResponseReader(10);
    expect(r204.push(Buffer.from('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n'))).toBe(true);
    const head = new HttpResponseReader(10, true);
    expect(head.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n'))).toBe(true);
    expect(head.end().body.length).toBe(0);
  });
});

describe('HttpResponseReader with a body store', () => {
  it('ends with the body in a Buffer that fits it, however far it grew without a size hint', () => {
    const pool = new BodyPool(1 << 22);
    const text = 'kata_hypervisor_fds{fd="1"} 123456\n'.repeat(1950); // about 67 KB, like a shim body
    const raw = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${text.length}\r\n\r\n${text}`);
    const reader = new HttpResponseReader(1 << 20, false, pool);
    const scratch = Buffer.alloc(4096);
    for (let at = 0; at < raw.length; at += scratch.length) {
      const n = raw.copy(scratch, 0, at, at + scratch.length);
      reader.push(scratch.subarray(0, n)); // the scratch is overwritten by the next read, as on a socket
    }
    const res = reader.end();
    expect(res.body.toString()).toBe(text);
    // Grown by doubling it sat in a 128 KiB Buffer; it is handed out in one of the pool's granules above it.
    expect(res.body.buffer.byteLength).toBe(Math.ceil(text.length / BODY_GRANULE) * BODY_GRANULE);
    expect(oversized(res.body.buffer.byteLength, text.length)).toBe(false);
    // The Buffers it outgrew went back to the pool.
    expect(pool.spareSize).toBeGreaterThan(0);
  });
});

describe('oversized', () => {
  it('says a Buffer is too big for a body when more than a quarter (at least 16 KiB) is left over', () => {
    expect(oversized(128 * 1024, 67_000)).toBe(true);
    expect(oversized(80 * 1024, 67_000)).toBe(false);
    expect(oversized(16 * 1024, 10)).toBe(false);
    expect(oversized(40 * 1024, 10)).toBe(true);
    expect(oversized(1200 * 1024, 1000 * 1024)).toBe(false);
    expect(oversized(1300 * 1024, 1000 * 1024 - 60 * 1024)).toBe(true);
  });
});
