/**
 * CKKS through Microsoft SEAL (node-seal 6.0.3, the last that loads on Node 20). Only additions
 * happen under encryption, so one prime is enough (no special prime, no relinearization or Galois
 * keys) and values go in the plaintexts' coefficients, N to a ciphertext (see coefficients.ts).
 * Every SEAL object lives in the wasm heap and is deleted as soon as it is used.
 */
import { createHash } from 'node:crypto';
import { CoefficientCodec, FloatLayout, type CoefficientLayout } from './coefficients';
import { QuantizedLayout, type QuantizeSpec } from './quantized';

// node-seal ships types for its ES build only; the UMD build is the one that loads under CommonJS.
const SEAL = require('node-seal/throws_wasm_node_umd.js') as () => Promise<any>;

export interface HeParams {
  poly_modulus_degree: number;
  coeff_modulus_bits: number[];
  scale_bits: number;
  /** Quantized packing (quantized.ts): several values to a coefficient. Absent: one float each. */
  quantize?: QuantizeSpec;
  /** The model's weight tensor sizes, in order: needed for a clip per tensor. */
  tensor_sizes?: number[];
}

/** Key material a node may hold: none (switch, aggregator in clients mode), public, or secret. */
export interface KeyMaterial {
  publicKey?: Uint8Array;
  secretKey?: Uint8Array;
}

/**
 * Ciphertexts travel uncompressed. zstd saves 6% of the bytes (ciphertext coefficients are nearly
 * random) but costs 3x the time to write and 5x to read, and a switch reads every update it adds:
 * on a testbed the CPU runs out long before the network does (bench/RESULTS.md).
 */
export type Compression = 'none' | 'zstd';
export const WIRE_COMPRESSION: Compression = 'none';

let sealInstance: Promise<any> | undefined;
const loadSeal = () => (sealInstance ??= SEAL());

/** SEAL throws plain numbers and strings from wasm: give them a readable message. */
function wrap<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    throw new Error(`${what}: ${text}`);
  }
}

/**
 * A short id of the parameters, carried with every ciphertext so one made under others is refused.
 * How values sit in a plaintext is part of it, as ciphertexts packed otherwise would decode to garbage.
 */
export function paramsId(params: HeParams): string {
  const { bits, clip, clients } = params.quantize ?? {};
  const packing = params.quantize ? ['quantized', bits, clients, clip] : ['coefficients'];
  return createHash('sha256').update(JSON.stringify([params.poly_modulus_degree, params.coeff_modulus_bits, params.scale_bits, ...packing])).digest('hex').slice(0, 16);
}

/** What Ckks.internals() lends the benchmarks. What its steps return is the caller's to delete; the rest stays the Ckks's. */
export interface CkksInternals {
  seal: any;
  encoder: any;
  evaluator: any;
  /** Undefined without a key to encrypt with. */
  codec: CoefficientCodec | undefined;
  scale: number;
  /** A serializable encryption of a plaintext, as encrypt() makes it (seeded symmetric with the secret key). */
  encrypt(plain: any): any;
  /** Parses a ciphertext made under these parameters. */
  load(bytes: Uint8Array): any;
  /** The plaintext in a ciphertext, which is deleted; needs the secret key. */
  decrypt(cipher: any): any;
}

export class Ckks {
  /** Values per ciphertext: one per coefficient, or several when quantized. */
  readonly perCiphertext: number;
  readonly id: string;
  private readonly scale: number;
  /** Public-key encryptions of zero made ahead, each used once (see prepare). */
  private readonly zeros: any[] = [];

  private constructor(
    private readonly seal: any,
    private readonly context: any,
    private readonly encoder: any,
    private readonly evaluator: any,
    private encryptor: any,
    private decryptor: any,
    private readonly secret: any,
    private readonly publicKey: any,
    private readonly codec: CoefficientCodec | undefined,
    readonly params: HeParams,
    layout: CoefficientLayout,
  ) {
    this.perCiphertext = params.poly_modulus_degree * layout.perCoefficient;
    this.scale = Math.pow(2, params.scale_bits);
    this.id = paramsId(params);
  }

