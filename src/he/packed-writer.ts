/**
 * The packing's writing side (quantized.ts; the reading side is packed-reader.ts): a coefficient
 * Σ_s u_s · 2^(noiseBits + width·s) as its residue modulo each prime.
 */
import type { Residues } from './coefficients';
import type { SlotGeometry } from './packed-reader';
import { PrimeLimbs } from './prime-limbs';

/**
 * Writes a coefficient's residues from its slots without BigInt: the packed integer
 * Σ_s u_s · 2^(noiseBits + width·s) is built exactly in limbs of 20 bits (each slot split in two
 * pieces at a limb's width, so a limb stays far below 2^53 whatever the slot's width), carried into
 * [0, 2^20) with the sign left in a last limb, and reduced modulo each prime from the limbs' weights
 * 2^(20k) mod q (prime-limbs.ts). It replaced the same in BigInt (a 180-bit integer shifted and
 * taken modulo each prime): 4.4-4.9 ms for 5.9-7.8 to pack 100k values at 8 bits.
 */
export class PackedWriter {
  private readonly primes: PrimeLimbs[];
  /** The packed integer in limbs of 20 bits, lowest first; the last takes the sign (0 or -1) once carried. */
  private readonly limbs: Float64Array;
  /** Per slot: the limb its lowest bit falls in, and 2^(its bit within that limb). */
  private readonly slotLimb: Int32Array;
  private readonly slotScale: Float64Array;
  /** Per prime, the limbs (3 of 20 bits) of 2^(20k) mod q for each limb k, k-major. */
  private readonly weights: Float64Array[];
  /**
   * The most steps a slot is written from: 2^20 times what it holds (DP noise may pass it by a few,
   * carrying into the slot above, as in BigInt), so the limbs keep their bounds (prime-limbs.ts).
   */
  private readonly limit: number;

  constructor(moduli: readonly bigint[], { width, slots, noiseBits }: SlotGeometry) {
    this.primes = moduli.map((q) => new PrimeLimbs(q));
    // A slot's upper piece lands a limb above its lower one; one more limb holds the carry's sign.
    const count = Math.ceil((noiseBits + width * slots) / 20) + 2;
    if (count > 30) throw new Error(`a packed coefficient of ${noiseBits + width * slots} bits is beyond what the packing writes in limbs`);
    this.limbs = new Float64Array(count);
    this.limit = 2 ** Math.min(52, width + 20);
    this.slotLimb = Int32Array.from({ length: slots }, (_, s) => Math.floor((noiseBits + width * s) / 20));
    this.slotScale = Float64Array.from({ length: slots }, (_, s) => 2 ** ((noiseBits + width * s) % 20));
    this.weights = this.primes.map((prime) => Float64Array.from(Array.from({ length: count }, (_, k) => prime.limbsOf(1n << BigInt(20 * k))).flat()));
  }

  clear(): void {
    this.limbs.fill(0);
  }

  /** Slot `s` holds `u`, a signed integer. */
  place(s: number, u: number): void {
    if (!(Math.abs(u) < this.limit)) throw new Error(`a packed value of ${u} steps is beyond what a slot is written from`);
    const low = u - Math.floor(u / 2 ** 20) * 2 ** 20;
    const at = this.slotLimb[s];
    this.limbs[at] += low * this.slotScale[s];
    this.limbs[at + 1] += ((u - low) / 2 ** 20) * this.slotScale[s];
  }

  /** The coefficient `c` placed since clear(), as its residue modulo each prime; a zero one is left as it is (zero). */
  write(out: Residues, c: number): void {
    const limbs = this.limbs;
    let carry = 0;
    let zero = true;
    for (let k = 0; k < limbs.length - 1; k++) {
      const v = limbs[k] + carry;
      carry = Math.floor(v / 2 ** 20);
      limbs[k] = v - carry * 2 ** 20;
      if (limbs[k] !== 0) zero = false;
    }
    limbs[limbs.length - 1] += carry;
    if (zero && limbs[limbs.length - 1] === 0) return;
    for (let j = 0; j < this.primes.length; j++) {
      const w = this.weights[j];
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      for (let k = 0, at = 0; k < limbs.length; k++, at += 3) {
        const limb = limbs[k];
        if (limb === 0) continue;
        s0 += limb * w[at];
        s1 += limb * w[at + 1];
        s2 += limb * w[at + 2];
      }
      const prime = this.primes[j];
      prime.reduce(s0, s1, s2);
      out.set(j, c, prime.lo, prime.hi);
    }
  }
}
