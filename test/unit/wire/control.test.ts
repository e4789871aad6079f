/** A round's instructions as they travel: the opening carries the samples once and only what differs; each client's copy its share. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TRAINING_LIMITS, trainingSchema } from '../../../src/config/schema';
import { clientFit, clientFitSchema, openingInstructions, openRoundSchema, roundMetaSchema, selectionPass } from '../../../src/wire/control';

describe("a round's instructions on the wire", () => {
  it("gives a client its share of the round's samples, its pass and what it alone is told; an opening carries only the overrides and passes of its own clients", () => {
    const pass = 'ab'.repeat(16);
    const instructions = { samples: 400, overrides: { a: { epochs: 2 }, c: { learningRate: 0.01 } }, passes: { a: pass, b: 'cd'.repeat(16), c: 'ef'.repeat(16) } };
    assert.deepEqual(clientFit('a', 300, instructions), { epochs: 2, share: 0.75, pass });
    assert.deepEqual(clientFit('d', 100, instructions), { share: 0.25 });
    assert.ok(clientFitSchema.safeParse(clientFit('a', 100, instructions)).success);
    assert.equal(clientFitSchema.safeParse({ share: 0.25, pass: 'x'.repeat(32) }).success, false, 'a pass is hex');
    assert.deepEqual(openingInstructions(instructions, ['a', 'b']), { samples: 400, fit: { a: { epochs: 2 } }, passes: { a: pass, b: 'cd'.repeat(16) } }, "its own clients' passes, no other's");
    assert.deepEqual(openingInstructions({ ...instructions, passes: {} }, ['b']), { samples: 400 }, 'no fit at all when none of its clients is told otherwise');
    assert.equal(clientFitSchema.safeParse(clientFit('d', 1, { ...instructions, samples: 2e9 })).success, false, 'a share below 1e-9 is refused where the client reads it');
  });

  it("signs an opening with a client's ticket (HMAC-SHA-256 of the attempt): a pass for one opening or ticket is not another's", () => {
    const ticket = 'ab'.repeat(16);
    // Pinned: clients and aggregators of one testbed must make the same pass.
    assert.equal(selectionPass(ticket, 's:1.0'), '3e64ee4589cec22d582d9ad64c832fcd');
    assert.notEqual(selectionPass(ticket, 's:1.1'), selectionPass(ticket, 's:1.0'));
    assert.notEqual(selectionPass('cd'.repeat(16), 's:1.0'), selectionPass(ticket, 's:1.0'));
  });

  it('refuses an opening whose samples are fewer than its own clients weigh (a share past 1), or that tells a client its share', () => {
    const opening = { round: 1, attempt: 's:1.0', clients: ['a', 'b'], weights: { a: 100, b: 300 }, deadline_ms: 1000, parameters: 10, model_id: 1 };
    assert.ok(openRoundSchema.safeParse({ ...opening, samples: 400 }).success);
    assert.match(openRoundSchema.safeParse({ ...opening, samples: 399 }).error!.message, /the round's 399 samples are fewer than these clients' 400/);
    assert.equal(openRoundSchema.safeParse({ ...opening, samples: 400, fit: { a: { share: 1 } } }).success, false);
  });

  it('tells a client no more training than a config may ask: a node above it cannot hold its process with a thousand epochs', () => {
    const meta = { epochs: 1, batchSize: 32, learningRate: 0.1, attempt: 's:1.0' };
    assert.ok(roundMetaSchema.safeParse({ ...meta, epochs: TRAINING_LIMITS.epochs, batchSize: TRAINING_LIMITS.batchSize, learningRate: TRAINING_LIMITS.learningRate }).success);
    for (const past of [{ epochs: TRAINING_LIMITS.epochs + 1 }, { batchSize: TRAINING_LIMITS.batchSize + 1 }, { learningRate: TRAINING_LIMITS.learningRate * 1.01 }]) {
      assert.equal(roundMetaSchema.safeParse({ ...meta, ...past }).success, false, JSON.stringify(past));
      assert.equal(clientFitSchema.safeParse({ share: 0.5, ...past }).success, false, JSON.stringify(past));
    }
    // The limits are the config's own: what an experiment may ask, a client takes.
    assert.ok(trainingSchema.safeParse({ epochs: TRAINING_LIMITS.epochs, batch_size: TRAINING_LIMITS.batchSize, learning_rate: TRAINING_LIMITS.learningRate }).success);
    assert.equal(trainingSchema.safeParse({ epochs: TRAINING_LIMITS.epochs + 1 }).success, false);
  });
});
