/**
 * CpuSlices: turns are granted at once while the slice has time left; once it is used up, every caller parks
 * on one gate that opens on the next event-loop turn, and the slice starts again there.
 */
import { CpuSlices } from '../../src/util/cpu-slices';

/** Whether `p` settled before the event loop turned (microtasks only). */
async function settledNow(p: Promise<void>): Promise<boolean> {
  let done = false;
  void p.then(() => {
    done = true;
  });
  for (let i = 0; i < 10; i++) await Promise.resolve();
  return done;
}

describe('CpuSlices', () => {
  it('grants turns at once while the slice has time left', async () => {
    let now = 100;
    const s = new CpuSlices(2, () => now);
    now = 101.9;
    expect(s.due).toBe(false);
    expect(await settledNow(s.turn())).toBe(true);
    expect(s.parked).toBe(0);
  });

  it('parks every caller on one gate once the slice is used up, then starts a new slice', async () => {
    let now = 0;
    const s = new CpuSlices(2, () => now);
    now = 5;
    expect(s.due).toBe(true);
    // The gate opens in the loop's check phase, after what was queued there before it.
    let immediateRan = false;
    setImmediate(() => {
      immediateRan = true;
    });
    const a = s.turn();
    const b = s.turn();
    expect(await settledNow(a)).toBe(false);
    expect(await settledNow(b)).toBe(false);
    await a;
    expect(immediateRan).toBe(true);
    await b;
    expect(s.parked).toBe(2);
    expect(s.due).toBe(false); // the slice restarted at the gate (now = 5)
    now = 6.5;
    expect(await settledNow(s.turn())).toBe(true);
  });

  it('lets a timer fire between pieces of synchronous work', async () => {
    const s = new CpuSlices(1);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      const until = performance.now() + 60;
      let pieces = 0;
      while (performance.now() < until) {
        await s.turn();
        const end = performance.now() + 0.3;
        while (performance.now() < end); // synchronous work
        pieces++;
      }
      expect(pieces).toBeGreaterThan(10);
      // Without the turns no timer could fire: the loop above never awaits anything else.
      expect(ticks).toBeGreaterThan(3);
      expect(s.parked).toBeGreaterThan(3);
    } finally {
      clearInterval(timer);
    }
  });
});

describe('CpuSlices without time (sliceMs 0)', () => {
  it('lets exactly one parked caller go on per turn of the loop', async () => {
    const s = new CpuSlices(0);
    const order: Array<[number, number]> = [];
    let turn = 0;
    let on = true;
    const spin = (): void => {
      turn++;
      if (on) setImmediate(spin);
    };
    setImmediate(spin);
    await Promise.all(
      [0, 1, 2, 3].map(async k => {
        await s.turn();
        order.push([k, turn]);
      }),
    );
    on = false;
    expect(order.map(o => o[0])).toEqual([0, 1, 2, 3]);
    const turns = order.map(o => o[1]);
    expect(new Set(turns).size).toBe(4); // one per turn
  });
});
