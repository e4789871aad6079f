/**
 * 4. Baselines on the same 100k-parameter update, in the same run:
 *   (a) plaintext weights as JSON arrays over HTTP, as the Flask original exchanged them;
 *   (c) our binary float32 wire format over HTTP;
 *   (b) Paillier (paillier-bigint, 2048-bit key; the scheme FATE uses) on a subset of the values,
 *       extrapolated per value, against CKKS on one thread, both doing a client's and a switch's work.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import axios from 'axios';
import express from 'express';
import * as paillier from 'paillier-bigint';
import { heSchema } from '../src/config/schema';
import { Ckks } from '../src/he/ckks';
import { closeSeal, openSeal } from '../src/he/seal';
import { heParams } from '../src/he/keys';
import { decode, encode, Kind, WIRE_CONTENT_TYPE } from '../src/wire/codec';
import { log, median, medians, timed } from './common';
import { updateOf } from './micro';
import { profile } from './profile';

export interface TransferRow {
  format: 'JSON arrays (Flask original)' | 'binary float32 (ours)';
  bytes: number;
  /** Encode, send over loopback HTTP, decode at the other end. */
  ms: number;
}

export interface PaillierComparison {
  parameters: number;
  subset: number;
  key_bits: number;
  /** Per update of `parameters` values, in ms: Paillier extrapolated from the subset, CKKS measured whole. */
  paillier_ms: { encrypt: number; sum12: number; decrypt: number };
  ckks_ms: { encrypt: number; sum12: number; decrypt: number };
  paillier_bytes_per_parameter: number;
  ckks_bytes_per_parameter: number;
}

/** (a) and (c): the same update both ways through one loopback server, medians of `repeats`. */
export async function transfers(parameters = 101_770, repeats = 5): Promise<TransferRow[]> {
  const update = updateOf(parameters);
  let received = 0;
  const app = express()
    .post('/json', express.json({ limit: '100mb' }), (req, res) => ((received = Float32Array.from(req.body.weights).length), res.json({ ok: true })))
    .post('/binary', express.raw({ type: WIRE_CONTENT_TYPE, limit: '100mb' }), (req, res) => ((received = decode(req.body).parameters.length), res.json({ ok: true })));
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = axios.create({ proxy: false, maxBodyLength: Infinity });
  const rows: TransferRow[] = [];
  try {
    const ways = [
      ['JSON arrays (Flask original)', () => JSON.stringify({ weights: Array.from(update) }), '/json', 'application/json'],
      ['binary float32 (ours)', () => encode({ kind: Kind.Update, round: 1, modelId: 1, contributors: 1, weight: 1, sender: '127.0.0.1:5000', meta: {}, parameters: update }), '/binary', WIRE_CONTENT_TYPE],
    ] as const;
    for (const [format, body, path, type] of ways) {
      log(`  baseline: ${format}`);
      let bytes = 0;
      const times: number[] = [];
      for (let r = 0; r <= repeats; r++) {
        received = 0; // what this request's server side read, not the one before
        const [, ms] = await timed(async () => {
          const payload = body();
          bytes = Buffer.byteLength(payload);
          await client.post(base + path, payload, { headers: { 'Content-Type': type } });
        });
        if (received !== parameters) throw new Error(`${format}: the server read ${received} values`);
        if (r > 0) times.push(ms);
      }
      rows.push({ format, bytes, ms: median(times) });
    }
  } finally {
    server.close();
  }
  return rows;
}

/** (b): Paillier against CKKS, each on one thread, on the same update. */
export async function paillierVersusCkks(parameters = 101_770, subset = 48, repeats = 3): Promise<PaillierComparison> {
  log(`  baseline: Paillier 2048-bit on ${subset} of ${parameters.toLocaleString('en')} values`);
  const update = updateOf(parameters);
  const { publicKey, privateKey } = await paillier.generateRandomKeys(2048);
  // Fixed point with 32 fractional bits, shifted positive: Paillier encrypts integers mod n.
  const values = Array.from(update.subarray(0, subset), (v) => BigInt(Math.round(v * 2 ** 32)) + 2n ** 40n);
  const [ciphers, encryptMs] = await timed(() => values.map((v) => publicKey.encrypt(v)));
  const [sums, sumMs] = await timed(() => ciphers.map((c) => Array.from({ length: 11 }, () => c).reduce((s, next) => publicKey.addition(s, next), c)));
  const [totals, decryptMs] = await timed(() => sums.map((s) => privateKey.decrypt(s)));
  if (totals.some((t, i) => t !== 12n * values[i])) throw new Error('Paillier: a decrypted sum is not 12 times its value');
  const perUpdate = (ms: number) => (ms / subset) * parameters;

  log(`  baseline: CKKS on one thread, ${parameters.toLocaleString('en')} values`);
  const params = heParams(heSchema.parse({ enabled: true }));
  const keys = await Ckks.generateKeys(params);
  const ckks = await openSeal(params, { publicKey: keys.publicKey });
  const opener = await openSeal(params, { secretKey: keys.secretKey });
  profile(ckks, update.subarray(0, ckks.perCiphertext));
  const stages = await medians(repeats, () => profile(ckks, update));
  const decrypt = await medians(repeats, () => profile(opener, update, 1));
  const sealed = await Ckks.create(params, { publicKey: keys.publicKey });
  const bytes = sealed.encrypt(update).reduce((n, c) => n + c.length, 0);
  sealed.dispose();
  closeSeal(ckks);
  closeSeal(opener);
  return {
    parameters,
    subset,
    key_bits: 2048,
    paillier_ms: { encrypt: perUpdate(encryptMs), sum12: perUpdate(sumMs), decrypt: perUpdate(decryptMs) },
    ckks_ms: { encrypt: stages.encrypt + stages.serialize, sum12: stages.deserialize + stages.sum, decrypt: decrypt.deserialize / 1 + decrypt.decrypt },
    paillier_bytes_per_parameter: (publicKey.n * publicKey.n).toString(16).length / 2,
    ckks_bytes_per_parameter: bytes / parameters,
  };
}
