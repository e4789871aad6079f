/**
 * Reads a quantized coefficient back from its residues (one per data prime) without BigInt
 * arithmetic on the whole coefficient: profiled, that arithmetic was three quarters of a quantized
 * decryption (a 240-bit product and remainder and a dozen shifts per coefficient). A whole
 * decryption of 100k values at 8 bits now takes about half as long.
 *
 * The Chinese remainder theorem in the form that keeps numbers small:
 *
 *   x = Σ_j y_j · (Q / q_j) - k · Q,   y_j = r_j · (Q / q_j)^-1 mod q_j,   k = round(Σ_j y_j / q_j)
 *
 * Each y_j is a 60-bit product taken modulo its prime, in limbs of 20 bits (prime-limbs.ts; in BigInt
 * it made reading a 12-client sum of the MLP 4.3-4.5 ms, 3.1-3.2 ms without); the sum is then
 * made in 24-bit limbs held in doubles, exact while every limb stays below 2^53: each prime adds at
 * most 2·(2^24)^2 + 2^12·2^24 < 2^49.01 to a limb, so up to 15 primes fit. Rounding k to the nearest
 * integer gives x centred in (-Q/2, Q/2), as the packing wrote it: geometryOf keeps a packed sum
 * within Q/4 of zero (its `usable` bits), and the float sum errs by about 2^-46, far from the half
 * where it could round the other way. Garbage (a wrong key) within 2^-46·Q of ±Q/2 may come out as
 * x ∓ Q: its noise is garbage either way.
 *
 * The slots then come out as fields of bits: adding 2^(noiseBits-1) rounds the noise away, and
 * adding 2^(width-1) below every slot makes each signed slot an unsigned field: the balanced digits
 * of the packed value, each in [-2^(width-1), 2^(width-1)), which is what the packing wrote when the
 * sum did not overflow. A slot that did overflow reads wrapped, and its carry goes to the slot above.
 */

import { PrimeLimbs } from './prime-limbs';

const LIMB_BITS = 24;
const LIMB = 2 ** LIMB_BITS;
const LIMB_MASK = LIMB - 1;

/** How values sit in a coefficient (quantized.ts geometryOf works it out). */
export interface SlotGeometry {
  /** Bits of one slot: the precision plus the headroom for the sum. */
  width: number;
  /** Values per coefficient. */
  slots: number;
  /** Low bits left to the encryption noise of a sum of `clients` ciphertexts. */
  noiseBits: number;
}

/** A coefficient's residues as SEAL lays them out: 64-bit words as 32-bit halves, prime-major (coefficients.ts Residues). */
export interface ResidueWords {
  readonly words: Uint32Array;
  readonly degree: number;
}

export class PackedReader {
  private readonly primes: PrimeLimbs[];
  /**
   * Per prime, the limbs of (Q / q_j)^-1 · 2^(15i) mod q_j for i = 0..3: a residue's four 15-bit
   * pieces times these, summed, is y_j before its reduction (12 numbers a prime, i-major).
   */
  private readonly inverseLimbs: Float64Array[];
  /** Q / q_j, in limbs. */
  private readonly cofactors: number[][];
  /** -Q, k times, is subtracted: Q in limbs. */
  private readonly modulus: number[];
  /** 2^(noiseBits-1) + Σ_s 2^(noiseBits + width·s + width - 1), in limbs. */
  private readonly offset: number[];
  /** The coefficient being read, plus the offset: limbs of 24 bits, lowest first. */
  private readonly limbs: Float64Array;
  /** The noise's bits, then each slot's: signed once their bias is taken off. */
  private readonly noisePlan: FieldPlan;
  private readonly slotPlan: FieldPlan;
  private readonly noiseBias: number;
  private readonly slotBias: number;
  private readonly noise = new Float64Array(1);
  private readonly slots: Float64Array;

  constructor(moduli: readonly bigint[], geometry: SlotGeometry) {
    if (moduli.some((q) => q >= 1n << 60n)) throw new Error('the packed reader takes primes of at most 60 bits (SEAL\'s limit)');
    if (moduli.length > 15) throw new Error(`the packed reader's limbs stay exact for up to 15 primes, not ${moduli.length}`);
    if (geometry.width > 52 || geometry.noiseBits > 52) throw new Error(`a packed slot of ${geometry.width} bits (noise ${geometry.noiseBits}) is beyond the 52 a double holds exactly`);
    const modulus = moduli.reduce((a, b) => a * b, 1n);
    this.primes = moduli.map((q) => new PrimeLimbs(q));
    this.inverseLimbs = this.primes.map((prime) => {
      const inverse = modInverse((modulus / prime.prime) % prime.prime, prime.prime);
      return Float64Array.from([0n, 15n, 30n, 45n].flatMap((shift) => prime.limbsOf(inverse << shift)));
    });
    // A cofactor's limbs times a y's three reach two beyond the cofactor's own. A cofactor is at least
    // 59 bits below Q, so Q's limbs would do; two more are a margin, as a typed array drops a write
    // beyond its end without a word.
    const size = limbsOf(modulus).length + 2;
    this.cofactors = moduli.map((q) => limbsOf(modulus / q));
    this.modulus = limbsOf(modulus, size);
    const { width, slots, noiseBits } = geometry;
    let offset = 1n << BigInt(noiseBits - 1);
    for (let s = 0; s < slots; s++) offset += 1n << BigInt(noiseBits + width * s + width - 1);
    this.offset = limbsOf(offset, size);
    this.limbs = new Float64Array(size);
    this.noisePlan = new FieldPlan([[0, noiseBits]]);
    this.slotPlan = new FieldPlan(Array.from({ length: slots }, (_, i) => [noiseBits + width * i, width] as [number, number]));
    this.noiseBias = 2 ** (noiseBits - 1);
    this.slotBias = 2 ** (width - 1);
    this.slots = new Float64Array(slots);
  }

