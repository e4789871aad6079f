/** The round clock: each stage timed, and the wait for clients that never came told apart from training. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RoundClock } from '../../../../src/roles/aggregator/round-clock';

describe('round clock', () => {
  it('splits the wait for missing clients from training: from the last update in the sum to the close', () => {
    let now = 0;
    const clock = new RoundClock(() => now);
    clock.enter('selection', true);
    now = 100;
    clock.enter('training', false);
    now = 1100;
    clock.reported(0); // a switch forwarding at once
    now = 4100;
    clock.reported(2500); // this switch waited 2.5 s after its last update before forwarding
    now = 4200;
    clock.enter('aggregation', false);
    now = 4300;
    clock.enter('evaluation', false);
    now = 4400;
    clock.enter('checkpoint', false);
    assert.deepEqual(clock.timings(true), { round_ms: 4400, selection_ms: 100, training_ms: 1500, waiting_ms: 2600, aggregation_ms: 100, evaluation_ms: 100 });
    assert.equal(clock.timings(false).waiting_ms, 0, 'no client missing: nothing was waited for');
  });
});
