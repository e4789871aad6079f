/**
 * Reading a packed coefficient back in limbs rather than BigInt (src/he/packed-reader.ts), checked
 * against values packed in BigInt and against the Chinese remainder theorem worked in BigInt, the
 * way the reader it replaced did it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PackedReader, type ResidueWords } from '../../../src/he/packed-reader';
import { geometryOf, type Geometry } from '../../../src/he/quantized';
import { seededRandom } from '../../../src/data/random';

/** NTT-friendly primes (1 mod 2·8192) below 2^60 and 2^54, as SEAL picks them. */
const SIXTY = [
  1152921504606830593n, 1152921504606748673n, 1152921504606683137n, 1152921504606601217n,
  1152921504606584833n, 1152921504606109697n, 1152921504605962241n,
];
const FIFTY_FOUR = [18014398508400641n];

/** The residues of each coefficient of `values`, laid out as Residues keeps them (prime-major, 64-bit words as 32-bit halves). */
function residuesOf(values: bigint[], moduli: bigint[]): ResidueWords {
  const wide = BigUint64Array.from(moduli.flatMap((q) => values.map((x) => ((x % q) + q) % q)));
  return { words: new Uint32Array(wide.buffer), degree: values.length };
}

/** What BigInt makes of a coefficient: x centred modulo Q, its noise below noiseBits, and the balanced digits above it. */
function reference(x: bigint, moduli: bigint[], { width, slots, noiseBits }: Geometry): { noise: number; slots: number[] } {
  const modulus = moduli.reduce((a, b) => a * b, 1n);
  let centred = ((x % modulus) + modulus) % modulus;
  if (centred > modulus >> 1n) centred -= modulus;
  const shift = BigInt(noiseBits);
  const rounded = (centred + (1n << (shift - 1n))) >> shift;
  const noise = Number(centred - (rounded << shift));
  let packed = rounded;
  const digits: number[] = [];
  for (let s = 0; s < slots; s++) {
    const digit = BigInt.asIntN(width, packed);
    digits.push(Number(digit));
    packed = (packed - digit) >> BigInt(width);
  }
  return { noise, slots: digits };
}

/** A uniform integer in [-top, top], from two draws (seededRandom gives 32 bits, slots may be wider). */
const uniformIn = (random: () => number, top: number) => Math.floor((random() + random() * 2 ** -32) * (2 * top + 1)) - top;

const cases: { name: string; moduli: bigint[]; geometry: Geometry }[] = [
  { name: '8 bits for 12 clients under three 60-bit primes (the default)', moduli: SIXTY.slice(0, 3), geometry: geometryOf({ bits: 8, clients: 12 }, SIXTY.slice(0, 3)) },
  { name: '24 bits for 1,000 clients under four 60-bit primes', moduli: SIXTY.slice(0, 4), geometry: geometryOf({ bits: 24, clients: 1000 }, SIXTY.slice(0, 4)) },
  { name: '2 bits for 2 clients under one 54-bit prime', moduli: FIFTY_FOUR, geometry: geometryOf({ bits: 2, clients: 2 }, FIFTY_FOUR) },
  { name: 'seven 60-bit primes, the most the HE schema allows (the heaviest limbs)', moduli: SIXTY, geometry: geometryOf({ bits: 8, clients: 12 }, SIXTY) },
  { name: 'slots of 50 bits, each spanning three limbs', moduli: SIXTY.slice(0, 3), geometry: { width: 50, slots: 3, noiseBits: 20 } },
];

describe('PackedReader', () => {
  for (const { name, moduli, geometry } of cases) {
    it(`reads every slot and the noise exactly: ${name}`, () => {
      const { width, slots, noiseBits } = geometry;
      const random = seededRandom(width * 7919 + slots);
      const top = 2 ** (width - 1) - 1; // a sum's slot stays within ±top (the headroom)
      const half = 2 ** (noiseBits - 1); // noise in [-half, half) is rounded away
      const coefficients = 2000;
      const written: { slots: number[]; noise: number }[] = [];
      for (let c = 0; c < coefficients; c++) {
        // The extremes every few coefficients: all slots at +top, at -top, alternating, and zero.
        const pattern = c % 50;
        const slotValues = Array.from({ length: slots }, (_, s) =>
          pattern === 0 ? top : pattern === 1 ? -top : pattern === 2 ? (s % 2 ? top : -top) : pattern === 3 ? 0 : uniformIn(random, top),
        );
        const noise = pattern === 4 ? half - 1 : pattern === 5 ? -half : uniformIn(random, half - 1);
        written.push({ slots: slotValues, noise });
      }
      const values = written.map(({ slots: s, noise }) => s.reduce((x, u, i) => x + (BigInt(u) << BigInt(noiseBits + width * i)), BigInt(noise)));
      const reader = new PackedReader(moduli, geometry);
      const residues = residuesOf(values, moduli);
      for (let c = 0; c < coefficients; c++) {
        assert.equal(reader.read(residues, c), written[c].noise, `noise of coefficient ${c}`);
        assert.deepEqual(Array.from({ length: slots }, (_, s) => reader.slot(s)), written[c].slots, `slots of coefficient ${c}`);
      }
    });

    it(`reads anything as BigInt does, noise (how a wrong key is told) and wrapped slots: ${name}`, () => {
      const random = seededRandom(geometry.noiseBits);
      const modulus = moduli.reduce((a, b) => a * b, 1n);
      // Uniform over [0, Q): what a ciphertext decrypted under another key looks like.
      const values = Array.from({ length: 2000 }, () => {
        let x = 0n;
        for (let i = 0; i < 16; i++) x = (x << 32n) + BigInt(Math.floor(random() * 2 ** 32));
        return x % modulus;
      });
      const reader = new PackedReader(moduli, geometry);
      const residues = residuesOf(values, moduli);
      values.forEach((x, c) => {
        const expected = reference(x, moduli, geometry);
        assert.equal(reader.read(residues, c), expected.noise, `noise of coefficient ${c}`);
        assert.deepEqual(Array.from({ length: geometry.slots }, (_, s) => reader.slot(s)), expected.slots, `slots of coefficient ${c}`);
      });
    });
  }

  it('refuses what its limbs cannot hold exactly, and primes that are not coprime', () => {
    const three = SIXTY.slice(0, 3);
    assert.throws(() => new PackedReader(three, { width: 53, slots: 2, noiseBits: 17 }), /53 bits/);
    assert.throws(() => new PackedReader(three, { width: 12, slots: 2, noiseBits: 53 }), /noise 53/);
    assert.throws(() => new PackedReader([1n << 60n, ...three], { width: 12, slots: 2, noiseBits: 17 }), /60 bits/);
    assert.throws(() => new PackedReader(Array.from({ length: 16 }, (_, i) => SIXTY[i % 7]), { width: 12, slots: 2, noiseBits: 17 }), /15 primes/);
    assert.throws(() => new PackedReader([three[0], three[0]], { width: 12, slots: 2, noiseBits: 17 }), /not coprime/);
  });
});
