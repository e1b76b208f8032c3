import * as net from 'node:net';
import * as path from 'node:path';
import { agentCodec } from '../../src/agent/messages';
import { FrameSplitter, MessageType, encodeFrame } from '../../src/agent/ttrpc-codec';
import { GrpcCode, TtrpcClient, TtrpcStatusError } from '../../src/agent/ttrpc-client';
import { KataMonitorError } from '../../src/errors';
import { rmrf, tmpDir } from '../helpers/util';
import { rawServer } from './helpers';

const codec = agentCodec();

interface SeenRequest {
  sock: net.Socket;
  streamId: number;
  service: string;
  method: string;
  timeoutNano: number;
  payload: Buffer;
}

/** A ttrpc server whose answers the test drives by hand. */
async function manualServer(socketPath: string) {
  const seen: SeenRequest[] = [];
  const srv = await rawServer(socketPath, sock => {
    const split = new FrameSplitter();
    sock.on('data', chunk => {
      for (const f of split.push(chunk)) {
        const r = codec.decodeRequest(f.payload);
        seen.push({
          sock,
          streamId: f.streamId,
          service: r.service,
          method: r.method,
          timeoutNano: r.timeout_nano,
          payload: Buffer.from(r.payload),
        });
      }
    });
  });
  const answer = (r: SeenRequest, payload: Buffer, status?: { code: number; message: string }): void => {
    r.sock.write(encodeFrame(r.streamId, MessageType.Response, 0, codec.encodeResponse({ payload, status })));
  };
  return { ...srv, seen, answer };
}

async function connect(socketPath: string): Promise<net.Socket> {
  const s = net.createConnection(socketPath);
  await new Promise<void>((res, rej) => {
    s.once('connect', res);
    s.once('error', rej);
  });
  return s;
}

async function until(pred: () => boolean): Promise<void> {
  while (!pred()) await new Promise(r => setTimeout(r, 5));
}

