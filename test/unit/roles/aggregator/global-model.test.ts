/** The global model of each key mode: with the key at the clients it stays ciphertexts, averaged through the strategy. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReadableGlobal, SealedGlobal, UnreadableSum, UnscoredModel } from '../../../../src/roles/aggregator/global-model';
import { valueLimits } from '../../../../src/he/bounds';
import { FedAvg } from '../../../../src/strategy/strategy';
import { decode } from '../../../../src/wire/codec';
import { sessionsFor } from '../../../helpers/he';
import { heSchema, trainingSchema } from '../../../../src/config/schema';

describe('the sealed global model (key at the clients)', () => {
  const params = { enabled: true, key_holder: 'clients' as const, poly_modulus_degree: 4096, coeff_modulus_bits: [54], scale_bits: 45 };
  const sessions = sessionsFor(params, 5000);

  it('averages through the strategy, survives a checkpoint', async () => {
    const fedavg = new FedAvg(trainingSchema.parse({ epochs: 1, batch_size: 1, learning_rate: 1, strategy: 'fedavg', server_momentum: 0 }), () => assert.fail('no plaintext evaluation'));
    const header = { round: 1, modelId: 7, sender: 'agg', parameters: 5000 };
    const sealed = new SealedGlobal(new Float32Array(5000), fedavg, sessions.adder, async () => ({ results: [], failures: [], unusable: [] }), () => []);
    assert.equal(decode(sealed.message(header, {})).ciphertexts, undefined, 'round 1 goes down in plaintext');
    const ciphertexts = await sessions.keyed.pool.encrypt(new Float32Array(5000).fill(0.6), 1);
    await sealed.update(1, { kind: 'encrypted', ciphertexts, scale: 1 / 400, weight: 300, contributors: 3 }, [], []);
    const down = decode(sealed.message(header, { attempt: 'x' }));
    assert.equal(down.meta?.factor, 400 / 300);
    const again = new SealedGlobal(new Float32Array(5000), fedavg, sessions.adder, async () => ({ results: [], failures: [], unusable: [] }), () => []);
    again.restore(sealed.snapshot(header));
    const restored = decode(again.message(header, {}));
    assert.equal(restored.meta?.factor, down.meta?.factor);
    assert.deepEqual(restored.ciphertexts, down.ciphertexts);
  });
});

describe('the sealed global model, scored by the clients', () => {
  const params = { enabled: true, key_holder: 'clients' as const, poly_modulus_degree: 4096, coeff_modulus_bits: [54], scale_bits: 45 };
  const sessions = sessionsFor(params, 5000);
  const fedavg = () => new FedAvg(trainingSchema.parse({ epochs: 1, batch_size: 1, learning_rate: 1, strategy: 'fedavg', server_momentum: 0 }), () => assert.fail('no plaintext evaluation'));
  const header = { round: 1, modelId: 7, sender: 'agg', parameters: 5000 };
  const score = (client: string) => ({ client, accuracy: 0.9, loss: 0.3, samples: 100 });
  const unusable = (client: string) => ({ client, reason: 'it decrypts to noise' });

  /** A sealed model after round 1 (held by c1, c2, c3), then round 2's total, scored as `answers` say. */
  async function scoredAs(answers: { results: ReturnType<typeof score>[]; unusable: ReturnType<typeof unusable>[]; failures?: string[] }) {
    let answer = { results: ['c1', 'c2', 'c3'].map(score), failures: [] as string[], unusable: [] as ReturnType<typeof unusable>[] };
    const sealed = new SealedGlobal(new Float32Array(5000), fedavg(), sessions.adder, async () => answer, () => ['c1', 'c2', 'c3']);
    const total = { kind: 'encrypted' as const, ciphertexts: await sessions.keyed.pool.encrypt(new Float32Array(5000).fill(0.1), 1), scale: 1, weight: 1, contributors: 2 };
    await sealed.update(1, total, [], []);
    await sealed.evaluate(1, header);
    const before = decode(sealed.message(header, {}, ['c1', 'c2', 'c3']));
    await sealed.update(2, total, [], []);
    answer = { failures: [], ...answers };
    return { sealed, before, evaluation: sealed.evaluate(2, { ...header, round: 2 }) };
  }

  it('puts the model before back when more clients say it is unusable than score it, and the round runs again', async () => {
    const { sealed, before, evaluation } = await scoredAs({ results: [score('c3')], unusable: [unusable('c1'), unusable('c2')] });
    await assert.rejects(evaluation, (err) => err instanceof UnreadableSum && /2 of 3 clients cannot use the model it makes \(c1: it decrypts to noise\)/.test(err.message));
    // c1 and c2 keep the model before and are sent a reference to it; c3 scored the bad one: it is sent the model whole.
    assert.equal(decode(sealed.message(header, { a: 1 }, ['c1', 'c2'])).meta?.model_tag, before.meta?.model_tag);
    assert.equal(decode(sealed.message(header, { a: 2 }, ['c1', 'c2'])).kind, before.kind);
    assert.notEqual(decode(sealed.message(header, { a: 3 }, ['c3'])).kind, 8, 'c3 keeps the bad model: no reference for it');
  });

  it('takes the model when as many clients score it as say it is unusable (one may lie)', async () => {
    const even = await scoredAs({ results: [score('c1')], unusable: [unusable('c2')] });
    // Scored on c1's share alone, of the three asked: said beside the numbers.
    assert.deepEqual(await even.evaluation, { accuracy: 0.9, loss: 0.3, scored_by: { clients: 1, of: 3 } });
    const all = await scoredAs({ results: ['c1', 'c2', 'c3'].map(score), unusable: [] });
    assert.deepEqual(await all.evaluation, { accuracy: 0.9, loss: 0.3 }, 'every client scored it: nothing to say');
  });

  it('puts the model before back when no client scores it, without taking the sum for corrupt (nobody said so)', async () => {
    const { sealed, before, evaluation } = await scoredAs({ results: [], unusable: [], failures: ['c1: timed out'] });
    await assert.rejects(evaluation, (err) => err instanceof UnscoredModel && !(err instanceof UnreadableSum) && /no client could score the new model \(1 asked gave no score; c1: timed out\)/.test(err.message));
    assert.equal(decode(sealed.message(header, {}, ['c1'])).meta?.model_tag, before.meta?.model_tag);
  });
});

