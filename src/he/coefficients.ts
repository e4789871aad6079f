/**
 * Values packed into the coefficients of CKKS plaintexts, N to a ciphertext, rather than into its
 * N/2 slots. The slots' structure (the canonical embedding) is what lets CKKS multiply element-wise;
 * aggregation only adds, and addition acts on coefficients as it does on slots. So coefficient
 * packing halves the ciphertexts, the bytes, the encryptions of zero and the switches' sums, with
 * the same RLWE encryption and less noise (no embedding to amplify it).
 *
 * SEAL keeps CKKS plaintexts in NTT form and offers no coefficient encoder, so the NTT used is SEAL's
 * own: two chunks go in as the two parts of a ciphertext and come out transformed. This reads and
 * writes the data at the end of SEAL's uncompressed serializations (its layout since SEAL 3.4); a
 * template made by SEAL itself supplies each header, and lengths are checked against it.
 */

const TWO_32 = 2 ** 32;

type Direction = 'to-ntt' | 'from-ntt';

/** The SEAL objects the codec borrows from its Ckks, and SEAL-made serializations to copy headers from. */
export interface CodecParts {
  seal: any;
  context: any;
  evaluator: any;
  /** The coefficient moduli q_0..q_{k-1}, as SEAL chose them. */
  moduli: readonly bigint[];
  degree: number;
  /** An encoded plaintext (NTT form, at the scale) and a ciphertext, both saved uncompressed. */
  plain: Uint8Array;
  cipher: Uint8Array;
}

/** One chunk's coefficients modulo each prime: 64-bit words as 32-bit halves (SEAL's layout). */
export class Residues {
  constructor(
    readonly words: Uint32Array,
    readonly degree: number,
  ) {}

  set(prime: number, coefficient: number, lo: number, hi: number): void {
    const at = 2 * (prime * this.degree + coefficient);
    this.words[at] = lo;
    this.words[at + 1] = hi;
  }

  get(prime: number, coefficient: number): [number, number] {
    const at = 2 * (prime * this.degree + coefficient);
    return [this.words[at], this.words[at + 1]];
  }
}

/**
 * How values sit in the coefficients: one value each (FloatLayout), or several (QuantizedLayout in
 * quantized.ts). Both write and read values[start..end) of a chunk; `first` is the index of values[0]
 * in the whole model.
 */
export interface CoefficientLayout {
  readonly perCoefficient: number;
  /** `noise`: distributed DP's standard deviation, added in the layout's integer steps (quantized only). */
  toResidues(values: Float32Array | Float64Array, start: number, end: number, factor: number, first: number, out: Residues, noise?: number): void;
  fromResidues(residues: Residues, out: Float64Array, start: number, end: number, factor: number, first: number): void;
}

/** A value to a coefficient, times 2^scale_bits and rounded (CKKS's own encoding, without the embedding). */
export class FloatLayout implements CoefficientLayout {
  readonly perCoefficient = 1;
  private readonly halves: { hi: number; lo: number; value: number }[];

  constructor(
    moduli: readonly bigint[],
    private readonly scale: number,
  ) {
    this.halves = moduli.map((q) => ({ hi: Number(q >> 32n), lo: Number(q & 0xffffffffn), value: Number(q) }));
  }

  /** values·factor·scale, rounded, as residues modulo each prime (negative numbers wrap to q - |x|). */
  toResidues(values: Float32Array | Float64Array, start: number, end: number, factor: number, _first: number, out: Residues, noise = 0): void {
    // Unquantized, clients add DP noise to their floats before encrypting (privacy/dp.ts clientNoise).
    if (noise > 0) throw new Error('noise in the integer domain is for quantized packing only');
    const limit = this.halves[0].value / 2;
    for (let i = start; i < end; i++) {
      const scaled = Math.round(values[i] * factor * this.scale);
      const size = Math.abs(scaled);
      if (!(size < limit)) throw new Error(`value ${values[i] * factor} at ${i} does not fit the HE scale (2^${Math.log2(this.scale)}) in the first prime`);
      if (scaled === 0) continue;
      this.halves.forEach((q, j) => {
        const residue = size < q.value ? size : size % q.value; // exact: both are integers below 2^53
        const hi = Math.floor(residue / TWO_32);
        const lo = residue - hi * TWO_32;
        const [wordLo, wordHi] = scaled < 0 && residue !== 0 ? minus(q, lo, hi) : [lo, hi];
        out.set(j, i - start, wordLo, wordHi);
      });
    }
  }

