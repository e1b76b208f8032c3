/**
 * ttrpc framing (pure): a 10-byte big-endian header {length u32, streamId u32, type u8, flags u8} followed
 * by `length` bytes of protobuf. Facts: kata-protocols.md §4.1-§4.2. No I/O, no timers.
 */
import { KataMonitorError } from '../errors';

export const TTRPC_HEADER_LENGTH = 10;
/** Largest payload either side accepts (containerd/ttrpc `messageLengthMax`, ttrpc-rust `MESSAGE_LENGTH_MAX`). */
export const TTRPC_MAX_PAYLOAD = 4 << 20;

export const MessageType = {
  Request: 0x01,
  Response: 0x02,
  Data: 0x03,
} as const;
export type MessageTypeValue = (typeof MessageType)[keyof typeof MessageType];

const KNOWN_TYPES: ReadonlySet<number> = new Set<number>([
  MessageType.Request,
  MessageType.Response,
  MessageType.Data,
]);

export interface FrameHeader {
  length: number;
  streamId: number;
  type: number;
  flags: number;
}

export interface Frame {
  streamId: number;
  type: MessageTypeValue;
  flags: number;
  payload: Buffer;
}

/** Why a byte sequence is not a valid ttrpc frame. */
export type FrameErrorKind = 'short_header' | 'oversize' | 'unknown_type' | 'truncated';

/** A malformed frame: always code `AGENT_PROTOCOL`; `kind` says what was wrong. */
export class TtrpcFrameError extends KataMonitorError {
  readonly kind: FrameErrorKind;
  constructor(kind: FrameErrorKind, message: string) {
    super('AGENT_PROTOCOL', message);
    this.name = 'TtrpcFrameError';
    this.kind = kind;
  }
}

function checkU32(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`ttrpc: ${name} ${v} is not an unsigned 32-bit integer`);
  }
}

/** Encode one frame. Throws TtrpcFrameError('oversize') for payloads above the 4 MiB cap. */
export function encodeFrame(streamId: number, type: number, flags: number, payload: Uint8Array): Buffer {
  checkU32('stream id', streamId);
  if (payload.length > TTRPC_MAX_PAYLOAD) {
    throw new TtrpcFrameError(
      'oversize',
      `ttrpc: payload of ${payload.length} bytes exceeds the maximum message size of ${TTRPC_MAX_PAYLOAD}`,
    );
  }
  const out = Buffer.allocUnsafe(TTRPC_HEADER_LENGTH + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(streamId, 4);
  out.writeUInt8(type & 0xff, 8);
  out.writeUInt8(flags & 0xff, 9);
  out.set(payload, TTRPC_HEADER_LENGTH);
  return out;
}

/** Decode and validate a header; throws TtrpcFrameError for short input, oversize length or unknown type. */
export function decodeHeader(buf: Uint8Array): FrameHeader {
  if (buf.length < TTRPC_HEADER_LENGTH) {
    throw new TtrpcFrameError(
      'short_header',
      `ttrpc: header needs ${TTRPC_HEADER_LENGTH} bytes, got ${buf.length}`,
    );
  }
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const header: FrameHeader = {
    length: b.readUInt32BE(0),
    streamId: b.readUInt32BE(4),
    type: b.readUInt8(8),
    flags: b.readUInt8(9),
  };
  if (header.length > TTRPC_MAX_PAYLOAD) {
    throw new TtrpcFrameError(
      'oversize',
      `ttrpc: frame announces ${header.length} bytes, more than the maximum message size of ${TTRPC_MAX_PAYLOAD}`,
    );
  }
  if (!KNOWN_TYPES.has(header.type)) {
    throw new TtrpcFrameError('unknown_type', `ttrpc: unknown message type 0x${header.type.toString(16)}`);
  }
  return header;
}

/** Decode exactly one complete frame (header + payload, nothing more). */
export function decodeFrame(buf: Uint8Array): Frame {
  const h = decodeHeader(buf);
  const have = buf.length - TTRPC_HEADER_LENGTH;
  if (have < h.length) {
    throw new TtrpcFrameError('truncated', `ttrpc: frame announces ${h.length} bytes, only ${have} present`);
  }
  if (have > h.length) {
    throw new TtrpcFrameError(
      'truncated',
      `ttrpc: ${have - h.length} trailing bytes after a frame of ${h.length} bytes`,
    );
  }
  return {
    streamId: h.streamId,
    type: h.type as MessageTypeValue,
    flags: h.flags,
    payload: Buffer.from(buf.subarray(TTRPC_HEADER_LENGTH)),
  };
}

/**
 * Incremental splitter for a byte stream: `push(chunk)` returns every frame completed by that chunk (frames
 * may be split across chunks, several may arrive in one). A malformed header throws; after that the splitter
 * is poisoned (the stream cannot be resynchronised) and every later push throws the same error.
 * `end()` throws TtrpcFrameError('truncated') when the stream stops inside a frame.
 */
export class FrameSplitter {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: FrameHeader | undefined;
  private failed: TtrpcFrameError | undefined;

  push(chunk: Uint8Array): Frame[] {
    if (this.failed) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      this.buffered += chunk.length;
    }
    const out: Frame[] = [];
    for (;;) {
      if (!this.header) {
        if (this.buffered < TTRPC_HEADER_LENGTH) break;
        try {
          this.header = decodeHeader(this.take(TTRPC_HEADER_LENGTH));
        } catch (err) {
          this.failed = err as TtrpcFrameError;
          throw err;
        }
      }
      if (this.buffered < this.header.length) break;
      const payload = this.take(this.header.length);
      out.push({
        streamId: this.header.streamId,
        type: this.header.type as MessageTypeValue,
        flags: this.header.flags,
        payload,
      });
      this.header = undefined;
    }
    return out;
  }

  /** Bytes held that do not yet form a complete frame. */
  get pendingBytes(): number {
    return this.buffered + (this.header ? TTRPC_HEADER_LENGTH : 0);
  }

  end(): void {
    if (this.failed) throw this.failed;
    if (this.pendingBytes > 0) {
      throw new TtrpcFrameError(
        'truncated',
        `ttrpc: stream ended inside a frame (${this.pendingBytes} bytes of an incomplete frame)`,
      );
    }
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = Buffer.from(first.subarray(0, n));
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - off);
        c.copy(out, off, 0, k);
        off += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    return out;
  }
}