  static async create(params: HeParams, keys: KeyMaterial = {}): Promise<Ckks> {
    const seal = await loadSeal();
    const parms = seal.EncryptionParameters(seal.SchemeType.ckks);
    parms.setPolyModulusDegree(params.poly_modulus_degree);
    parms.setCoeffModulus(seal.CoeffModulus.Create(params.poly_modulus_degree, Int32Array.from(params.coeff_modulus_bits)));
    const context = seal.Context(parms, true, seal.SecurityLevel.tc128);
    parms.delete();
    if (!context.parametersSet()) {
      // node-seal 6 does not expose SEAL's reason; these are the settings it checks.
      const described = `poly_modulus_degree ${params.poly_modulus_degree}, coeff_modulus_bits ${JSON.stringify(params.coeff_modulus_bits)}`;
      context.delete();
      throw new Error(`HE parameters rejected by SEAL (invalid, or below 128-bit security): ${described}`);
    }
    let layout: CoefficientLayout;
    try {
      layout = layoutFor(context, params);
    } catch (err) {
      context.delete();
      throw err;
    }
    let secret: any;
    let publicKey: any;
    if (keys.secretKey) {
      secret = seal.SecretKey();
      wrap('the HE secret key does not fit these parameters', () => secret.loadArray(context, keys.secretKey));
    }
    if (keys.publicKey) {
      publicKey = seal.PublicKey();
      wrap('the HE public key does not fit these parameters', () => publicKey.loadArray(context, keys.publicKey));
    }
    // SEAL's Encryptor wants a public key even for symmetric encryption: derive it from the secret.
    if (secret && !publicKey) {
      const generator = seal.KeyGenerator(context, secret);
      publicKey = generator.createPublicKey();
      generator.delete();
    }
    const encryptor = publicKey ? seal.Encryptor(context, publicKey, secret) : undefined;
    const decryptor = secret ? seal.Decryptor(context, secret) : undefined;
    const encoder = seal.CKKSEncoder(context);
    const evaluator = seal.Evaluator(context);
    const codec = encryptor ? Ckks.codecFor(seal, context, encoder, evaluator, encryptor, params, layout) : undefined;
    return new Ckks(seal, context, encoder, evaluator, encryptor, decryptor, secret, publicKey, codec, params, layout);
  }

  /** The coefficient codec, its headers taken from a plaintext and a ciphertext SEAL makes here. */
  private static codecFor(seal: any, context: any, encoder: any, evaluator: any, encryptor: any, params: HeParams, layout: CoefficientLayout): CoefficientCodec {
    const scale = Math.pow(2, params.scale_bits);
    const plain = seal.PlainText();
    encoder.encode(new Float64Array(encoder.slotCount), scale, plain);
    const cipher = encryptor.encrypt(plain);
    const none = seal.ComprModeType.none;
    const codec = new CoefficientCodec(
      {
        seal, context, evaluator,
        moduli: dataModuli(context),
        degree: params.poly_modulus_degree,
        plain: plain.saveArray(none),
        cipher: cipher.saveArray(none),
      },
      layout,
    );
    for (const object of [plain, cipher]) object.delete();
    return codec;
  }

  /** A new key pair; the secret key never leaves the node that calls this unless written by keygen. */
  static async generateKeys(params: HeParams): Promise<Required<KeyMaterial>> {
    const bare = await Ckks.create(params);
    const generator = bare.seal.KeyGenerator(bare.context);
    const secret = generator.secretKey();
    const pub = generator.createPublicKey();
    const keys = { secretKey: secret.saveArray(bare.seal.ComprModeType.zstd), publicKey: pub.saveArray(bare.seal.ComprModeType.zstd) };
    secret.delete();
    pub.delete();
    generator.delete();
    bare.dispose();
    return keys;
  }

  get canEncrypt(): boolean {
    return this.encryptor !== undefined;
  }

  get canDecrypt(): boolean {
    return this.decryptor !== undefined;
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
    if (!this.encryptor || this.secret) return 0;
    const zero = this.seal.PlainText();
    this.encoder.encode(new Float64Array(this.encoder.slotCount), this.scale, zero);
    while (this.zeros.length < count) this.zeros.push(this.encryptor.encrypt(zero));
    zero.delete();
    return this.zeros.length;
  }

  get prepared(): number {
    return this.zeros.length;
  }