  /** Coefficients modulo the first prime, centred (x > q/2 means x - q), divided by the scale. */
  fromResidues(residues: Residues, out: Float64Array, start: number, end: number, factor: number): void {
    const q = this.halves[0];
    const unit = factor / this.scale;
    for (let i = start; i < end; i++) {
      const [lo, hi] = residues.get(0, i - start);
      const value = hi * TWO_32 + lo;
      if (value < q.value / 2) out[i] = value * unit;
      else {
        const [negLo, negHi] = minus(q, lo, hi);
        out[i] = -(negHi * TWO_32 + negLo) * unit;
      }
    }
  }
}

export class CoefficientCodec {
  /** Uint32 words in one RNS polynomial: k residues of N coefficients, 64 bits each. */
  readonly words: number;
  /** Values in one chunk (one plaintext). */
  readonly perChunk: number;
  private readonly plainHead: Uint8Array;
  private readonly cipherHead: Record<Direction, Uint8Array>;
  private readonly scratch: any;

  constructor(
    private readonly parts: CodecParts,
    private readonly layout: CoefficientLayout,
  ) {
    const { seal, context, evaluator, moduli, degree, plain, cipher } = parts;
    this.words = 2 * degree * moduli.length;
    this.perChunk = degree * layout.perCoefficient;
    this.plainHead = headOf(plain, this.words * 4, 'plaintext');
    // The flag that says NTT form sits in the header: take both headers from SEAL rather than patch a byte.
    const ntt = seal.CipherText();
    ntt.loadArray(context, cipher);
    const coefficients = evaluator.cipherTransformFromNtt(ntt);
    this.cipherHead = {
      'from-ntt': headOf(cipher, 2 * this.words * 4, 'ciphertext'),
      'to-ntt': headOf(coefficients.saveArray(seal.ComprModeType.none), 2 * this.words * 4, 'ciphertext'),
    };
    ntt.delete();
    coefficients.delete();
    this.scratch = seal.CipherText();
  }

  /**
   * Calls `use` with each chunk of `values`·factor as a plaintext (NTT form), in order; each plaintext
   * is deleted once `use` returns. `first`: the index of values[0] in the whole model; `noise` as
   * for CoefficientLayout.toResidues.
   */
  encode(values: Float32Array | Float64Array, factor: number, use: (plain: any, chunk: number) => void, first = 0, noise = 0): void {
    const chunks = Math.ceil(values.length / this.perChunk);
    for (let c = 0; c < chunks; c += 2) {
      const second = c + 1 < chunks ? this.coefficientsOf(values, c + 1, factor, first, noise) : undefined;
      const transformed = this.transform('to-ntt', this.coefficientsOf(values, c, factor, first, noise), second);
      transformed.forEach((words, k) => {
        const plain = this.plainOf(words);
        try {
          use(plain, c + k);
        } finally {
          plain.delete();
        }
      });
    }
  }

  /**
   * Reads decrypted plaintexts back into values·factor: `plainOfChunk(c)` gives chunk c's plaintext
   * (the codec deletes it), and `out` receives its first out.length values.
   */
  decode(chunks: number, plainOfChunk: (chunk: number) => any, out: Float64Array, factor: number, first = 0): void {
    const wordsOf = (chunk: number) => {
      const plain = plainOfChunk(chunk);
      try {
        return this.wordsOfPlain(plain);
      } finally {
        plain.delete();
      }
    };
    for (let c = 0; c < chunks; c += 2) {
      const pair = this.transform('from-ntt', wordsOf(c), c + 1 < chunks ? wordsOf(c + 1) : undefined);
      pair.forEach((words, k) => {
        const start = (c + k) * this.perChunk;
        this.layout.fromResidues(new Residues(words, this.parts.degree), out, start, Math.min(out.length, start + this.perChunk), factor, first);
      });
    }
  }

