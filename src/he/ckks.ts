/**
 * CKKS through Microsoft SEAL (node-seal 6.0.3, the last that loads on Node 20). Only additions
 * happen under encryption, so one prime is enough (no special prime, no relinearization or Galois
 * keys) and values go in the plaintexts' coefficients, N to a ciphertext (see coefficients.ts).
 * The SEAL objects are made in seal.ts; every one is deleted as soon as it is used.
 */
import { createHash } from 'node:crypto';
import { closeSeal, decryptToPlain, encryptPlain, loadCiphertext, openSeal, wrap, WIRE_COMPRESSION, type HeParams, type KeyMaterial, type SealKit } from './seal';

export { WIRE_COMPRESSION, type Compression, type HeParams, type KeyMaterial } from './seal';

/**
 * A short id of the parameters, carried with every ciphertext so one made under others is refused.
 * How values sit in a plaintext is part of it, as ciphertexts packed otherwise would decode to garbage.
 */
export function paramsId(params: HeParams): string {
  const { bits, clip, clients, noise_reserve: reserve } = params.quantize ?? {};
  const packing = params.quantize ? ['quantized', bits, clients, clip, ...(reserve ? [reserve] : [])] : ['coefficients'];
  return createHash('sha256').update(JSON.stringify([params.poly_modulus_degree, params.coeff_modulus_bits, params.scale_bits, ...packing])).digest('hex').slice(0, 16);
}

export class Ckks {
  /** Values per ciphertext: one per coefficient, or several when quantized. */
  readonly perCiphertext: number;
  readonly id: string;
  /** Public-key encryptions of zero made ahead, each used once (see prepare). */
  private readonly zeros: any[] = [];

  private constructor(private readonly kit: SealKit) {
    this.perCiphertext = kit.perCiphertext;
    this.id = paramsId(kit.params);
  }

  get params(): HeParams {
    return this.kit.params;
  }

  static async create(params: HeParams, keys: KeyMaterial = {}): Promise<Ckks> {
    return new Ckks(await openSeal(params, keys));
  }

  /** A new key pair; the secret key never leaves the node that calls this unless written by keygen. */
  static async generateKeys(params: HeParams): Promise<Required<KeyMaterial>> {
    const kit = await openSeal(params);
    const generator = kit.seal.KeyGenerator(kit.context);
    const secret = generator.secretKey();
    const pub = generator.createPublicKey();
    const keys = { secretKey: secret.saveArray(kit.seal.ComprModeType.zstd), publicKey: pub.saveArray(kit.seal.ComprModeType.zstd) };
    secret.delete();
    pub.delete();
    generator.delete();
    closeSeal(kit);
    return keys;
  }

  get canEncrypt(): boolean {
    return this.kit.encryptor !== undefined;
  }

  get canDecrypt(): boolean {
    return this.kit.decryptor !== undefined;
  }

  chunksFor(parameters: number): number {
    return Math.ceil(parameters / this.perCiphertext);
  }

  /**
   * Makes public-key encryptions of zero ahead of time, up to `count` in stock. A public-key encryption
   * is an encryption of zero plus the encoded values; the zero is the costly part (fresh randomness,
   * transforms, the product with the key), so a node that makes it while it waits only encodes and
   * adds once its values are ready. Each is used once, so ciphertexts are as fresh as made directly.
   * Seeded symmetric encryption (the secret key at hand) has nothing to gain and keeps none.
   */
  prepare(count: number): number {
    const { seal, encoder, encryptor, secret, scale } = this.kit;
    if (!encryptor || secret) return 0;
    const zero = seal.PlainText();
    encoder.encode(new Float64Array(encoder.slotCount), scale, zero);
    while (this.zeros.length < count) this.zeros.push(encryptor.encrypt(zero));
    zero.delete();
    return this.zeros.length;
  }

  get prepared(): number {
    return this.zeros.length;
  }

  /**
   * values·factor, packed `perCiphertext` to a ciphertext. With the secret key at hand the ciphertexts
   * are symmetric and seeded (half the bytes); otherwise public-key. Quantized, factor is the update's
   * share of the round (at most 1), and `noise` distributed DP's share, drawn in whole steps (see
   * QuantizedLayout.toResidues). `first`: the index of values[0] in the model.
   */
  encrypt(values: Float32Array | Float64Array, factor = 1, first = 0, noise = 0): Uint8Array[] {
    const { kit } = this;
    if (!kit.encryptor || !kit.codec) throw new Error('this node holds no HE key to encrypt with');
    const out: Uint8Array[] = [];
    kit.codec.encode(values, factor, (plain) => {
      const zero = kit.secret ? undefined : this.zeros.shift();
      if (zero) wrap('adding the values to an encryption of zero', () => kit.evaluator.addPlain(zero, plain, zero));
      const sealed = zero ?? encryptPlain(kit, plain);
      out.push(sealed.saveArray(kit.seal.ComprModeType[WIRE_COMPRESSION]));
      sealed.delete();
    }, first, noise);
    return out;
  }

