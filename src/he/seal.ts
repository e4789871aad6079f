/**
 * The SEAL objects behind one set of CKKS parameters and the keys a node holds: the context, the
 * encoder and evaluator, the encryptor and decryptor its keys allow, and the coefficient codec, with
 * the single steps that use them. `Ckks` (ckks.ts) is the nodes' interface to these; the benchmarks
 * that time each step apart (bench/profile.ts) use this module directly.
 * Every SEAL object lives in the wasm heap: what `openSeal` makes, `closeSeal` deletes.
 */
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

export interface SealKit {
  seal: any;
  context: any;
  encoder: any;
  evaluator: any;
  /** With a key to encrypt with (public, or the secret one). */
  encryptor?: any;
  /** With the secret key. */
  decryptor?: any;
  secret?: any;
  publicKey?: any;
  /** Packs values into plaintexts' coefficients; only with a key to encrypt with. */
  codec?: CoefficientCodec;
  params: HeParams;
  /** Values per ciphertext: one per coefficient, or several when quantized. */
  perCiphertext: number;
  scale: number;
}

let sealInstance: Promise<any> | undefined;
const loadSeal = () => (sealInstance ??= SEAL());

/** SEAL throws plain numbers and strings from wasm: give them a readable message. */
export function wrap<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    throw new Error(`${what}: ${text}`);
  }
}

export async function openSeal(params: HeParams, keys: KeyMaterial = {}): Promise<SealKit> {
  const seal = await loadSeal();
  const parms = seal.EncryptionParameters(seal.SchemeType.ckks);
  parms.setPolyModulusDegree(params.poly_modulus_degree);
  parms.setCoeffModulus(seal.CoeffModulus.Create(params.poly_modulus_degree, Int32Array.from(params.coeff_modulus_bits)));
  // Without the chain's lower levels (expand_mod_chain false): only additions happen here, so a
  // ciphertext never leaves the first level, and building them cost a third of the context's time.
  const context = seal.Context(parms, false, seal.SecurityLevel.tc128);
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
  const scale = Math.pow(2, params.scale_bits);
  const kit: SealKit = { seal, context, encoder, evaluator, encryptor, decryptor, secret, publicKey, params, scale, perCiphertext: params.poly_modulus_degree * layout.perCoefficient };
  if (encryptor) kit.codec = codecFor(kit, layout);
  return kit;
}

/** The coefficient codec, its headers taken from a plaintext and a ciphertext SEAL makes here. */
function codecFor({ seal, context, encoder, evaluator, encryptor, params, scale }: SealKit, layout: CoefficientLayout): CoefficientCodec {
  const plain = seal.PlainText();
  encoder.encode(new Float64Array(encoder.slotCount), scale, plain);
  const cipher = encryptor.encrypt(plain);
  const none = seal.ComprModeType.none;
  const codec = new CoefficientCodec(
    { seal, context, evaluator, moduli: dataModuli(context), degree: params.poly_modulus_degree, plain: plain.saveArray(none), cipher: cipher.saveArray(none) },
    layout,
  );
  for (const object of [plain, cipher]) object.delete();
  return codec;
}

/** A serializable encryption of `plain`: seeded symmetric with the secret key (half the bytes), public-key otherwise. */
export function encryptPlain(kit: SealKit, plain: any): any {
  return kit.secret ? kit.encryptor.encryptSymmetricSerializable(plain) : kit.encryptor.encryptSerializable(plain);
}

/**
 * A ciphertext as the wire carries it, made as every node here makes them: serialized uncompressed
 * (WIRE_COMPRESSION), two polynomials, in NTT form, at the first level of the chain, at the
 * experiment's scale. SEAL checks only that it fits the parameters, and would take a compressed one,
 * one of up to 16 polynomials, one at a lower level (were the chain built: see openSeal), or at
 * another scale: added to a round's sum, the
 * first two would make it several times the size its switch may send on, and the others make every
 * ciphertext added after them fail (scale, NTT or level mismatch), so that one bad update would have
 * every honest one after it refused. Nor is one transparent (its second polynomial zero): made to
 * cancel a sum's, it would leave that sum readable, or refused by SEAL at the next addition.
 */
export function loadCiphertext(kit: SealKit, bytes: Uint8Array): any {
  // SEAL's header: magic 0xA15E, header size, version, then the compression mode at byte 5.
  if (bytes.length < 16 || bytes[0] !== 0x5e || bytes[1] !== 0xa1) throw new Error('not a SEAL serialization');
  if (bytes[5] !== COMPRESSION_MODES[WIRE_COMPRESSION]) throw new Error(`a ciphertext serialized with compression mode ${bytes[5]}; the wire carries them uncompressed`);
  // Before SEAL sees it, as it is copied whole into the thread's wasm heap first (which never shrinks): two polynomials, a header.
  const most = 2 * kit.params.poly_modulus_degree * kit.params.coeff_modulus_bits.length * 8 + 1024;
  if (bytes.length > most) throw new Error(`a ciphertext of ${bytes.length} bytes; under these HE parameters one takes at most ${most}`);
  const cipher = kit.seal.CipherText();
  try {
    wrap('not a ciphertext under these HE parameters', () => cipher.loadArray(kit.context, bytes));
    if (cipher.size !== 2) throw new Error(`a ciphertext of ${cipher.size} polynomials; the wire carries ciphertexts of 2`);
    if (cipher.isTransparent) throw new Error('a transparent ciphertext (its second polynomial is zero: readable without the key); encryption never makes one');
    if (!cipher.isNttForm) throw new Error('a ciphertext not in NTT form; the wire carries them in NTT form');
    if (cipher.scale !== kit.scale) throw new Error(`a ciphertext at scale ${cipher.scale}; this experiment's is 2^${kit.params.scale_bits}`);
    if (!atFirstLevel(kit, cipher)) throw new Error('a ciphertext at another level of the modulus chain; the wire carries them at the first');
  } catch (err) {
    cipher.delete();
    throw err;
  }
  return cipher;
}

function atFirstLevel(kit: SealKit, cipher: any): boolean {
  const [own, first] = [cipher.parmsId, kit.context.firstParmsId];
  try {
    return own.values.every((value: bigint, i: number) => value === first.values[i]);
  } finally {
    own.delete();
    first.delete();
  }
}

/** SEAL's codes for its serialization's compression modes. */
const COMPRESSION_MODES: Record<Compression, number> = { none: 0, zstd: 2 };

/** The plaintext in `cipher`, which is deleted; needs the secret key. */
export function decryptToPlain(kit: SealKit, cipher: any): any {
  const plain = kit.seal.PlainText();
  try {
    wrap('decrypting', () => kit.decryptor.decrypt(cipher, plain));
    return plain;
  } catch (err) {
    plain.delete();
    throw err;
  } finally {
    cipher.delete();
  }
}

export function closeSeal(kit: SealKit): void {
  kit.codec?.dispose();
  for (const object of [kit.encryptor, kit.decryptor, kit.secret, kit.publicKey, kit.evaluator, kit.encoder, kit.context]) object?.delete();
  kit.encryptor = undefined;
  kit.decryptor = undefined;
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
