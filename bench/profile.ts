/**
 * Each stage of an update's life timed apart on one thread, for the benchmarks, on SEAL's own objects
 * (src/he/seal.ts, not the nodes' Ckks): encode+encrypt and
 * serialize (a client), deserialize and the sum of `copies` (a switch), decrypt+decode (the key
 * holder). `packing: 'slots'` measures CKKS's usual encoding, N/2 values to a ciphertext, which this
 * project used before coefficient packing: it lives here, out of the nodes' code, only to show the
 * two side by side (bench/RESULTS.md's profile table).
 */
import { decryptToPlain, encryptPlain, WIRE_COMPRESSION, type Compression, type SealKit } from '../src/he/seal';

export type Stage = 'encrypt' | 'serialize' | 'deserialize' | 'sum' | 'decrypt';
export type Packing = 'coefficients' | 'slots';

/**
 * Milliseconds per stage for `values`. Decrypt is timed only when `ckks` holds the secret key;
 * `decoded`, if given, receives the decrypted sum (copies times the values), for checking.
 */
export function profile(
  kit: SealKit,
  values: Float32Array,
  copies = 12,
  compression: Compression = WIRE_COMPRESSION,
  packing: Packing = 'coefficients',
  decoded?: Float64Array,
): Record<Stage, number> {
  const { seal, encoder, evaluator, codec, scale } = kit;
  const encrypt = (plain: any) => encryptPlain(kit, plain);
  // SEAL's own load: the profile compares compression modes, which the wire's loadCiphertext refuses but one.
  const load = (bytes: Uint8Array) => {
    const cipher = seal.CipherText();
    cipher.loadArray(kit.context, bytes);
    return cipher;
  };
  const decrypt = (cipher: any) => decryptToPlain(kit, cipher);
  if (!kit.encryptor || !codec) throw new Error('profiling needs an HE key to encrypt with');
  const ms = { encrypt: 0, serialize: 0, deserialize: 0, sum: 0, decrypt: 0 };
  const clock = <T>(stage: Stage, fn: () => T): T => {
    const start = performance.now();
    const result = fn();
    ms[stage] += performance.now() - start;
    return result;
  };

  const sealCoefficients = (): any[] => {
    const sealed: any[] = [];
    codec.encode(values, 1, (plain) => sealed.push(encrypt(plain)));
    return sealed;
  };
  const slots = encoder.slotCount;
  const sealSlots = (): any[] => {
    const sealed: any[] = [];
    const chunk = new Float64Array(slots);
    for (let start = 0; start < values.length; start += slots) {
      chunk.fill(0);
      chunk.set(values.subarray(start, Math.min(start + slots, values.length)));
      const plain = seal.PlainText();
      encoder.encode(chunk, scale, plain);
      sealed.push(encrypt(plain));
      plain.delete();
    }
    return sealed;
  };

  const sealed = clock('encrypt', () => (packing === 'slots' ? sealSlots() : sealCoefficients()));
  const sums = sealed.map((one) => {
    const bytes = clock('serialize', () => one.saveArray(seal.ComprModeType[compression]));
    one.delete();
    const loaded = clock('deserialize', () => Array.from({ length: copies }, () => load(bytes)));
    clock('sum', () => loaded.slice(1).forEach((next) => evaluator.add(loaded[0], next, loaded[0])));
    loaded.slice(1).forEach((c) => c.delete());
    return loaded[0];
  });
  if (kit.decryptor && packing === 'slots') {
    clock('decrypt', () => sums.forEach((sum, c) => {
      const plain = decrypt(sum.clone());
      const slotValues: Float64Array = encoder.decode(plain);
      plain.delete();
      decoded?.set(slotValues.subarray(0, Math.min(slots, values.length - c * slots)), c * slots);
    }));
  } else if (kit.decryptor) {
    clock('decrypt', () => codec.decode(sums.length, (c) => decrypt(sums[c].clone()), decoded ?? new Float64Array(values.length), 1));
  }
  sums.forEach((c) => c.delete());
  return ms;
}
