/**
 * Reduction modulo a prime in limbs of 20 bits (src/he/prime-limbs.ts), against BigInt: limbs as sums
 * of products leave them (large, negative), and values a hair on either side of a multiple of q,
 * where the floating-point quotient may be one off and the correction must catch it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '../../../src/data/random';
import { PrimeLimbs } from '../../../src/he/prime-limbs';

const PRIMES = [
  1152921504606830593n, // 60 bits, as SEAL picks them for N = 8192 (1 mod 2N)
  (1n << 60n) - 93n, // the largest prime below 2^60
  18014398508400641n, // 54 bits
  1099511480321n, // 40 bits
  1073479681n, // 30 bits
  65537n,
];

const mod = (x: bigint, q: bigint) => ((x % q) + q) % q;
const valueOf = (s0: number, s1: number, s2: number) => BigInt(s2) * (1n << 40n) + BigInt(s1) * (1n << 20n) + BigInt(s0);

function check(prime: PrimeLimbs, s0: number, s1: number, s2: number): void {
  prime.reduce(s0, s1, s2);
  const expected = mod(valueOf(s0, s1, s2), prime.prime);
  const got = valueOf(prime.r0, prime.r1, prime.r2);
  assert.equal(got, expected, `(${s2}, ${s1}, ${s0}) mod ${prime.prime}`);
  for (const limb of [prime.r0, prime.r1]) assert.ok(limb >= 0 && limb < 2 ** 20, `limb ${limb}`);
  assert.equal(BigInt(prime.hi) * (1n << 32n) + BigInt(prime.lo), expected, 'as SEAL words');
}

describe('PrimeLimbs', () => {
  for (const q of PRIMES) {
    it(`reduces limbs of up to 2^46 either sign, and values next to multiples of q, as BigInt does: q = ${q}`, () => {
      const prime = new PrimeLimbs(q);
      const random = seededRandom(Number(q % 100_003n));
      const signed = (bits: number) => Math.floor((random() * 2 - 1) * 2 ** bits);
      // Limbs as sums of products leave them, each within 2^46 and all within |x| < 2^25·q (2^24 here, each limb a third of it).
      const room = 24 + q.toString(2).length - 2;
      for (let i = 0; i < 3000; i++) check(prime, signed(Math.min(46, room)), signed(Math.min(46, room - 20)), signed(Math.max(0, room - 40)));
      for (let i = 0; i < 3000; i++) {
        // t·q + d for d near 0: where the estimate may land one multiple off.
        const t = BigInt(signed(24));
        const d = BigInt((i % 7) - 3);
        const x = t * q + d;
        // Written with a low limb pushed up or down by a random multiple of 2^20, carried the other way.
        const shift = signed(20);
        const x0 = Number(BigInt.asIntN(64, x & 0xfffffn)) + shift * 2 ** 20;
        const rest = (x - BigInt(x0)) / (1n << 20n);
        const x1 = Number(rest & 0xfffffn);
        const x2 = Number((rest - BigInt(x1)) / (1n << 20n));
        check(prime, x0, x1, x2);
      }
      for (const x of [0n, 1n, q - 1n, q, q + 1n, 2n * q - 1n, -1n, -q, -q + 1n]) {
        check(prime, Number(x & 0xfffffn), Number((x >> 20n) & 0xfffffn), Number(x >> 40n));
      }
    });
  }

  it('takes primes below 2^60 only', () => {
    assert.throws(() => new PrimeLimbs(1n << 60n), /at most 60 bits/);
    assert.throws(() => new PrimeLimbs(1n), /at most 60 bits/);
  });
});
