/**
 * Arithmetic modulo one of SEAL's primes (below 2^60) in doubles, without BigInt: a number is three
 * limbs of 20 bits, x = x2·2^40 + x1·2^20 + x0. BigInt was about a third of a quantized update's
 * packing (a 180-bit coefficient built and taken modulo each prime) and a fifth of reading it back
 * (a 60-bit product modulo each prime): packed-writer.ts and packed-reader.ts say what each took.
 *
 * `reduce` takes limbs that may be negative and far above 2^20, as sums of products leave them, and
 * gives x mod q in [0, q): the quotient is estimated in floating point, and the remainder worked out
 * exactly in limbs. Exact while every limb is below 2^46 in magnitude and |x| below 2^25·q: the
 * estimate then errs by less than one (a double's relative error is 2^-53), the limbs of the
 * quotient times q stay below 2^45, and one addition or subtraction of q corrects it.
 */

const LIMB = 2 ** 20;
const MASK = LIMB - 1;

export class PrimeLimbs {
  /** q's limbs, and q as a double (rounded: used only to estimate quotients). */
  readonly q0: number;
  readonly q1: number;
  readonly q2: number;
  readonly value: number;
  /** The result of the last reduce, in limbs of 20 bits (each in [0, 2^20)). */
  r0 = 0;
  r1 = 0;
  r2 = 0;

  constructor(readonly prime: bigint) {
    if (prime <= 1n || prime >= 1n << 60n) throw new Error(`a prime of at most 60 bits, not ${prime}`);
    [this.q0, this.q1, this.q2] = limbs20(prime);
    this.value = Number(prime);
  }

  /** The limbs of c mod q (c may be negative). */
  limbsOf(c: bigint): [number, number, number] {
    return limbs20(((c % this.prime) + this.prime) % this.prime);
  }

  /** Sets r0..r2 to (s2·2^40 + s1·2^20 + s0) mod q; see the bounds above. */
  reduce(s0: number, s1: number, s2: number): void {
    const quotient = Math.floor((s2 * 2 ** 40 + s1 * LIMB + s0) / this.value);
    this.carry(s0 - quotient * this.q0, s1 - quotient * this.q1, s2 - quotient * this.q2);
    // Now r0, r1 are in [0, 2^20) and x, in (-q, 2q), has the sign of r2.
    const { r0, r1, r2 } = this;
    if (r2 < 0) this.carry(r0 + this.q0, r1 + this.q1, r2 + this.q2);
    else if (r2 > this.q2 || (r2 === this.q2 && (r1 > this.q1 || (r1 === this.q1 && r0 >= this.q0)))) this.carry(r0 - this.q0, r1 - this.q1, r2 - this.q2);
  }

  /** r0..r2 from limbs of any size and sign: r0, r1 into [0, 2^20), the rest (and the sign) in r2. */
  private carry(x0: number, x1: number, x2: number): void {
    let carry = Math.floor(x0 / LIMB);
    this.r0 = x0 - carry * LIMB;
    x1 += carry;
    carry = Math.floor(x1 / LIMB);
    this.r1 = x1 - carry * LIMB;
    this.r2 = x2 + carry;
  }

  /** The last result's low and high 32 bits (SEAL's words). */
  get lo(): number {
    return this.r0 + (this.r1 & 0xfff) * LIMB;
  }

  get hi(): number {
    return (this.r1 >>> 12) + this.r2 * 2 ** 8;
  }
}

function limbs20(x: bigint): [number, number, number] {
  return [Number(x & BigInt(MASK)), Number((x >> 20n) & BigInt(MASK)), Number(x >> 40n)];
}
