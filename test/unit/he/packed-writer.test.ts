/**
 * Writing a packed coefficient in limbs rather than BigInt (src/he/packed-writer.ts), checked against
 * the coefficient built and reduced in BigInt, as the packing did before: every slot at its extremes,
 * at random, negative and zero, slots wider than a limb, and values beyond a slot (DP noise may add
 * a few steps past it; the slot above takes the carry, as in BigInt).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '../../../src/data/random';
import { Residues } from '../../../src/he/coefficients';
import { PackedWriter } from '../../../src/he/packed-writer';
import { geometryOf, type Geometry } from '../../../src/he/quantized';

const SIXTY = [1152921504606830593n, 1152921504606748673n, 1152921504606683137n, 1152921504606601217n, 1152921504606584833n, 1152921504606109697n, 1152921504605962241n];
const FIFTY_FOUR = [18014398508400641n];

const cases: { name: string; moduli: bigint[]; geometry: Geometry }[] = [
  { name: '8 bits for 12 clients under three 60-bit primes (the default)', moduli: SIXTY.slice(0, 3), geometry: geometryOf({ bits: 8, clients: 12 }, SIXTY.slice(0, 3)) },
  { name: '24 bits for 1,000 clients under four 60-bit primes (slots wider than a limb)', moduli: SIXTY.slice(0, 4), geometry: geometryOf({ bits: 24, clients: 1000 }, SIXTY.slice(0, 4)) },
  { name: '2 bits for 2 clients under one 54-bit prime (many slots to a limb)', moduli: FIFTY_FOUR, geometry: geometryOf({ bits: 2, clients: 2 }, FIFTY_FOUR) },
  { name: 'seven 60-bit primes (the longest coefficient)', moduli: SIXTY, geometry: geometryOf({ bits: 8, clients: 12 }, SIXTY) },
];

describe('PackedWriter', () => {
  for (const { name, moduli, geometry } of cases) {
    it(`writes each coefficient's residues as BigInt does: ${name}`, () => {
      const { width, slots, noiseBits } = geometry;
      const random = seededRandom(width * 31 + slots);
      const top = 2 ** (width - 1) - 1;
      const degree = 500;
      const writer = new PackedWriter(moduli, geometry);
      const out = new Residues(new Uint32Array(2 * moduli.length * degree), degree);
      const expected: bigint[][] = [];
      for (let c = 0; c < degree; c++) {
        const pattern = c % 40;
        const value = (s: number) =>
          pattern === 0 ? top : pattern === 1 ? -top : pattern === 2 ? (s % 2 ? top : -top) : pattern === 3 ? 0 : pattern === 4 ? (s === slots - 1 ? -1 : 0) : pattern === 5 ? 3 * top + 7 : Math.floor((random() * 2 - 1) * (top + 1));
        const used = pattern === 6 ? Math.max(1, slots - 2) : slots; // the last coefficient of a model may be part-filled
        const u = Array.from({ length: used }, (_, s) => value(s));
        writer.clear();
        u.forEach((x, s) => writer.place(s, x));
        writer.write(out, c);
        const packed = u.reduce((sum, x, s) => sum + (BigInt(x) << BigInt(noiseBits + width * s)), 0n);
        expected.push(moduli.map((q) => ((packed % q) + q) % q));
      }
      const written = new BigUint64Array(out.words.buffer);
      for (let c = 0; c < degree; c++) moduli.forEach((_, j) => assert.equal(written[j * degree + c], expected[c][j], `coefficient ${c}, prime ${j}`));
    });
  }

  it('refuses a value 2^20 times beyond its slot (its limbs would lose their bounds), or no number', () => {
    const geometry = geometryOf({ bits: 8, clients: 12 }, SIXTY.slice(0, 3));
    const writer = new PackedWriter(SIXTY.slice(0, 3), geometry);
    writer.place(0, 2 ** (geometry.width + 20) - 1);
    assert.throws(() => writer.place(0, 2 ** (geometry.width + 20)), /beyond what a slot is written from/);
    assert.throws(() => writer.place(0, -(2 ** (geometry.width + 20))), /beyond what a slot is written from/);
    assert.throws(() => writer.place(0, Number.NaN), /beyond what a slot is written from/);
  });
});
