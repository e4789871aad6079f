/**
 * 1. HE micro-benchmarks at the configured parameters, for 100k and 1M parameters: each stage on one
 * thread (encode+encrypt, serialize, deserialize, sum of 12, decrypt+decode), and what a node's
 * two-thread pool does per second (what clients and switches actually run).
 */
import { heSchema, type ExperimentConfig } from '../src/config/schema';
import { Ckks } from '../src/he/ckks';
import { closeSeal, openSeal } from '../src/he/seal';
import { heParams } from '../src/he/keys';
import { HePool } from '../src/he/pool';
import { log, medians, timed } from './common';
import { profile, type Stage } from './profile';

export interface MicroRow {
  mode: 'public key (aggregator)' | 'seeded (clients)';
  parameters: number;
  bytes_per_parameter: number;
  times_float32: number;
  /** One thread, ms per update, per stage. */
  stages_ms: Record<Stage, number>;
  /** The two-thread pool: parameters per second. */
  pool_encrypt_params_per_s: number;
  /** Public key: encrypting once the encryptions of zero were made ahead (what a client does in a round). */
  pool_encrypt_prepared_params_per_s: number | null;
  pool_sum12_params_per_s: number;
  pool_decrypt_params_per_s: number;
}

export const updateOf = (parameters: number) => Float32Array.from({ length: parameters }, (_, i) => 0.3 * Math.sin(i));

export async function micro(he: ExperimentConfig['he'] = heSchema.parse({ enabled: true }), repeats = 3, sizes = [100_000, 1_000_000]): Promise<MicroRow[]> {
  const params = heParams(he);
  const keys = await Ckks.generateKeys(params);
  const decryptor = await openSeal(params, { secretKey: keys.secretKey });
  const rows: MicroRow[] = [];
  for (const [mode, material] of [['public key (aggregator)', { publicKey: keys.publicKey }], ['seeded (clients)', { secretKey: keys.secretKey }]] as const) {
    const single = await openSeal(params, material);
    const pools = { encrypt: await HePool.start(params, material), sum: await HePool.start(params, {}), decrypt: await HePool.start(params, { secretKey: keys.secretKey }) };
    for (const parameters of sizes) {
      log(`  HE micro: ${mode}, ${parameters.toLocaleString('en')} parameters`);
      const update = updateOf(parameters);
      for (let warm = 0; warm < 3; warm++) profile(single, update.subarray(0, single.perCiphertext * 4)); // SEAL and the JIT warmed up, not timed
      const stages = await medians(repeats, () => profile(single, update));
      stages.decrypt = (await medians(repeats, () => profile(decryptor, update.subarray(0, single.perCiphertext * 4), 1))).decrypt * (parameters / (single.perCiphertext * 4));
      await pools.encrypt.encrypt(update.subarray(0, single.perCiphertext * 4));
      let bytes = 0;
      const pool = await medians(repeats, async () => {
        const [cipher, encrypt] = await timed(() => pools.encrypt.encrypt(update, 1 / 12));
        bytes = cipher.reduce((n, c) => n + c.length, 0);
        const [sum, sum12] = await timed(() => pools.sum.sum(Array.from({ length: 12 }, () => cipher)));
        const [, decrypt] = await timed(() => pools.decrypt.decrypt(sum, parameters));
        return { encrypt, sum12, decrypt };
      });
      const rate = (ms: number) => Math.round(parameters / (ms / 1000));
      let prepared: number | null = null;
      if (mode.startsWith('public')) {
        const times = await medians(repeats, async () => {
          await pools.encrypt.prepare(parameters);
          return { ms: (await timed(() => pools.encrypt.encrypt(update, 1 / 12)))[1] };
        });
        prepared = rate(times.ms);
      }
      rows.push({
        mode,
        parameters,
        bytes_per_parameter: bytes / parameters,
        times_float32: bytes / parameters / 4,
        stages_ms: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, Math.round(v * 10) / 10])) as MicroRow['stages_ms'],
        pool_encrypt_params_per_s: rate(pool.encrypt),
        pool_encrypt_prepared_params_per_s: prepared,
        pool_sum12_params_per_s: rate(pool.sum12),
        pool_decrypt_params_per_s: rate(pool.decrypt),
      });
    }
    closeSeal(single);
    await Promise.all(Object.values(pools).map((p) => p.close()));
  }
  closeSeal(decryptor);
  return rows;
}
