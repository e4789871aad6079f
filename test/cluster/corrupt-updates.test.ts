/**
 * A client whose updates are corrupt, in a real HE run, in both key modes: the real client replaced
 * by test/helpers/rogue-worker.ts, which trains and encrypts as any client does, then spoils what it
 * sends (made under a key of its own, or with noise in every slot). Its switch cannot tell (it adds
 * ciphertexts it cannot read); the sum cannot be read. The round runs again without about half the
 * suspects, until the rogue is named and left out; the experiment goes on to its last round.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RoundMetrics } from '../../src/outputs';
import { ROOT, runExperiment, Testbed } from '../helpers/cluster';

const ROUNDS = 3;
const ROGUE = join(ROOT, 'dist', 'test', 'helpers', 'rogue-worker.js');
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

for (const [keyHolder, spoil] of [
  ['aggregator', 'garbage'],
  ['aggregator', 'other-key'],
  ['clients', 'other-key'],
  ['clients', 'garbage'],
] as const) {
  describe(`a client sending corrupt updates (${spoil}), the key at the ${keyHolder}`, () => {
    it('the round runs again, the client is named and left out, every round is run', { timeout: 600_000 }, async () => {
      const experiment = `rogue-${keyHolder}-${spoil}`;
      const testbed = new Testbed({ nodes: 6, switches: 1, rounds: ROUNDS, experiment }, (config) => {
        config.model = { architecture: 'mlp', hidden_units: 32 };
        config.he = { enabled: true, key_holder: keyHolder };
      });
      try {
        assert.equal((await testbed.up()).code, 0);
        const [, rogue] = testbed.addresses('client');
        await testbed.replaceWorker(rogue, [ROGUE, spoil]);
        const run = await runExperiment(testbed, 540_000, ['--log-level', 'info']);
        assert.equal(run.code, 0, run.output);
        const rows: RoundMetrics[] = JSON.parse(readFileSync(join(testbed.outputs, experiment, 'metrics.json'), 'utf8')).rounds;
        assert.equal(rows.length, ROUNDS, 'every round ran');
        assert.match(run.output, /round 1: the sum cannot be read: /, 'named where the user looks');
        assert.match(run.output, new RegExp(`suspects: [^\\n]*${escape(rogue)}`));
        assert.match(run.output, new RegExp(`${escape(rogue)} is left out of the experiment: its updates made [2-9] of the round's sums unreadable`));
        assert.match(run.output, new RegExp(`going on without ${escape(rogue)}`));
        assert.ok(rows[0].retries > 0, `round 1 ran again: ${JSON.stringify(rows.map((r) => r.retries))}`);
        // Once it is out, the rounds are the honest clients'.
        assert.deepEqual(rows.at(-1)!.clients, 3, run.output);
        assert.equal(rows.at(-1)!.retries, 0);
        assert.ok(rows.at(-1)!.accuracy > 0.8, `accuracy ${rows.at(-1)!.accuracy}`);
        const named = new Set([...run.output.matchAll(/round \d+: (\S+) is left out of the experiment/g)].map((m) => m[1]));
        assert.deepEqual([...named], [rogue], `no honest client was left out\n${run.output}`);
      } finally {
        await testbed.down();
      }
    });
  });
}

describe('a client claiming a million times its weight in its updates', () => {
  it('each update is refused naming both weights, the aggregator hears it at once, and every round goes on without it', { timeout: 300_000 }, async () => {
    const experiment = 'rogue-heavy';
    const testbed = new Testbed({ nodes: 6, switches: 1, rounds: ROUNDS, experiment }, (config) => {
      config.model = { architecture: 'mlp', hidden_units: 32 };
      config.he = { enabled: true, key_holder: 'aggregator' };
    });
    try {
      assert.equal((await testbed.up()).code, 0);
      const [, rogue] = testbed.addresses('client');
      await testbed.replaceWorker(rogue, [ROGUE, 'heavy']);
      const run = await runExperiment(testbed, 240_000, ['--log-level', 'info']);
      assert.equal(run.code, 0, run.output);
      const rows: RoundMetrics[] = JSON.parse(readFileSync(join(testbed.outputs, experiment, 'metrics.json'), 'utf8')).rounds;
      assert.equal(rows.length, ROUNDS);
      // Refused at its switch; it tells the aggregator, which drops it: no round waits out its deadline (300 s).
      const refused = new RegExp(`client ${escape(rogue)} cannot use the model: its update was refused: the update from ${escape(rogue)} weighs \\d+, not the \\d+ the aggregator assigned it`);
      assert.match(run.output, refused);
      for (const row of rows) {
        assert.deepEqual([row.clients, row.missing], [3, [rogue]], JSON.stringify(row));
        assert.ok(row.round_ms < 60_000, `round ${row.round} took ${row.round_ms} ms`);
        assert.equal(row.retries, 0);
      }
      assert.ok(rows.at(-1)!.accuracy > 0.8, `accuracy ${rows.at(-1)!.accuracy}`);
    } finally {
      await testbed.down();
    }
  });
});