  /** The element-wise sum of several ciphertext lists; needs no key. */
  sum(lists: Uint8Array[][]): Uint8Array[] {
    if (!lists.length) throw new Error('nothing to sum');
    const chunks = lists[0].length;
    if (lists.some((l) => l.length !== chunks)) throw new Error('ciphertext lists of different lengths');
    const { kit } = this;
    const out: Uint8Array[] = [];
    for (let c = 0; c < chunks; c++) {
      const total = loadCiphertext(kit, lists[0][c]);
      for (let k = 1; k < lists.length; k++) {
        const next = loadCiphertext(kit, lists[k][c]);
        wrap('adding ciphertexts', () => kit.evaluator.add(total, next, total));
        next.delete();
      }
      out.push(total.saveArray(kit.seal.ComprModeType[WIRE_COMPRESSION]));
      total.delete();
    }
    return out;
  }

  /**
   * Adds (sign 1) or subtracts (sign -1) the ciphertexts `chunks` into `held`, a running sum this
   * thread keeps as SEAL objects (made from the first addition when empty). All or nothing: a chunk
   * that does not load, or whose addition SEAL refuses, takes the ones before it out again, and
   * throws. Both are exact: subtracting what was added gives back the very sum there was.
   */
  accumulate(held: any[], chunks: Uint8Array[], sign: 1 | -1): void {
    const fresh = held.length === 0;
    if (!fresh && chunks.length !== held.length) throw new Error(`${chunks.length} ciphertexts, not the ${held.length} of the sum`);
    if (fresh && sign < 0) throw new Error('nothing to subtract from');
    for (let c = 0; c < chunks.length; c++) {
      try {
        if (fresh) held.push(loadCiphertext(this.kit, chunks[c]));
        else this.addInto(held[c], chunks[c], sign, sign > 0);
      } catch (err) {
        if (fresh) this.free(held.splice(0));
        else for (let back = 0; back < c; back++) this.addInto(held[back], chunks[back], sign > 0 ? -1 : 1, false);
        throw err;
      }
    }
  }

  /**
   * total ± the ciphertext in `bytes`. SEAL refuses a result whose second polynomial cancelled out
   * ("transparent": readable without the key) after writing it. An arriving update that does that
   * (`strict`) is refused, and the chunk put back. Taking an update out may leave one (two updates
   * made to cancel, the others taken out): the difference is exact, and only their senders' values
   * are readable in it, so it stays.
   */
  private addInto(total: any, bytes: Uint8Array, sign: 1 | -1, strict: boolean): void {
    const { evaluator } = this.kit;
    const next = loadCiphertext(this.kit, bytes);
    const apply = (s: 1 | -1) => (s > 0 ? evaluator.add(total, next, total) : evaluator.sub(total, next, total));
    try {
      wrap('adding ciphertexts', () => apply(sign));
    } catch (err) {
      if (!/transparent/.test((err as Error).message)) throw err;
      if (strict) {
        wrap('taking a refused sum out again', () => apply(sign > 0 ? -1 : 1));
        throw err;
      }
    } finally {
      next.delete();
    }
  }

  /** The serialized ciphertexts of a running sum kept by accumulate. */
  save(held: any[]): Uint8Array[] {
    return held.map((cipher) => cipher.saveArray(this.kit.seal.ComprModeType[WIRE_COMPRESSION]));
  }

  free(held: any[]): void {
    held.forEach((cipher) => cipher.delete());
  }

  /** The first `parameters` values of the ciphertexts, times `factor`; `first` as for encrypt. */
  decrypt(chunks: Uint8Array[], parameters: number, factor = 1, first = 0): Float64Array {
    const { kit } = this;
    if (!kit.decryptor || !kit.codec) throw new Error('this node holds no HE secret key');
    const out = new Float64Array(parameters);
    kit.codec.decode(Math.min(chunks.length, this.chunksFor(parameters)), (c) => decryptToPlain(kit, loadCiphertext(kit, chunks[c])), out, factor, first);
    return out;
  }

  dispose(): void {
    this.zeros.splice(0).forEach((zero) => zero.delete());
    closeSeal(this.kit);
  }
}
