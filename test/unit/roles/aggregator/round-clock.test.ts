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
    // A switch's sum, here 6.1 s into training: its clients' updates arrived there 5.1, 5.0 and 0.1 s before it went up.
    clock.reported(0, ['a', 'b', 'slow'], [5100, 5000, 100]);
    now = 6300;
    clock.enter('aggregation', false);
    now = 6400;
    clock.enter('evaluation', false);
    now = 6500;
    clock.enter('checkpoint', false);
    // Arrivals 1.0, 1.1, 1.2, 6.0 s into training: the median (lower) 1.1, so 'slow' held the round 4.9 s of its 6.2 s.
    assert.deepEqual(clock.timings(false), { round_ms: 6500, selection_ms: 100, training_ms: 1300, straggling_ms: 4900, held_by: 'slow', waiting_ms: 0, aggregation_ms: 100, evaluation_ms: 100 });
  });

  it('adds waits up the tree: a sum that waited below counts from its last update, also when nothing is missing at this level', () => {
    const arrivals = new Arrivals();
    arrivals.open(0);
    arrivals.took(1000, ['a']);
    // A rack waited 7 s for a hung client before forwarding; its clients' updates came 7.5 and 7.2 s before it did.
    arrivals.took(9000, ['b', 'c'], 7000, [7500, 7200]);
    assert.equal(arrivals.waitedUntil(9050, false), 7050, 'waiting since the rack last had an update, 2 s in');
    // Going up at 9.05 s: as ages back from then, so the level above needs no clock of ours.
    assert.deepEqual(arrivals.snapshot(9050).agesOf(['c', 'a']), [7250, 8050]);
    assert.deepEqual(arrivals.slowest(), { client: 'c', ms: 300 });
    assert.deepEqual(arrivals.slowest(200), { client: 'c', ms: 200 }, 'no longer than the round allows');
    // A switch's word is bounded by this level's round: a day of waiting, or ages past the opening, count from the opening.
    const told = new Arrivals();
    told.open(0);
    told.took(5000, ['x', 'y'], 86_400_000, [86_400_000, 10]);
    assert.equal(told.waitedUntil(5000, false), 5000);
    assert.deepEqual(told.snapshot(5000).agesOf(['x', 'y']), [5000, 10]);
    assert.deepEqual(told.slowest(), { client: 'y', ms: 4990 });
    const quiet = new Arrivals();
    quiet.open(0);
    quiet.took(1000, ['a']);
    assert.equal(quiet.waitedUntil(1020, false), 0, 'nobody waited: processing is not waiting');
    assert.equal(quiet.slowest(), undefined, 'one client holds no round');
  });
});