  /** Reads coefficient `c` of `residues`; returns its noise, in [-2^(noiseBits-1), 2^(noiseBits-1)). Its slots follow from slot(). */
  read(residues: ResidueWords, c: number): number {
    const limbs = this.limbs;
    limbs.fill(0);
    let turns = 0;
    const { words, degree } = residues;
    for (let j = 0; j < this.primes.length; j++) {
      const at = 2 * (j * degree + c);
      const lo = words[at];
      const hi = words[at + 1]; // below 2^28
      // y_j = r_j · inverse mod q_j, r_j in four pieces of 15 bits.
      const a0 = lo & 0x7fff;
      const a1 = (lo >>> 15) & 0x7fff;
      const a2 = (lo >>> 30) + (hi & 0x1fff) * 4;
      const a3 = hi >>> 13;
      const inv = this.inverseLimbs[j];
      const prime = this.primes[j];
      prime.reduce(a0 * inv[0] + a1 * inv[3] + a2 * inv[6] + a3 * inv[9], a0 * inv[1] + a1 * inv[4] + a2 * inv[7] + a3 * inv[10], a0 * inv[2] + a1 * inv[5] + a2 * inv[8] + a3 * inv[11]);
      const { r0, r1, r2 } = prime;
      turns += (r2 * 2 ** 40 + r1 * 2 ** 20 + r0) / prime.value;
      // y_j in limbs of 24 bits.
      const y0 = r0 + (r1 & 0xf) * 2 ** 20;
      const y1 = (r1 >>> 4) + (r2 & 0xff) * 2 ** 16;
      const y2 = r2 >>> 8;
      const cofactor = this.cofactors[j];
      for (let b = 0; b < cofactor.length; b++) {
        const m = cofactor[b];
        limbs[b] += y0 * m;
        limbs[b + 1] += y1 * m;
        limbs[b + 2] += y2 * m;
      }
    }
    const k = Math.round(turns);
    let carry = 0;
    for (let b = 0; b < limbs.length; b++) {
      const v = limbs[b] + this.offset[b] - k * this.modulus[b] + carry;
      carry = Math.floor(v / LIMB);
      limbs[b] = v - carry * LIMB;
    }
    // The last carry is dropped (-1 when garbage is negative): the fields read lie below bit
    // bitLength(Q) - 2, and depend only on the value modulo 2^(24·size).
    this.noisePlan.read(limbs, this.noise, this.noiseBias);
    this.slotPlan.read(limbs, this.slots, this.slotBias);
    return this.noise[0];
  }

  /** Slot `s` of the coefficient last read, a signed integer. */
  slot(s: number): number {
    return this.slots[s];
  }
}

/**
 * Where each field's bits lie in the limbs, worked out once: piece i takes (limb >>> shift) & mask,
 * times scale, into field[i]. Reading by table keeps powers and divisions out of the loop (they made
 * reading a slot cost as much as the whole CRT).
 */
class FieldPlan {
  private readonly field: Int32Array;
  private readonly limb: Int32Array;
  private readonly shift: Int32Array;
  private readonly mask: Int32Array;
  private readonly scale: Float64Array;

  /** `fields`: [start bit, width] of each, width at most 52. */
  constructor(fields: readonly [number, number][]) {
    const pieces: [number, number, number, number, number][] = [];
    fields.forEach(([at, width], i) => {
      for (let got = 0; got < width; ) {
        const limb = Math.floor((at + got) / LIMB_BITS);
        const bit = at + got - limb * LIMB_BITS;
        const take = Math.min(LIMB_BITS - bit, width - got);
        pieces.push([i, limb, bit, 2 ** take - 1, 2 ** got]);
        got += take;
      }
    });
    this.field = Int32Array.from(pieces, (p) => p[0]);
    this.limb = Int32Array.from(pieces, (p) => p[1]);
    this.shift = Int32Array.from(pieces, (p) => p[2]);
    this.mask = Int32Array.from(pieces, (p) => p[3]);
    this.scale = Float64Array.from(pieces, (p) => p[4]);
  }

  /** Each field of `limbs`, unsigned, less `bias`, into `out`. */
  read(limbs: Float64Array, out: Float64Array, bias: number): void {
    out.fill(-bias);
    for (let p = 0; p < this.field.length; p++) out[this.field[p]] += ((limbs[this.limb[p]] >>> this.shift[p]) & this.mask[p]) * this.scale[p];
  }
}

/** x in limbs of 24 bits, lowest first, padded to `size`. */
function limbsOf(x: bigint, size = 0): number[] {
  const limbs: number[] = [];
  for (; x > 0n; x >>= BigInt(LIMB_BITS)) limbs.push(Number(x & BigInt(LIMB_MASK)));
  while (limbs.length < size) limbs.push(0);
  return limbs;
}

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [a % m, m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new Error('the HE primes are not coprime');
  return ((s0 % m) + m) % m;
}