  /**
   * values·factor, packed `perCiphertext` to a ciphertext. With the secret key at hand the ciphertexts
   * are symmetric and seeded (half the bytes); otherwise public-key. Quantized, factor is the update's
   * share of the round (at most 1). `first`: the index of values[0] in the model.
   */
  encrypt(values: Float32Array | Float64Array, factor = 1, first = 0): Uint8Array[] {
    if (!this.encryptor || !this.codec) throw new Error('this node holds no HE key to encrypt with');
    const out: Uint8Array[] = [];
    this.codec.encode(values, factor, (plain) => {
      const zero = this.secret ? undefined : this.zeros.shift();
      if (zero) wrap('adding the values to an encryption of zero', () => this.evaluator.addPlain(zero, plain, zero));
      const sealed = zero ?? this.encryptNow(plain);
      out.push(sealed.saveArray(this.seal.ComprModeType[WIRE_COMPRESSION]));
      sealed.delete();
    }, first);
    return out;
  }

  /** A serializable encryption of `plain`: seeded symmetric with the secret key, public-key otherwise. */
  private encryptNow(plain: any): any {
    return this.secret ? this.encryptor.encryptSymmetricSerializable(plain) : this.encryptor.encryptSerializable(plain);
  }

  /** The element-wise sum of several ciphertext lists; needs no key. */
  sum(lists: Uint8Array[][]): Uint8Array[] {
    if (!lists.length) throw new Error('nothing to sum');
    const chunks = lists[0].length;
    if (lists.some((l) => l.length !== chunks)) throw new Error('ciphertext lists of different lengths');
    const out: Uint8Array[] = [];
    for (let c = 0; c < chunks; c++) {
      const total = this.load(lists[0][c]);
      for (let k = 1; k < lists.length; k++) {
        const next = this.load(lists[k][c]);
        wrap('adding ciphertexts', () => this.evaluator.add(total, next, total));
        next.delete();
      }
      out.push(total.saveArray(this.seal.ComprModeType[WIRE_COMPRESSION]));
      total.delete();
    }
    return out;
  }

  /** The first `parameters` values of the ciphertexts, times `factor`; `first` as for encrypt. */
  decrypt(chunks: Uint8Array[], parameters: number, factor = 1, first = 0): Float64Array {
    if (!this.decryptor || !this.codec) throw new Error('this node holds no HE secret key');
    const out = new Float64Array(parameters);
    this.codec.decode(Math.min(chunks.length, this.chunksFor(parameters)), (c) => this.decryptOne(this.load(chunks[c])), out, factor, first);
    return out;
  }

  /** The plaintext in `cipher`, which is deleted. */
  private decryptOne(cipher: any): any {
    const plain = this.seal.PlainText();
    try {
      wrap('decrypting', () => this.decryptor.decrypt(cipher, plain));
      return plain;
    } catch (err) {
      plain.delete();
      throw err;
    } finally {
      cipher.delete();
    }
  }

  /** Parses a ciphertext made under these parameters; SEAL checks its header and parameter hash. */
  private load(bytes: Uint8Array): any {
    const cipher = this.seal.CipherText();
    try {
      wrap('not a ciphertext under these HE parameters', () => cipher.loadArray(this.context, bytes));
    } catch (err) {
      cipher.delete();
      throw err;
    }
    return cipher;
  }

  /**
   * The SEAL objects and the single steps behind encrypt, sum and decrypt, for bench/profile.ts to
   * time each stage apart. The nodes never use it: they go through encrypt, sum and decrypt.
   */
  internals(): CkksInternals {
    return {
      seal: this.seal,
      encoder: this.encoder,
      evaluator: this.evaluator,
      codec: this.codec,
      scale: this.scale,
      encrypt: (plain) => this.encryptNow(plain),
      load: (bytes) => this.load(bytes),
      decrypt: (cipher) => this.decryptOne(cipher),
    };
  }

  dispose(): void {
    this.zeros.splice(0).forEach((zero) => zero.delete());
    this.codec?.dispose();
    for (const object of [this.encryptor, this.decryptor, this.secret, this.publicKey, this.evaluator, this.encoder, this.context]) object?.delete();
    this.encryptor = undefined;
    this.decryptor = undefined;
  }
}

/** The data level's primes: with more than one, SEAL keeps the last for key switching. */
function dataModuli(context: any): bigint[] {
  const level = context.firstContextData;
  const parms = level.parms;
  const moduli = Array.from(parms.coeffModulus as BigUint64Array);
  parms.delete();
  level.delete();
  return moduli;
}

function layoutFor(context: any, params: HeParams): CoefficientLayout {
  const moduli = dataModuli(context);
  return params.quantize ? new QuantizedLayout(params.quantize, moduli, params.tensor_sizes) : new FloatLayout(moduli, Math.pow(2, params.scale_bits));
}
