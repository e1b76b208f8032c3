import { Interner } from '../../src/util/intern';

describe('Interner', () => {
  it('keeps one entry per distinct string and returns an equal string', () => {
    const t = new Interner(8);
    const a = t.get('go_goroutines');
    expect(a).toBe('go_goroutines');
    expect(t.get(['go', 'goroutines'].join('_'))).toBe('go_goroutines');
    expect(t.size).toBe(1);
    t.get('go_threads');
    expect(t.size).toBe(2);
  });

  it('empties itself when full instead of growing past its bound', () => {
    const t = new Interner(4);
    for (let i = 0; i < 4; i++) t.get(`name_${i}`);
    expect(t.size).toBe(4);
    expect(t.get('name_4')).toBe('name_4');
    expect(t.size).toBe(1);
    for (let i = 0; i < 1000; i++) t.get(`made_up_${i}`);
    expect(t.size).toBeLessThanOrEqual(4);
  });
});
