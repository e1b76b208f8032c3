import { BodyPool } from '../../src/metrics/body-pool';

describe('BodyPool', () => {
  it('lends Buffers in 16 KiB steps and reuses the smallest free one that fits', () => {
    const pool = new BodyPool(1 << 20);
    const a = pool.alloc(70_000);
    expect(a.length).toBe(81_920);
    const b = pool.alloc(10);
    expect(b.length).toBe(16_384);
    pool.free(a);
    pool.free(b);
    expect(pool.spareSize).toBe(81_920 + 16_384);
    expect(pool.alloc(5000).buffer).toBe(b.buffer);
    // too big for the free one: a new Buffer; more than twice the need: not handed out for it
    expect(pool.alloc(90_000).buffer).not.toBe(a.buffer);
    const c = pool.alloc(20_000);
    expect(c.buffer).not.toBe(a.buffer);
    expect(pool.alloc(70_000).buffer).toBe(a.buffer);
  });

  it('does not hand out a free Buffer much bigger than asked for (it would be kept that big)', () => {
    const pool = new BodyPool(1 << 20);
    const big = pool.alloc(131_072); // what a 67 KB body read without a size hint grows into
    pool.free(big);
    const body = pool.alloc(67_000);
    expect(body.buffer).not.toBe(big.buffer);
    expect(body.length).toBe(81_920);
    expect(pool.alloc(120_000).buffer).toBe(big.buffer); // a body it fits
  });

  it('ignores Buffers it did not lend and double frees', () => {
    const pool = new BodyPool(1 << 20);
    pool.free(Buffer.alloc(100_000));
    expect(pool.spareSize).toBe(0);
    const a = pool.alloc(1);
    pool.free(a.subarray(0, 10));
    pool.free(a);
    expect(pool.spareSize).toBe(16_384);
  });

  it('keeps at most its limit of free bytes', () => {
    const pool = new BodyPool(40_000);
    const bufs = [pool.alloc(16_000), pool.alloc(16_000), pool.alloc(16_000)];
    for (const b of bufs) pool.free(b);
    expect(pool.spareSize).toBe(32_768);
    pool.setMaxSpareBytes(20_000);
    expect(pool.spareSize).toBe(16_384);
  });

  it('returns a leased body when it is released, once', () => {
    const pool = new BodyPool(1 << 20);
    const body = pool.alloc(1000).subarray(0, 1000);
    expect(pool.lease(Buffer.from('not ours'))).toBeUndefined();
    const lease = pool.lease(body)!;
    expect(lease.live).toBe(true);
    expect(pool.spareSize).toBe(0);
    lease.release();
    expect(lease.live).toBe(false);
    expect(pool.spareSize).toBe(16_384);
    lease.release();
    expect(pool.spareSize).toBe(16_384);
  });
});

describe('BodyLease holds', () => {
  it('returns a shared body when its last hold is released, each hold once', () => {
    const pool = new BodyPool(1 << 20);
    const body = pool.alloc(1000).subarray(0, 1000);
    const a = pool.lease(body)!;
    const b = a.share();
    const c = b.share();
    a.release();
    a.release(); // a second release of one hold is not another hold's
    b.release();
    expect(pool.spareSize).toBe(0);
    expect(c.live).toBe(true);
    c.release();
    expect(pool.spareSize).toBe(16_384);
  });
});
