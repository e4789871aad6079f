/** What a client trains a round by: the model's instructions, only those training takes, and no more work than its experiment asks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { trainingSchema } from '../../../../src/config/schema';
import type { HttpError } from '../../../../src/net/errors';
import { roundInstructions } from '../../../../src/roles/client/instructions';
import type { RoundMeta } from '../../../../src/wire/control';

describe("a round's instructions at the client", () => {
  const training = trainingSchema.parse({ epochs: 2, batch_size: 16, learning_rate: 0.05, strategy: 'fedprox', proximal_mu: 0.01 });
  const meta = (more: Record<string, unknown> = {}) => ({ epochs: 2, batchSize: 16, learningRate: 0.05, attempt: 's:1.0', fit: { share: 0.5 }, ...more }) as RoundMeta;

  it('takes its own part over the common one, and passes on nothing else the meta carries', () => {
    assert.deepEqual(roundInstructions(meta(), training), { epochs: 2, batchSize: 16, learningRate: 0.05 });
    assert.deepEqual(roundInstructions(meta({ fit: { share: 0.5, epochs: 1, proximalMu: 0.01 } }), training), { epochs: 1, batchSize: 16, learningRate: 0.05, proximalMu: 0.01 });
    // A SCAFFOLD correction, a seed, a signal: made by the client itself, never read from the meta.
    assert.deepEqual(roundInstructions(meta({ correction: 1, seed: 3, signal: {} }), training), { epochs: 2, batchSize: 16, learningRate: 0.05 });
  });

  it("refuses (400) more epochs than the experiment's own config, or another batch size: fewer epochs are taken", () => {
    for (const more of [{ epochs: 3 }, { batchSize: 15 }, { batchSize: 17 }, { fit: { share: 0.5, epochs: 100 } }, { fit: { share: 0.5, batchSize: 1 } }, { fit: { share: 0.5, batchSize: 10_000 } }]) {
      assert.throws(() => roundInstructions(meta(more), training), (err: HttpError) => err.status === 400 && /this experiment trains at most 2 epochs in batches of 16/.test(err.reason), JSON.stringify(more));
    }
    assert.equal(roundInstructions(meta({ epochs: 1 }), training).epochs, 1);
  });

  it("refuses (400) a higher learning rate than the experiment's, or a proximal term beyond its μ (none but FedProx's)", () => {
    for (const more of [{ learningRate: 0.051 }, { fit: { share: 0.5, learningRate: 10 } }, { proximalMu: 0.02 }, { fit: { share: 0.5, proximalMu: 100 } }]) {
      assert.throws(() => roundInstructions(meta(more), training), (err: HttpError) => err.status === 400 && /learning rate of .* at most 0\.05|proximal term of μ = .* at most 0\.01/.test(err.reason), JSON.stringify(more));
    }
    assert.deepEqual(roundInstructions(meta({ learningRate: 0.01, proximalMu: 0.005 }), training), { epochs: 2, batchSize: 16, learningRate: 0.01, proximalMu: 0.005 }, 'less is taken');
    const fedavg = trainingSchema.parse({ epochs: 2, batch_size: 16, learning_rate: 0.05 });
    assert.throws(() => roundInstructions(meta({ proximalMu: 0.01 }), fedavg), (err: HttpError) => err.status === 400 && /at most 0 \(training\.strategy fedavg\)/.test(err.reason));
    assert.deepEqual(roundInstructions(meta({ proximalMu: 0 }), fedavg).proximalMu, 0);
  });
});
