/**
 * An HTTP/1.x response read from a byte stream (pure): status line, headers, and a body framed by
 * Content-Length, chunked transfer coding, or the end of the connection.
 *
 * The shim client feeds it what its socket reads and learns when the response is complete, so a shim that
 * keeps the connection open after answering costs nothing, and one that closes too early is caught. A body
 * larger than the cap stops the read as soon as the cap is passed.
 */

export class HttpResponseError extends Error {
  constructor(
    readonly kind: 'malformed' | 'too_large' | 'truncated',
    message: string,
  ) {
    super(message);
    this.name = 'HttpResponseError';
  }
}

export interface HttpResponse {
  status: number;
  /** Header names in lower case; repeated headers joined with `, `. */
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Where a reader puts body bytes when the bytes it is fed are a scratch buffer that the next read
 * overwrites: it copies them into Buffers it gets here, growing as the body grows.
 */
export interface BodyStore {
  /** A Buffer of at least `min` bytes. */
  alloc(min: number): Buffer;
  /** A Buffer from `alloc` that is no longer needed. */
  free(buf: Buffer): void;
}

/**
 * Whether a Buffer of `capacity` bytes is too big to keep `bytes` in: more than a quarter (at least 16 KiB)
 * left over. A body read without a size hint grows by doubling and may end up in a Buffer almost twice its
 * size; kept (a parse template keeps a shim's last body), that would double the memory of every body.
 */
export function oversized(capacity: number, bytes: number): boolean {
  return capacity - bytes > Math.max(16 * 1024, bytes >>> 2);
}

/** Longest status line + headers accepted. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Longest chunk-size line (with extensions) accepted. */
const MAX_CHUNK_LINE = 1024;

const enum Mode {
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailer,
  UntilEof,
  Done,
}

export class HttpResponseReader {
  private mode = Mode.Head;
  private head: Buffer[] = [];
  private headBytes = 0;
  private status = 0;
  private headers: Record<string, string> = {};
  private readonly body: Buffer[] = [];
  private bodyBytes = 0;
  /** Content-Length still to come, or bytes left in the current chunk. */
  private remaining = 0;
  /** Bytes of a chunk-size or trailer line split across reads. */
  private line = '';
  /** With a store: the Buffer the body is copied into. */
  private target: Buffer | undefined;

  /**
   * @param maxBody largest body accepted (decoded bytes)
   * @param noBody the request was HEAD: no body whatever the headers say
   * @param store when given, pushed bytes are copied (the caller reuses its read buffer) into Buffers from
   *   it, the first of at least `sizeHint` bytes; otherwise the body keeps views of the pushed Buffers
   */
  constructor(
    private readonly maxBody: number,
    private readonly noBody = false,
    private readonly store?: BodyStore,
    private readonly sizeHint = 0,
  ) {}

  /** Feed bytes read from the connection; true once the response is complete (later bytes are ignored). */
  push(data: Buffer): boolean {
    let at = 0;
    while (at < data.length && this.mode !== Mode.Done) {
      switch (this.mode) {
        case Mode.Head:
          at = this.readHead(data, at);
          break;
        case Mode.Length:
          at = this.takeCounted(data, at, Mode.Done);
          break;
        case Mode.UntilEof:
          this.addBody(data, at, data.length);
          at = data.length;
          break;
        case Mode.ChunkSize:
        case Mode.ChunkDataEnd:
        case Mode.Trailer:
          at = this.readLine(data, at);
          break;
        case Mode.ChunkData:
          at = this.takeCounted(data, at, Mode.ChunkDataEnd);
          break;
      }
    }
    return this.mode === Mode.Done;
  }

  /** Take up to `remaining` body bytes from data[at..]; once all came, go on in `next`. Returns the new `at`. */
  private takeCounted(data: Buffer, at: number, next: Mode): number {
    const take = Math.min(this.remaining, data.length - at);
    this.addBody(data, at, at + take);
    this.remaining -= take;
    if (this.remaining === 0) this.mode = next;
    return at + take;
  }

  /** Whether the response is complete. */
  get done(): boolean {
    return this.mode === Mode.Done;
  }

  /** The connection ended: the response, or why it is incomplete. */
  end(): HttpResponse {
    if (this.mode === Mode.UntilEof) this.mode = Mode.Done;
    if (this.mode !== Mode.Done) {
      throw new HttpResponseError(
        'truncated',
        this.mode === Mode.Head && this.headBytes === 0
          ? 'connection closed before any response'
          : 'connection closed mid-response',
      );
    }
    let body: Buffer;
    if (this.store) {
      let target = this.target;
      if (target !== undefined && oversized(target.length, this.bodyBytes)) {
        // Move the body into a Buffer that fits (one copy; the next body of this producer gets a size hint).
        const fitting = this.store.alloc(this.bodyBytes);
        target.copy(fitting, 0, 0, this.bodyBytes);
        this.store.free(target);
        target = fitting;
        this.target = fitting;
      }
      body = target ? target.subarray(0, this.bodyBytes) : Buffer.alloc(0);
    } else body = this.body.length === 1 ? this.body[0]! : Buffer.concat(this.body, this.bodyBytes);
    return { status: this.status, headers: this.headers, body };
  }

  /** Give a store's Buffer back when the response is abandoned (error, timeout) instead of returned. */
  discard(): void {
    if (this.store && this.target) this.store.free(this.target);
    this.target = undefined;
  }

