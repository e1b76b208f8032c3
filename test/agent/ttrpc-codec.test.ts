import {
  FrameSplitter,
  MessageType,
  TTRPC_MAX_PAYLOAD,
  TtrpcFrameError,
  decodeFrame,
  decodeHeader,
  encodeFrame,
} from '../../src/agent/ttrpc-codec';
import { agentCodec } from '../../src/agent/messages';

/** §4.1: unary GetMetrics request on stream 1, no timeout, no metadata. */
const GET_METRICS_FRAME = Buffer.concat([
  Buffer.from([0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00]),
  Buffer.from([0x0a, 0x11]),
  Buffer.from('grpc.AgentService'),
  Buffer.from([0x12, 0x0a]),
  Buffer.from('GetMetrics'),
]);

function kindOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof TtrpcFrameError) return `${err.code}:${err.kind}`;
    throw err;
  }
  return undefined;
}

describe('ttrpc codec', () => {
  it('encodes the GetMetrics request frame byte for byte', () => {
    const payload = agentCodec().encodeRequest({ service: 'grpc.AgentService', method: 'GetMetrics' });
    const frame = encodeFrame(1, MessageType.Request, 0, payload);
    expect(frame.toString('hex')).toBe(GET_METRICS_FRAME.toString('hex'));
    expect(frame.length).toBe(41);
  });

  it('decodes the GetMetrics request frame', () => {
    const f = decodeFrame(GET_METRICS_FRAME);
    expect(f).toMatchObject({ streamId: 1, type: MessageType.Request, flags: 0 });
    const req = agentCodec().decodeRequest(f.payload);
    expect(req.service).toBe('grpc.AgentService');
    expect(req.method).toBe('GetMetrics');
    expect(req.timeout_nano).toBe(0);
    expect(req.payload.length).toBe(0);
  });

  it('writes header fields big-endian', () => {
    const f = encodeFrame(0x01020305, MessageType.Data, 0x04, Buffer.from([0xaa, 0xbb]));
    expect([...f]).toEqual([0, 0, 0, 2, 1, 2, 3, 5, 3, 4, 0xaa, 0xbb]);
    expect(decodeHeader(f)).toEqual({ length: 2, streamId: 0x01020305, type: 3, flags: 4 });
  });

  it('encodes a Response with a status and decodes it back', () => {
    const c = agentCodec();
    const body = c.encodeResponse({ status: { code: 7, message: 'GetMetricsRequest is blocked by policy' } });
    // field 1 (status), length-delimited; inside: code=7 (08 07), message (12 ...)
    expect(body.subarray(0, 4).toString('hex')).toBe(
      '0a' + (body.length - 2).toString(16).padStart(2, '0') + '0807',
    );
    expect(c.decodeResponse(body)).toEqual({
      status: { code: 7, message: 'GetMetricsRequest is blocked by policy' },
      payload: Buffer.alloc(0),
    });
  });

  it('decodes a GetMetrics Response with a multi-byte varint length', () => {
    const c = agentCodec();
    const text = '# TYPE kata_agent_scrape_count counter\nkata_agent_scrape_count 3\n'.repeat(10);
    const res = c.encodeResponse({ payload: c.encode('grpc.Metrics', { metrics: text }) });
    expect(res[0]).toBe(0x12); // payload (2), status omitted
    expect(res[1]! & 0x80).toBe(0x80); // length > 127: a two-byte varint
    const dec = c.decodeResponse(res);
    expect(dec.status).toBeUndefined();
    expect(c.decode<{ metrics: string }>('grpc.Metrics', dec.payload).metrics).toBe(text);
  });

  it('rejects malformed frames with stable kinds', () => {
    expect(kindOf(() => decodeHeader(Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 2])))).toBe(
      'AGENT_PROTOCOL:short_header',
    );
    const over = Buffer.from([0, 0x40, 0, 1, 0, 0, 0, 1, 2, 0]); // 4 MiB + 1
    expect(kindOf(() => decodeHeader(over))).toBe('AGENT_PROTOCOL:oversize');
    const exact = Buffer.from([0, 0x40, 0, 0, 0, 0, 0, 1, 2, 0]); // exactly 4 MiB is allowed
    expect(decodeHeader(exact).length).toBe(TTRPC_MAX_PAYLOAD);
    expect(kindOf(() => decodeHeader(Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 9, 0])))).toBe(
      'AGENT_PROTOCOL:unknown_type',
    );
    expect(kindOf(() => decodeFrame(GET_METRICS_FRAME.subarray(0, 30)))).toBe('AGENT_PROTOCOL:truncated');
    expect(kindOf(() => decodeFrame(Buffer.concat([GET_METRICS_FRAME, Buffer.from([0])])))).toBe(
      'AGENT_PROTOCOL:truncated',
    );
    expect(kindOf(() => encodeFrame(1, 1, 0, Buffer.alloc(TTRPC_MAX_PAYLOAD + 1)))).toBe(
      'AGENT_PROTOCOL:oversize',
    );
    expect(() => encodeFrame(-1, 1, 0, Buffer.alloc(0))).toThrow(RangeError);
  });
});

describe('FrameSplitter', () => {
  const a = encodeFrame(1, MessageType.Response, 0, Buffer.from('first'));
  const b = encodeFrame(3, MessageType.Response, 0, Buffer.alloc(0));
  const c = encodeFrame(5, MessageType.Response, 0, Buffer.from('third frame'));
  const all = Buffer.concat([a, b, c]);

  it('returns several frames from one chunk', () => {
    const s = new FrameSplitter();
    const frames = s.push(all);
    expect(frames.map(f => [f.streamId, f.payload.toString()])).toEqual([
      [1, 'first'],
      [3, ''],
      [5, 'third frame'],
    ]);
    expect(s.pendingBytes).toBe(0);
    expect(() => s.end()).not.toThrow();
  });

  it('reassembles frames split at every byte boundary', () => {
    for (let cut = 1; cut < all.length; cut++) {
      const s = new FrameSplitter();
      const frames = [...s.push(all.subarray(0, cut)), ...s.push(all.subarray(cut))];
      expect(frames.map(f => f.streamId)).toEqual([1, 3, 5]);
    }
  });

  it('reassembles a byte-by-byte stream', () => {
    const s = new FrameSplitter();
    const ids: number[] = [];
    for (const byte of all) for (const f of s.push(Buffer.from([byte]))) ids.push(f.streamId);
    expect(ids).toEqual([1, 3, 5]);
  });

  it('reports a stream that ends inside a frame', () => {
    const s = new FrameSplitter();
    expect(s.push(all.subarray(0, a.length + 4))).toHaveLength(1);
    expect(kindOf(() => s.end())).toBe('AGENT_PROTOCOL:truncated');
  });

  it('stays failed after a bad header', () => {
    const s = new FrameSplitter();
    const bad = Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0]);
    expect(kindOf(() => s.push(Buffer.concat([a, bad])))).toBe('AGENT_PROTOCOL:unknown_type');
    expect(kindOf(() => s.push(b))).toBe('AGENT_PROTOCOL:unknown_type');
  });

  it('rejects an oversize announcement before the payload arrives', () => {
    const s = new FrameSplitter();
    const h = Buffer.alloc(10);
    h.writeUInt32BE(TTRPC_MAX_PAYLOAD + 1, 0);
    h.writeUInt8(2, 8);
    expect(kindOf(() => s.push(h))).toBe('AGENT_PROTOCOL:oversize');
  });
});
