/** The round clock: each stage timed, and the rounds held by slow clients and by clients that never came told apart from training. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Arrivals } from '../../../../src/roles/arrivals';
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
    assert.equal(clock.timings(false).waiting_ms, 2600, 'a switch below waited: so did the round, whatever is missing at this level');
  });

  it('splits the time the slowest client held the round from training: from the median update to the last, as the switches saw them arrive', () => {
    let now = 0;
    const clock = new RoundClock(() => now);
    clock.enter('selection', true);
    now = 100;
    clock.enter('training', false);
    now = 1300;
    clock.reported(0, ['direct']); // a client of the aggregator's own: 1.2 s into training
    now = 6200;
    // A switch's sum: its clients arrived 1.0, 1.1 and 6.0 s after it opened; it forwarded at once.
    clock.reported(0, ['a', 'b', 'slow'], [1000, 1100, 6000]);
    now = 6300;
    clock.enter('aggregation', false);
    now = 6400;
    clock.enter('evaluation', false);
    now = 6500;
    clock.enter('checkpoint', false);
    // Arrivals 1.0, 1.1, 1.2, 6.0: the median (lower) 1.1, so 'slow' held the round 4.9 s of its 6.2 s of training.
    assert.deepEqual(clock.timings(false), { round_ms: 6500, selection_ms: 100, training_ms: 1300, straggling_ms: 4900, held_by: 'slow', waiting_ms: 0, aggregation_ms: 100, evaluation_ms: 100 });
  });

  it('adds waits up the tree: a sum that waited below counts from its last update, also when nothing is missing at this level', () => {
    const arrivals = new Arrivals();
    arrivals.open(0);
    arrivals.took(1000, ['a']);
    arrivals.took(9000, ['b', 'c'], 7000, [1500, 1800]); // a rack waited 7 s for a hung client before forwarding
    assert.equal(arrivals.waitedUntil(9050, false), 7050, 'waiting since the rack last had an update, 2 s in');
    assert.deepEqual(arrivals.of(['c', 'a', 'x']), [1800, 1000, 0]);
    assert.deepEqual(arrivals.slowest(), { client: 'c', ms: 300 });
    const quiet = new Arrivals();
    quiet.open(0);
    quiet.took(1000, ['a']);
    assert.equal(quiet.waitedUntil(1020, false), 0, 'nobody waited: processing is not waiting');
    assert.equal(quiet.slowest(), undefined, 'one client holds no round');
  });
});