  private addBody(data: Buffer, from: number, to: number): void {
    if (to <= from) return;
    const had = this.bodyBytes;
    this.bodyBytes += to - from;
    if (this.bodyBytes > this.maxBody) {
      throw new HttpResponseError('too_large', `body larger than ${this.maxBody} bytes`);
    }
    const store = this.store;
    if (!store) {
      this.body.push(from === 0 && to === data.length ? data : data.subarray(from, to));
      return;
    }
    let target = this.target;
    if (target === undefined || target.length < this.bodyBytes) {
      const grown = store.alloc(Math.max(this.bodyBytes, this.sizeHint, target ? target.length * 2 : 0));
      if (target !== undefined) {
        target.copy(grown, 0, 0, had);
        store.free(target);
      }
      target = grown;
      this.target = grown;
    }
    data.copy(target, had, from, to);
  }

  /** Collect the head up to the blank line, then parse it. Returns where the body starts in `data`. */
  private readHead(data: Buffer, at: number): number {
    // The blank line may straddle reads: search the joined tail of what came before and this read, but no
    // further than a head may reach (the rest of a read is body, scanned by nobody here).
    const prevTail = this.headBytes;
    const limit = Math.min(data.length, at + Math.max(0, MAX_HEAD_BYTES + 4 - prevTail));
    const view = data.subarray(at, limit);
    const joined = this.head.length === 0 ? view : Buffer.concat([...this.head, view]);
    let end = joined.indexOf('\r\n\r\n', Math.max(0, prevTail - 3));
    let sep = 4;
    const lfIn = end === -1 ? joined : joined.subarray(0, end + 2);
    const endLf = lfIn.indexOf('\n\n', Math.max(0, prevTail - 1));
    if (endLf !== -1 && (end === -1 || endLf < end)) {
      end = endLf;
      sep = 2;
    }
    if (end === -1) {
      this.headBytes = joined.length;
      if (this.headBytes > MAX_HEAD_BYTES)
        throw new HttpResponseError('malformed', `no end of headers within ${MAX_HEAD_BYTES} bytes`);
      // A store means `data` is a scratch buffer the next read overwrites: keep a copy.
      this.head = [this.store && this.head.length === 0 ? Buffer.from(joined) : joined];
      return data.length;
    }
    this.parseHead(joined.toString('latin1', 0, end));
    this.head = [];
    this.headBytes = 0;
    // Position in `data` of the body's first byte: `joined` ends with data[at..limit).
    const bodyStart = at + (end + sep - prevTail);
    if (this.status >= 100 && this.status < 200) {
      // An interim response (100 Continue): the real one follows.
      this.mode = Mode.Head;
      this.headers = {};
    }
    return bodyStart;
  }

  private parseHead(text: string): void {
    const lines = text.split(/\r?\n/);
    const statusLine = lines[0] ?? '';
    const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
    if (!m) {
      throw new HttpResponseError(
        'malformed',
        `not an HTTP/1.x status line: ${JSON.stringify(statusLine.slice(0, 80))}`,
      );
    }
    this.status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (let i = 1; i < lines.length; i++) {
      const l = lines[i]!;
      const colon = l.indexOf(':');
      if (colon <= 0)
        throw new HttpResponseError('malformed', `bad header line ${JSON.stringify(l.slice(0, 80))}`);
      const name = l.slice(0, colon).trim().toLowerCase();
      const value = l.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    this.headers = headers;
    if (this.status < 200) return;
    if (this.noBody || this.status === 204 || this.status === 304) {
      this.mode = Mode.Done;
      return;
    }
    const te = headers['transfer-encoding'];
    if (te !== undefined) {
      if (!/(?:^|,)\s*chunked\s*$/i.test(te)) {
        throw new HttpResponseError('malformed', `unsupported transfer-encoding ${JSON.stringify(te)}`);
      }
      this.mode = Mode.ChunkSize;
      return;
    }
    const cl = headers['content-length'];
    if (cl !== undefined) {
      if (!/^\d+$/.test(cl))
        throw new HttpResponseError('malformed', `bad content-length ${JSON.stringify(cl)}`);
      const n = Number(cl);
      if (n > this.maxBody) throw new HttpResponseError('too_large', `declared body of ${n} bytes`);
      this.remaining = n;
      this.mode = n === 0 ? Mode.Done : Mode.Length;
      return;
    }
    this.mode = Mode.UntilEof;
  }

  /** A CRLF-terminated line of the chunked framing (size, end of data, trailer). */
  private readLine(data: Buffer, at: number): number {
    const nl = data.indexOf(10, at);
    const upto = nl === -1 ? data.length : nl;
    this.line += data.toString('latin1', at, upto);
    if (this.line.length > MAX_CHUNK_LINE) throw new HttpResponseError('malformed', 'chunk line too long');
    if (nl === -1) return data.length;
    const line = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line;
    this.line = '';
    if (this.mode === Mode.ChunkDataEnd) {
      if (line !== '') throw new HttpResponseError('malformed', 'chunk data not followed by CRLF');
      this.mode = Mode.ChunkSize;
    } else if (this.mode === Mode.ChunkSize) {
      const m = /^([0-9a-fA-F]{1,8})(?:\s*;.*)?$/.exec(line);
      if (!m)
        throw new HttpResponseError('malformed', `bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
      const size = parseInt(m[1]!, 16);
      if (size === 0) {
        this.mode = Mode.Trailer;
      } else {
        this.remaining = size;
        this.mode = Mode.ChunkData;
      }
    } else if (line === '') {
      this.mode = Mode.Done; // end of trailers
    }
    return nl + 1;
  }
}
