/**
 * Authenticated fuzz during a live HE run, in both key modes (test/helpers/fuzzer.ts): client 1's
 * identity sends real wire messages, bit-flipped, to every route of every node (its own updates of
 * the round in progress are its own to say: test/cluster/corrupt-updates.test.ts spoils those). No
 * answer may be a 5xx; the run must finish every round; its final accuracy must be within 1 point of
 * the same run without fuzz. Seeded: the same messages and flips every time.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RoundMetrics } from '../../src/outputs';
import { get, runExperiment, Testbed } from '../helpers/cluster';
import { fuzz } from '../helpers/fuzzer';

/** Long enough for 200 requests of fuzz after the fuzzer's own start (a CI run on Node 24 had 186 in 6 rounds). */
const ROUNDS = 8;
const MODEL = { architecture: 'mlp' as const, hidden_units: 32 };

function testbedFor(keyHolder: 'aggregator' | 'clients', experiment: string): Testbed {
  return new Testbed({ nodes: 6, switches: 1, rounds: ROUNDS, experiment, trainSize: 'all' }, (config) => {
    config.model = MODEL;
    config.he = { enabled: true, key_holder: keyHolder };
  });
}

const finalAccuracy = (testbed: Testbed, experiment: string): number =>
  (JSON.parse(readFileSync(join(testbed.outputs, experiment, 'metrics.json'), 'utf8')).rounds as RoundMetrics[]).at(-1)!.accuracy;

for (const keyHolder of ['aggregator', 'clients'] as const) {
  describe(`fuzz with bit flips during a live HE run, the key at the ${keyHolder}`, () => {
    it('answers no 5xx, finishes every round, and ends within 1 point of the same run without fuzz', { timeout: 900_000 }, async () => {
      const quiet = testbedFor(keyHolder, `quiet-${keyHolder}`);
      const fuzzed = testbedFor(keyHolder, `fuzzed-${keyHolder}`);
      let quietRun: ReturnType<typeof runExperiment> | undefined;
      try {
        // The two runs side by side: the quiet one is the same seeded run, and with every client in every round
        // (checked below) its accuracy does not depend on how fast it ran.
        assert.equal((await quiet.up()).code, 0);
        assert.equal((await fuzzed.up()).code, 0);
        const started = Date.now();
        let quietSeconds = 0;
        quietRun = runExperiment(quiet, 600_000).then((result) => ((quietSeconds = (Date.now() - started) / 1000), result));
        let running = true;
        const fuzzStarted = Date.now();
        const run = runExperiment(fuzzed, 600_000, ['--log-level', 'info']).finally(() => (running = false));
        // Once the run is under way: the aggregator serves its public key once it has made it.
        const [aggregator] = fuzzed.addresses('aggregator');
        while (running && (await get(aggregator, '/a/status', fuzzed.token).catch(() => undefined))?.body?.round === undefined) await new Promise((r) => setTimeout(r, 100));
        const answers = await fuzz(fuzzed, keyHolder, () => running);
        const { code, output } = await run;
        assert.equal(code, 0, output);
        const baseline = await quietRun!;
        assert.equal(baseline.code, 0, baseline.output);
        // The baseline had every client in every round (it ran beside the fuzzed one): the fuzzed run may lose one to the fuzz.
        const quietRounds: RoundMetrics[] = JSON.parse(readFileSync(join(quiet.outputs, `quiet-${keyHolder}`, 'metrics.json'), 'utf8')).rounds;
        const all = quiet.addresses('client').length;
        assert.deepEqual(quietRounds.map((r) => r.clients), quietRounds.map(() => all), 'the quiet run: every client in every round, as the comparison needs');
        const byStatus = answers.reduce<Record<number, number>>((n, a) => ((n[a.status] = (n[a.status] ?? 0) + 1), n), {});
        // Said before anything is judged, so a failure shows how much fuzz there was.
        console.log(`# ${keyHolder}: ${answers.length} fuzz requests, by status ${JSON.stringify(byStatus)}; the run took ${((Date.now() - fuzzStarted) / 1000).toFixed(1)} s with fuzz, ${quietSeconds.toFixed(1)} s without (the two side by side)`);
        // No answer is a failure too, but from the aggregator once it has finished (it closes as it exits).
        const finished = Date.parse(/(\S+) \S*info\S* \[[^\]]+\] experiment fuzzed-\w+ finished after/.exec(output)?.[1] ?? '');
        const failures = answers.filter((a) => a.status >= 500 || (a.status === 0 && !(a.target.startsWith(aggregator) && a.at >= finished)));
        assert.deepEqual(failures, [], `${failures.length} of ${answers.length} answers were 5xx (or none)`);
        // Enough fuzz to mean something however loaded the machine (the fuzzer shares it with the run): every kind of
        // message test/helpers/fuzzer.ts makes (update, sum, model, opening, check-in, notice, drop, stand-by, check-in
        // for another, config), and 200 requests at least.
        assert.ok(answers.length >= 200, `only ${answers.length} requests went out during the run`);
        assert.equal(new Set(answers.map((a) => a.message)).size, 10, 'every kind of message was fuzzed');
        const rows: RoundMetrics[] = JSON.parse(readFileSync(join(fuzzed.outputs, `fuzzed-${keyHolder}`, 'metrics.json'), 'utf8')).rounds;
        assert.equal(rows.length, ROUNDS, 'every round ran');
        const [plain, noisy] = [finalAccuracy(quiet, `quiet-${keyHolder}`), finalAccuracy(fuzzed, `fuzzed-${keyHolder}`)];
        console.log(`# ${keyHolder}: accuracy ${plain} without fuzz, ${noisy} with; retries ${rows.map((r) => r.retries)}`);
        assert.ok(Math.abs(noisy - plain) <= 0.01, `without fuzz ${plain}, with ${noisy}\n${output}`);
      } finally {
        // The quiet run ends on its own (it runs on workers nothing disturbs): a failure above does not leave its aggregator behind.
        await quietRun;
        await Promise.all([quiet.down(), fuzzed.down()]);
      }
    });
  });
}