  dispose(): void {
    this.scratch.delete();
  }

  private coefficientsOf(values: Float32Array | Float64Array, chunk: number, factor: number, first: number, noise: number): Uint32Array {
    const words = new Uint32Array(this.words);
    const start = chunk * this.perChunk;
    this.layout.toResidues(values, start, Math.min(values.length, start + this.perChunk), factor, first, new Residues(words, this.parts.degree), noise);
    return words;
  }

  /**
   * SEAL's NTT (or its inverse) of one or two polynomials, carried as the two parts of a ciphertext.
   * SEAL refuses to transform a ciphertext whose second part is zero, so a lone polynomial travels
   * with a stand-in 1 that is thrown away, and an all-zero second is set to zero afterwards.
   */
  private transform(direction: Direction, first: Uint32Array, second?: Uint32Array): Uint32Array[] {
    const head = this.cipherHead[direction];
    const bytes = this.words * 4;
    const real = second !== undefined && second.some((w) => w !== 0);
    const buffer = new Uint8Array(head.length + 2 * bytes);
    buffer.set(head);
    buffer.set(asBytes(first), head.length);
    if (real) buffer.set(asBytes(second), head.length + bytes);
    else buffer[head.length + bytes] = 1;
    this.scratch.loadArray(this.parts.context, buffer);
    if (direction === 'to-ntt') this.parts.evaluator.cipherTransformToNtt(this.scratch, this.scratch);
    else this.parts.evaluator.cipherTransformFromNtt(this.scratch, this.scratch);
    const saved: Uint8Array = this.scratch.saveArray(this.parts.seal.ComprModeType.none);
    if (saved.length !== buffer.length) throw new Error(`SEAL wrote ${saved.length} bytes for a ${buffer.length}-byte ciphertext`);
    const data = new Uint32Array(saved.slice(head.length).buffer); // copied: SEAL's data is not 4-byte aligned
    if (second === undefined) return [data.subarray(0, this.words)];
    return [data.subarray(0, this.words), real ? data.subarray(this.words) : new Uint32Array(this.words)];
  }

  private plainOf(words: Uint32Array): any {
    const buffer = new Uint8Array(this.plainHead.length + words.length * 4);
    buffer.set(this.plainHead);
    buffer.set(asBytes(words), this.plainHead.length);
    const plain = this.parts.seal.PlainText();
    plain.loadArray(this.parts.context, buffer);
    return plain;
  }

  private wordsOfPlain(plain: any): Uint32Array {
    const saved: Uint8Array = plain.saveArray(this.parts.seal.ComprModeType.none);
    if (saved.length !== this.plainHead.length + this.words * 4) throw new Error(`SEAL wrote ${saved.length} bytes for a plaintext`);
    return new Uint32Array(saved.slice(this.plainHead.length).buffer);
  }
}

/** q - x for x below q, both as 32-bit halves: exact where a double holding q (up to 60 bits) would round. */
function minus(q: { hi: number; lo: number }, lo: number, hi: number): [number, number] {
  const low = q.lo - lo;
  return low < 0 ? [low + TWO_32, q.hi - hi - 1] : [low, q.hi - hi];
}

function asBytes(words: Uint32Array): Uint8Array {
  return new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
}

/** The header of a SEAL serialization whose data (`dataBytes` long) comes last. */
function headOf(saved: Uint8Array, dataBytes: number, what: string): Uint8Array {
  if (saved.length <= dataBytes) throw new Error(`a SEAL ${what} of ${saved.length} bytes cannot hold ${dataBytes} bytes of data`);
  return saved.slice(0, saved.length - dataBytes);
}