describe('the readable global model under central DP', () => {
  it("adds noise of z·C to the round's sum before it is averaged (and none without DP)", async () => {
    const training = trainingSchema.parse({});
    const limits = valueLimits(heSchema.parse({ enabled: false }));
    const n = 50_000;
    const total = { kind: 'plain' as const, sum: new Float64Array(n).fill(4), weight: 4, contributors: 4, updates: [] };
    const averaged = async (noiseStd: number) => {
      const global = new ReadableGlobal(new Float32Array(n), new FedAvg(training, () => ({ accuracy: 0, loss: 0 })), undefined as never, limits, undefined, false, noiseStd);
      await global.update(1, { ...total, sum: Float64Array.from(total.sum) }, [], []);
      return decode(global.message({ round: 2, modelId: 7, sender: 'agg', parameters: n }, {})).parameters;
    };
    assert.ok((await averaged(0)).every((v) => v === 1), 'no DP: the plain average');
    const noisy = await averaged(2);
    const deviation = Math.sqrt(noisy.reduce((s, v) => s + (v - 1) ** 2, 0) / n);
    // Noise of 2 on a sum of 4 clients: 0.5 on the average (five standard errors: 0.5·5/√(2n) ≈ 0.008).
    assert.ok(Math.abs(deviation - 0.5) < 0.008, `the average's deviation ${deviation}`);
  });
});

describe('the round line', () => {
  it('says when a model was scored by only some of the clients asked, and what the schedule did in the round', async () => {
    const { roundLine } = await import('../../../../src/roles/aggregator/view');
    const row = { round: 4, accuracy: 0.9, loss: 0.3, clients: 4, samples: 400, round_ms: 2000, selection_ms: 1, training_ms: 1000, waiting_ms: 0, aggregation_ms: 1, evaluation_ms: 1, bytes_up: 1, bytes_down: 1, retries: 0, missing: [] };
    assert.match(roundLine({ ...row, scored_by: { clients: 2, of: 4 } }, 7), /^round {3}4\/7 {2}accuracy 90\.00% {2}loss 0\.3000 {2}\(scored by 2 of 4 clients\) {2}4 clients/);
    assert.doesNotMatch(roundLine(row, 7), /scored by/);
    const kill = { index: 0, do: 'kill' as const, on: 'client', targets: ['c1', 'c2'], round: 4, time: '', elapsed_s: 1, ok: false, detail: '' };
    assert.match(roundLine(row, 7, [kill]), /\[schedule: kill c1 c2 \(failed\)\]$/);
  });
});
