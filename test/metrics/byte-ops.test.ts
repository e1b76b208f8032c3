import { equalRange, viewOf } from '../../src/metrics/byte-ops';

describe('equalRange', () => {
  it('compares ranges of any length, telling a difference at every position (word and tail)', () => {
    // Small Buffers lie in node's shared pool slab: indexes are absolute (byteOffset + i).
    const a = Buffer.from('abcdefghijklmnopqrstuvwxyz');
    const at = (b: Buffer): number => b.byteOffset + 3;
    for (let n = 0; n <= 13; n++) {
      const b = Buffer.from(a);
      expect(equalRange(viewOf(a), at(a), viewOf(b), at(b), n)).toBe(true);
      for (let k = 0; k < n; k++) {
        const c = Buffer.from(a);
        c[3 + k] = 0x21;
        expect(equalRange(viewOf(a), at(a), viewOf(c), at(c), n)).toBe(false);
        // A difference just outside the range does not count.
        expect(equalRange(viewOf(a), at(a), viewOf(c), at(c), k)).toBe(true);
      }
    }
  });

  it('indexes views by the byteOffset of Buffers sharing one ArrayBuffer', () => {
    const slab = Buffer.from('xxxx# TYPE a counter\na 1\nyy# TYPE a counter\na 2\n');
    const one = slab.subarray(4, 25);
    const two = slab.subarray(27);
    expect(one.buffer).toBe(two.buffer);
    const key = '# TYPE a counter\na '.length;
    expect(equalRange(viewOf(one), one.byteOffset, viewOf(two), two.byteOffset, key)).toBe(true);
    expect(equalRange(viewOf(one), one.byteOffset, viewOf(two), two.byteOffset, key + 1)).toBe(false);
  });
});