describe('TtrpcClient', () => {
  let dir: string;
  let srv: Awaited<ReturnType<typeof manualServer>>;
  let client: TtrpcClient | undefined;

  beforeEach(async () => {
    dir = tmpDir('km-ttrpc-');
    srv = await manualServer(path.join(dir, 't.sock'));
  });
  afterEach(async () => {
    client?.close();
    client = undefined;
    await srv.close();
    rmrf(dir);
  });

  it('multiplexes calls on odd increasing stream ids and matches out-of-order answers', async () => {
    client = new TtrpcClient(await connect(path.join(dir, 't.sock')));
    const calls = ['a', 'b', 'c'].map(x =>
      client!.call('svc.S', `M${x}`, Buffer.from(x), { timeoutMs: 10_000 }),
    );
    await until(() => srv.seen.length === 3);
    expect(srv.seen.map(r => r.streamId)).toEqual([1, 3, 5]);
    expect(srv.seen.map(r => r.method)).toEqual(['Ma', 'Mb', 'Mc']);
    expect(srv.seen.every(r => r.service === 'svc.S')).toBe(true);
    for (const r of srv.seen) {
      expect(r.timeoutNano).toBeGreaterThan(0);
      expect(r.timeoutNano).toBeLessThanOrEqual(10_000 * 1e6);
    }
    // answer in reverse order
    for (const r of [...srv.seen].reverse()) srv.answer(r, Buffer.concat([Buffer.from('re:'), r.payload]));
    expect((await Promise.all(calls)).map(b => b.toString())).toEqual(['re:a', 're:b', 're:c']);
    expect(client.inFlight).toBe(0);
    // the next call continues the sequence
    const next = client.call('svc.S', 'Md', Buffer.alloc(0));
    await until(() => srv.seen.length === 4);
    expect(srv.seen[3]!.streamId).toBe(7);
    expect(srv.seen[3]!.timeoutNano).toBe(0); // no deadline given
    srv.answer(srv.seen[3]!, Buffer.alloc(0));
    expect((await next).length).toBe(0);
  });

  it('turns a non-OK status into TtrpcStatusError with the gRPC code', async () => {
    client = new TtrpcClient(await connect(path.join(dir, 't.sock')));
    const p = client.call('grpc.AgentService', 'GetMetrics', Buffer.alloc(0), { timeoutMs: 5000 });
    await until(() => srv.seen.length === 1);
    srv.answer(srv.seen[0]!, Buffer.alloc(0), {
      code: GrpcCode.PERMISSION_DENIED,
      message: 'blocked by policy',
    });
    const err = await p.catch(e => e);
    expect(err).toBeInstanceOf(TtrpcStatusError);
    expect(err).toBeInstanceOf(KataMonitorError);
    expect(err.code).toBe('AGENT_STATUS');
    expect(err.grpcCode).toBe(7);
    expect(err.message).toContain('blocked by policy');
    // status code 0 with a payload is success
    const ok = client.call('grpc.AgentService', 'GetMetrics', Buffer.alloc(0));
    await until(() => srv.seen.length === 2);
    srv.answer(srv.seen[1]!, Buffer.from('x'), { code: 0, message: '' });
    expect((await ok).toString()).toBe('x');
  });

  it('fails a call locally at its deadline, ignores the late answer and keeps the connection', async () => {
    client = new TtrpcClient(await connect(path.join(dir, 't.sock')));
    const err = await client.call('s', 'Slow', Buffer.alloc(0), { timeoutMs: 50 }).catch(e => e);
    expect(err).toBeInstanceOf(KataMonitorError);
    expect(err.code).toBe('AGENT_TIMEOUT');
    expect(client.inFlight).toBe(0);
    srv.answer(srv.seen[0]!, Buffer.from('late'));
    const p = client.call('s', 'Fast', Buffer.alloc(0), { timeoutMs: 5000 });
    await until(() => srv.seen.length === 2);
    srv.answer(srv.seen[1]!, Buffer.from('fresh'));
    expect((await p).toString()).toBe('fresh');
    expect(client.closed).toBe(false);
  });

  it('honours an abort signal and an absolute deadline', async () => {
    client = new TtrpcClient(await connect(path.join(dir, 't.sock')));
    const ac = new AbortController();
    const p = client.call('s', 'M', Buffer.alloc(0), { signal: ac.signal });
    await until(() => srv.seen.length === 1);
    ac.abort();
    expect((await p.catch(e => e)).code).toBe('AGENT_TIMEOUT');
    expect(
      (await client.call('s', 'M', Buffer.alloc(0), { deadline: Date.now() - 1 }).catch(e => e)).code,
    ).toBe('AGENT_TIMEOUT');
  });

  it('fails every pending call when the connection is lost, and later calls too', async () => {
    client = new TtrpcClient(await connect(path.join(dir, 't.sock')));
    const closedWith: string[] = [];
    client.onClose(e => closedWith.push(e.code));
    const calls = [1, 2, 3].map(() =>
      client!.call('s', 'M', Buffer.alloc(0), { timeoutMs: 10_000 }).catch(e => e),
    );
    await until(() => srv.seen.length === 3);
    srv.seen[0]!.sock.destroy();
    const errs = await Promise.all(calls);
    expect(errs.map(e => e.code)).toEqual(['AGENT_UNREACHABLE', 'AGENT_UNREACHABLE', 'AGENT_UNREACHABLE']);
    expect(client.closed).toBe(true);
    expect(closedWith).toEqual(['AGENT_UNREACHABLE']);
    expect((await client.call('s', 'M', Buffer.alloc(0)).catch(e => e)).code).toBe('AGENT_UNREACHABLE');
  });

  it('reports a malformed answer as AGENT_PROTOCOL and closes the connection', async () => {
    client = new TtrpcClient(await connect(path.join(dir, 't.sock')));
    const p = client.call('s', 'M', Buffer.alloc(0), { timeoutMs: 5000 });
    await until(() => srv.seen.length === 1);
    srv.seen[0]!.sock.write(Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 0x09, 0]));
    const err = await p.catch(e => e);
    expect(err.code).toBe('AGENT_PROTOCOL');
    expect(err.message).toContain('unknown message type');
    expect(client.closed).toBe(true);
  });

  it('reports an undecodable Response payload as AGENT_PROTOCOL for that call only', async () => {
    client = new TtrpcClient(await connect(path.join(dir, 't.sock')));
    const p = client.call('s', 'M', Buffer.alloc(0), { timeoutMs: 5000 });
    await until(() => srv.seen.length === 1);
    srv.seen[0]!.sock.write(encodeFrame(1, MessageType.Response, 0, Buffer.from([0x12, 0x7f, 0x00])));
    expect((await p.catch(e => e)).code).toBe('AGENT_PROTOCOL');
    expect(client.closed).toBe(false);
  });

  describe('one deadline timer and one abort listener per connection', () => {
    const errCode = (p: Promise<unknown>): Promise<string> =>
      p.then(
        () => 'resolved',
        (e: unknown) => (e instanceof KataMonitorError ? e.code : String(e)),
      );

    it('fails every call past its deadline, the earlier deadline first, and answers the rest', async () => {
      client = new TtrpcClient(await connect(path.join(dir, 't.sock')));
      const late = client.call('svc.S', 'Late', Buffer.alloc(0), { deadline: Date.now() + 60_000 });
      const lateState = errCode(late);
      const early1 = client.call('svc.S', 'E1', Buffer.alloc(0), { timeoutMs: 30 });
      const early2 = client.call('svc.S', 'E2', Buffer.alloc(0), { timeoutMs: 30 });
      expect(await errCode(early1)).toBe('AGENT_TIMEOUT');
      expect(await errCode(early2)).toBe('AGENT_TIMEOUT');
      await expect(early1).rejects.toThrow(/E1: no answer within \d+ ms/);
      // The later call is still pending after the earlier ones timed out; answering it resolves it.
      expect(client.inFlight).toBe(1);
      await until(() => srv.seen.length === 3);
      srv.answer(srv.seen[0]!, Buffer.from('ok'));
      expect((await late).toString()).toBe('ok');
      expect(await lateState).toBe('resolved');
      // A new call with a deadline after a timer that already fired is timed out too.
      const again = client.call('svc.S', 'Again', Buffer.alloc(0), { timeoutMs: 20 });
      expect(await errCode(again)).toBe('AGENT_TIMEOUT');
      expect(client.inFlight).toBe(0);
    });

    it('cancels only the calls made with the aborted signal, across signal changes', async () => {
      client = new TtrpcClient(await connect(path.join(dir, 't.sock')));
      const a = new AbortController();
      const b = new AbortController();
      const a1 = client.call('svc.S', 'A1', Buffer.alloc(0), { signal: a.signal, timeoutMs: 10_000 });
      const a2 = client.call('svc.S', 'A2', Buffer.alloc(0), { signal: a.signal, timeoutMs: 10_000 });
      const b1 = client.call('svc.S', 'B1', Buffer.alloc(0), { signal: b.signal, timeoutMs: 10_000 });
      const b1State = errCode(b1);
      // Aborting b fails b's call only; a's calls are answered normally.
      b.abort();
      expect(await b1State).toBe('AGENT_TIMEOUT');
      await expect(b1).rejects.toThrow(/B1: cancelled \(deadline reached\)/);
      expect(client.inFlight).toBe(2);
      await until(() => srv.seen.length === 3);
      srv.answer(srv.seen[0]!, Buffer.from('1'));
      srv.answer(srv.seen[1]!, Buffer.from('2'));
      expect((await Promise.all([a1, a2])).map(x => x.toString())).toEqual(['1', '2']);
      // A call with an already aborted signal fails at once; a fresh signal is listened to again.
      await expect(client.call('svc.S', 'X', Buffer.alloc(0), { signal: b.signal })).rejects.toThrow(
        /deadline already passed/,
      );
      const c = new AbortController();
      const c1 = client.call('svc.S', 'C1', Buffer.alloc(0), { signal: c.signal });
      c.abort();
      expect(await errCode(c1)).toBe('AGENT_TIMEOUT');
      expect(client.inFlight).toBe(0);
    });

    it('keeps listening to the signal a connection saw last and lets go of it on close', async () => {
      client = new TtrpcClient(await connect(path.join(dir, 't.sock')));
      const a = new AbortController();
      const p = client.call('svc.S', 'A', Buffer.alloc(0), { signal: a.signal, timeoutMs: 10_000 });
      await until(() => srv.seen.length === 1);
      srv.answer(srv.seen[0]!, Buffer.alloc(0));
      await p;
      // The next call with the same signal is cancelled by it as well.
      const q = client.call('svc.S', 'B', Buffer.alloc(0), { signal: a.signal, timeoutMs: 10_000 });
      a.abort();
      expect(await errCode(q)).toBe('AGENT_TIMEOUT');
      client.close();
      expect(await errCode(client.call('svc.S', 'C', Buffer.alloc(0)))).toBe('AGENT_UNREACHABLE');
    });
  });
});
