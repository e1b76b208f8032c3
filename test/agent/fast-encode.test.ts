/** The direct encoders give the bytes of the generic fromObject + encode path. */
import { agentCodec } from '../../src/agent/messages';

const codec = agentCodec();

describe('request encoders', () => {
  it.each([
    {
      service: 'grpc.AgentService',
      method: 'StatsContainer',
      payload: Buffer.from([10, 1, 97]),
      timeout_nano: 5e9,
      metadata: [],
    },
    { service: 'grpc.Health', method: 'Check', payload: Buffer.alloc(0), timeout_nano: 0, metadata: [] },
    {
      service: 's',
      method: 'm',
      payload: Buffer.from('x'),
      timeout_nano: 1,
      metadata: [{ key: 'k', value: 'v' }],
    },
    { service: 's', method: 'm' },
  ])('encodeRequest(%#) equals the generic encoding', req => {
    expect(codec.encodeRequest(req)).toEqual(codec.encode('ttrpc.Request', req));
    expect(codec.decodeRequest(codec.encodeRequest(req)).method).toBe(req.method);
  });

  it('encodes StatsContainerRequest and the empty requests like the generic path', () => {
    for (const id of ['a'.repeat(64), 'c1', '']) {
      expect(codec.encodeStatsContainerRequest(id)).toEqual(
        codec.encode('grpc.StatsContainerRequest', { container_id: id }),
      );
    }
    for (const t of ['grpc.GetMetricsRequest', 'grpc.GuestDetailsRequest', 'grpc.CheckRequest']) {
      expect(codec.emptyRequest).toEqual(codec.encode(t, {}));
    }
  });

  it('decodes a response payload as its own bytes', () => {
    const res = codec.decodeResponse(codec.encodeResponse({ payload: Buffer.from('hello') }));
    expect(res.payload.toString()).toBe('hello');
    expect(codec.decodeResponse(codec.encodeResponse({})).payload.length).toBe(0);
  });
});
