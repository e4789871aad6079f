/** The aggregator's round machine, driven by events alone: no sockets, no timers. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Action, Event } from '../../../src/protocol/aggregator/events';
import { RoundMachine } from '../../../src/protocol/aggregator/machine';
import { checkTransition, retryLimit, TRANSITIONS, type RoundRules } from '../../../src/protocol/aggregator/phase';
import { Topology } from '../../../src/topology/tree';

const AGG = 'agg:5000';
const S1 = 's1:5000';
const S2 = 's2:5000';
// c1..c4 report through s1 and s2; d1 reports to the aggregator directly.
const topology = new Topology(AGG, { c1: S1, c2: S1, c3: S2, c4: S2, d1: AGG, [S1]: AGG, [S2]: AGG });
const firstComeFirstServed = (_round: number, ready: readonly string[], goal: number) => ready.slice(0, goal);

function machine(overrides: Partial<RoundRules> = {}, select = firstComeFirstServed, tree = topology) {
  return new RoundMachine({ rounds: 2, goal: 5, minFraction: 0.5, deadlineMs: 1000, session: 's', ...overrides }, tree, select);
}
/** The deadline the machine's current phase and attempt set. */
const deadline = (m: RoundMachine, phase: 'selection' | 'training', attempt = m.attempt) => ({ type: 'deadline' as const, phase, attempt });
const ofType = <T extends Action['type']>(actions: Action[], type: T) => actions.filter((a): a is Extract<Action, { type: T }> => a.type === type);
const checkIn = (client: string): Event => ({ type: 'checkin', client, samples: 100 });
const checkInAll = (m: RoundMachine, clients = ['c1', 'c2', 'c3', 'c4', 'd1']) => clients.flatMap((client) => m.handle(checkIn(client)));
const wentDown = (node: string): Event => ({ type: 'node-down', node, reason: 'test' });
/** The clients the model went to (through their switches), in selection order. */
const sentTo = (actions: Action[]) => ofType(actions, 'send-model')[0]?.to.flatMap((t) => t.clients);
/** A report of the first `contributors` clients `from` has in the round (a stranger claims made-up ones). */
const report = (m: RoundMachine, from: string, contributors: number, round = m.round, attempt = m.attempt, weight = contributors * 100) => {
  const expected = m.selected.filter((c) => m.topology.reporterOf(c) === from);
  const clients = Array.from({ length: contributors }, (_, i) => expected[i] ?? `${from}/c${i}`);
  return m.handle({ type: 'report', round, attempt, from, clients, weight });
};
/** The round's tail, done. */
const closed = (m: RoundMachine) => m.handle({ type: 'closed', round: m.round, attempt: m.attempt });

describe('aggregator round machine', () => {
  it('selects once the goal count has checked in, opens each switch with its clients, sends the model', () => {
    const m = machine();
    assert.deepEqual(m.handle({ type: 'start' }).map((a) => a.type), ['cancel-timers', 'start-timer']);
    const actions = checkInAll(m);
    assert.equal(m.stage, 'training');
    assert.deepEqual(ofType(actions, 'open-switch-round').map((a) => [a.switch, a.clients]), [[S1, ['c1', 'c2']], [S2, ['c3', 'c4']]]);
    assert.deepEqual(sentTo(actions), ['c1', 'c2', 'c3', 'c4', 'd1']);
    assert.deepEqual(ofType(actions, 'send-model')[0].to.map((t) => t.reporter).sort(), ['d1', S1, S2].sort());
    // What the clients are told is made first, once, from every selected client's weight: the openings and the model carry it.
    const types = actions.map((a) => a.type);
    assert.ok(types.indexOf('configure-fit') < types.indexOf('open-switch-round'), types.join(', '));
    assert.deepEqual(ofType(actions, 'configure-fit').map((a) => [a.attempt, a.selected]), [[m.attempt, { c1: 100, c2: 100, c3: 100, c4: 100, d1: 100 }]]);
  });

  it('takes clients that checked in before the start', () => {
    const m = machine();
    checkInAll(m);
    assert.equal(m.stage, 'idle');
    const actions = m.handle({ type: 'start' });
    assert.equal(m.stage, 'training');
    assert.equal(sentTo(actions).length, 5);
  });

  it('first come first served: extra clients are told to stand by and go first next round', () => {
    const m = machine({ goal: 2 });
    m.handle({ type: 'start' });
    const actions = [...checkInAll(m, ['c3', 'c1']), ...checkInAll(m, ['c2', 'c4'])];
    assert.deepEqual(sentTo(actions), ['c3', 'c1']);
    assert.deepEqual(m.members.waiting(), ['c2', 'c4']);
    assert.deepEqual(ofType(actions, 'standby'), []); // those who arrive after selection simply wait
    const late = machine({ goal: 2 });
    checkInAll(late, ['c3', 'c1', 'c2']);
    const started = late.handle({ type: 'start' });
    assert.deepEqual(ofType(started, 'standby')[0].clients, ['c2']);
  });

  it('closes the round once every switch and direct client has reported, in one sequence, and starts the next round once it is closed', () => {
    const m = machine();
    m.handle({ type: 'start' });
    checkInAll(m);
    assert.deepEqual(report(m, S1, 2).map((a) => a.type), ['accept-report']);
    report(m, 'd1', 1);
    const last = report(m, S2, 2);
    const [close] = ofType(last, 'close-round');
    assert.deepEqual({ ...close, results: close.results.map((r) => r.from) }, { type: 'close-round', round: 1, attempt: m.attempt, results: [S1, 'd1', S2], missing: [], samples: 500 });
    assert.equal(m.stage, 'closing');
    assert.deepEqual(m.handle({ type: 'closed', round: 1, attempt: 'another' }), [], 'a close of another attempt is dropped');
    assert.equal(m.stage, 'closing');
    closed(m);
    assert.equal(m.round, 2);
    assert.equal(m.stage, 'selection');
  });

  it('finishes after the last round', () => {
    const m = machine({ rounds: 1 });
    m.handle({ type: 'start' });
    checkInAll(m);
    for (const from of [S1, S2, 'd1']) report(m, from, from === 'd1' ? 1 : 2);
    assert.deepEqual(closed(m), [{ type: 'cancel-timers' }, { type: 'finish' }]);
    assert.equal(m.stage, 'done');
    assert.deepEqual([m.selected.length, m.reports], [5, 3], 'the last round stays in view');
  });

  it('pre-scales updates by the samples the selected clients said they hold at check-in', () => {
    const m = machine({ goal: 2 });
    m.handle({ type: 'start' });
    m.handle({ type: 'checkin', client: 'c1', samples: 300 });
    const actions = m.handle({ type: 'checkin', client: 'd1', samples: 120 });
    const [send] = ofType(actions, 'send-model');
    assert.equal(send.samples, 420);
    assert.deepEqual(send.to.map((t) => t.weights), [{ c1: 300 }, { d1: 120 }], 'each client is told the weight it said it holds');
    assert.deepEqual(ofType(actions, 'open-switch-round')[0].weights, { c1: 300 });
    report(m, S1, 1, 1, m.attempt, 300);
    assert.equal(ofType(report(m, 'd1', 1, 1, m.attempt, 120), 'close-round')[0].samples, 420);
  });

  it("assigns shares that add up to 1: each client's weight over the selected clients' samples", () => {
    const m = machine({ goal: 5 });
    m.handle({ type: 'start' });
    const samples = { c1: 300, c2: 17, c3: 1e9, c4: 1, d1: 5000 };
    const actions = Object.entries(samples).flatMap(([client, n]) => m.handle({ type: 'checkin', client, samples: n }));
    const [send] = ofType(actions, 'send-model');
    const shares = send.to.flatMap((t) => Object.values(t.weights).map((w) => w / send.samples));
    assert.equal(shares.length, 5);
    assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 1) < 1e-12, `shares add up to ${shares.reduce((a, b) => a + b, 0)}`);
    assert.ok(shares.every((share) => share > 0 && share <= 1));
  });

  it('refuses a report that does not weigh what its clients said at check-in, naming both', () => {
    const m = machine({ goal: 2 });
    m.handle({ type: 'start' });
    m.handle({ type: 'checkin', client: 'c1', samples: 300 });
    m.handle({ type: 'checkin', client: 'd1', samples: 120 });
    const [refusal] = ofType(report(m, 'd1', 1, 1, m.attempt, 1e12), 'refuse');
    assert.deepEqual(refusal, { type: 'refuse', status: 400, reason: 'the update from d1 weighs 1000000000000, not the 120 the aggregator assigned it (the samples said at check-in)' });
    assert.equal(m.reports, 0);
    assert.deepEqual(ofType(report(m, S1, 1, 1, m.attempt, 301), 'refuse').map((r) => r.status), [400]);
  });

  // The last field: how many reports the act itself got accepted before the refused one.
  const refusals: [string, (m: RoundMachine) => Action[], number, RegExp, number?][] = [
    ['a report for a finished round', (m) => report(m, S1, 2, 0), 409, /round 0 is over/],
    ['a report for a future round', (m) => report(m, S1, 2, 7), 409, /round 7 has not started/],
    ['a second report from the same switch', (m) => (report(m, S1, 2), report(m, S1, 2)), 409, /already reported/, 1],
    ['a report from a node with no clients in the round', (m) => report(m, 'stranger:1', 1), 403, /has no clients in round 1/],
    ['a switch claiming more updates than it has clients', (m) => report(m, S1, 3), 400, /can sum the updates of c1, c2 in round 1, not of \[c1, c2, s1:5000\/c2\]/],
    ['a switch naming a client of another switch', (m) => m.handle({ type: 'report', round: 1, attempt: m.attempt, from: S1, clients: ['c1', 'c3'], weight: 200 }), 400, /not of \[c1, c3\]/],
    ['a switch naming one client twice', (m) => m.handle({ type: 'report', round: 1, attempt: m.attempt, from: S1, clients: ['c1', 'c1'], weight: 200 }), 400, /not of \[c1, c1\]/],
    ['a report for an earlier opening of the round', (m) => report(m, S1, 2, 1, ':1.7'), 409, /another opening of round 1/],
    ['a check-in from a node that is not a client', (m) => m.handle(checkIn('nobody')), 403, /not a client/],
  ];
  for (const [name, act, status, reason, accepted = 0] of refusals) {
    it(`refuses ${name}, and the round goes on as before`, () => {
      const m = machine();
      m.handle({ type: 'start' });
      checkInAll(m);
      const refusal = ofType(act(m), 'refuse').at(-1)!;
      assert.equal(refusal.status, status);
      assert.match(refusal.reason, reason);
      assert.equal(m.stage, 'training');
      assert.equal(m.reports, accepted, 'a refused report was recorded');
    });
  }

  it('at the report deadline, closes the round with who reported when enough did', () => {
    const m = machine();
    m.handle({ type: 'start' });
    checkInAll(m);
    report(m, S1, 2);
    report(m, S2, 1);
    const actions = m.handle(deadline(m, 'training'));
    assert.deepEqual(ofType(actions, 'close-round')[0].missing, ['c4', 'd1']);
    assert.match(ofType(actions, 'log')[0].message, /no update from c4, d1/);
  });

  it('starts the round again when too few updates arrived, instead of averaging over too few', () => {
    const m = machine({ minFraction: 0.8 });
    m.handle({ type: 'start' });
    checkInAll(m);
    report(m, S1, 2);
    const actions = m.handle(deadline(m, 'training'));
    assert.deepEqual(ofType(actions, 'close-round'), []);
    assert.equal(ofType(actions, 'discard-round').length, 1);
    assert.equal(m.round, 1);
    assert.equal(m.retries, 1);
    assert.equal(m.stage, 'selection');
    assert.equal(report(m, S2, 2)[0].type, 'refuse');
  });

  it('ignores a deadline of a round that already closed', () => {
    const m = machine();
    m.handle({ type: 'start' });
    checkInAll(m);
    for (const from of [S1, S2, 'd1']) report(m, from, from === 'd1' ? 1 : 2);
    assert.deepEqual(m.handle(deadline(m, 'training')), []);
    assert.equal(m.stage, 'closing');
  });

  it('at the selection deadline, goes on with enough clients and keeps waiting with too few', () => {
    const m = machine({ minFraction: 0.6 });
    m.handle({ type: 'start' });
    checkInAll(m, ['c1', 'c2']);
    const waiting = m.handle(deadline(m, 'selection'));
    assert.equal(m.stage, 'selection');
    assert.ok(ofType(waiting, 'start-timer').length === 1);
    checkInAll(m, ['c3']);
    const go = m.handle(deadline(m, 'selection'));
    assert.deepEqual(sentTo(go), ['c1', 'c2', 'c3']);
  });

  it('under the straggler policy, selects over_select times the goal and closes once the goal is in and the grace has passed', () => {
    // The goal of 4 over-selected ×1.25 is 5 (as the role sets it); closing needs 4 of them.
    const m = machine({ goal: 5, stragglers: { over_select: 1.25, grace_ms: 200 } });
    m.handle({ type: 'start' });
    checkInAll(m);
    assert.equal(m.selected.length, 5);
    assert.deepEqual(ofType(report(m, S1, 2), 'start-timer'), []);
    const enough = [...report(m, S2, 2)];
    assert.deepEqual(ofType(enough, 'start-timer').map((a) => [a.phase, a.ms]), [['training', 200]]);
    assert.ok(ofType(enough, 'log').some((l) => /4 of 5 clients in \(4 asked\); closing in 200 ms without the rest/.test(l.message)));
    const [close] = ofType(m.handle(deadline(m, 'training')), 'close-round');
    assert.deepEqual(close.missing, ['d1']);
    // A late report of the slow client is refused: the round has closed without it.
    assert.equal(ofType(report(m, 'd1', 1), 'refuse').length, 1);
  });

  it('under the straggler policy, does not let one switch\'s sum alone start the grace that cuts the others short', () => {
    // s1 holds four of the five clients: its sum alone (which may lie about who is in it) reaches 3 of 5.
    const lopsided = new Topology(AGG, { c1: S1, c2: S1, c3: S1, c4: S1, d1: AGG, [S1]: AGG });
    const m = machine({ goal: 5, stragglers: { over_select: 1, close_fraction: 0.6, grace_ms: 100 } }, firstComeFirstServed, lopsided);
    m.handle({ type: 'start' });
    checkInAll(m);
    assert.deepEqual(ofType(report(m, S1, 4), 'start-timer'), [], 'one reporter: no grace');
    assert.equal(m.stage, 'training');
  });

  it('under over-selection, selects once the clients wanted are ready, not waiting for one still busy with the last round', () => {
    const m = machine({ goal: 5, wanted: 4, stragglers: { over_select: 1.25, grace_ms: 200 } });
    m.handle({ type: 'start' });
    checkInAll(m, ['c1', 'c2', 'c3']);
    assert.equal(m.stage, 'selection', 'three of the four wanted');
    checkInAll(m, ['c4']);
    assert.equal(m.stage, 'training');
    assert.deepEqual(m.selected, ['c1', 'c2', 'c3', 'c4'], 'every ready client, up to the goal');
    const plain = machine({ goal: 5, wanted: 5 });
    plain.handle({ type: 'start' });
    checkInAll(plain, ['c1', 'c2', 'c3', 'c4']);
    assert.equal(plain.stage, 'selection', 'without over-selection it waits for the goal');
  });
});

describe('aggregator round machine with workers going down', () => {
  const started = (overrides: Partial<RoundMachine['rules']> = {}) => {
    const m = machine(overrides);
    m.handle({ type: 'start' });
    return m;
  };

  it('does not wait in selection for a client that is down', () => {
    const m = started();
    checkInAll(m, ['c1', 'c2', 'c3']);
    m.handle(wentDown('c4'));
    assert.equal(m.stage, 'selection'); // d1 is up and may still check in
    const actions = checkInAll(m, ['d1']);
    assert.deepEqual(sentTo(actions), ['c1', 'c2', 'c3', 'd1']);
  });

  it("selects no client behind a switch that is down, and keeps them for when it is back", () => {
    const m = started();
    m.handle(wentDown(S2));
    const actions = checkInAll(m);
    assert.deepEqual(sentTo(actions), ['c1', 'c2', 'd1']);
    assert.deepEqual(ofType(actions, 'open-switch-round').map((a) => a.switch), [S1]);
    assert.deepEqual(m.members.waiting(), ['c3', 'c4']);
  });

  it('goes on as soon as a switch that was down is back and its clients are waiting', () => {
    const m = started({ goal: 3 });
    m.handle(wentDown(S2));
    checkInAll(m, ['c3', 'c4', 'c1']);
    assert.equal(m.stage, 'selection'); // only c1 can report; c2 and d1 could, so it waits for them
    const back = m.handle({ type: 'node-up', node: S2 });
    assert.deepEqual(sentTo(back), ['c3', 'c4', 'c1']);
  });

  it('waits, rather than run a round below the quorum, when too many workers are down', () => {
    const m = started({ minFraction: 0.8 });
    m.handle(wentDown(S1));
    m.handle(wentDown(S2));
    checkInAll(m, ['d1']);
    assert.equal(m.stage, 'selection');
    assert.deepEqual(ofType(m.handle(deadline(m, 'selection')), 'start-timer').length, 1);
  });

  it('stops waiting for a switch that goes down mid-round, and aggregates what arrived', () => {
    const m = started();
    checkInAll(m);
    report(m, S1, 2);
    report(m, 'd1', 1);
    const actions = m.handle(wentDown(S2));
    assert.equal(m.stage, 'closing');
    assert.deepEqual(ofType(actions, 'close-round')[0].missing, ['c3', 'c4']);
    assert.deepEqual(m.handle(wentDown(S1)), []); // already reported: changes nothing
  });

  it('starts the round again, under a new attempt, when a switch going down leaves too few updates', () => {
    const m = started({ minFraction: 0.8 });
    checkInAll(m);
    const first = m.attempt;
    report(m, S1, 2);
    report(m, 'd1', 1);
    const actions = m.handle(wentDown(S2)); // 3 of 5 in; 4 needed
    assert.equal(ofType(actions, 'discard-round').length, 1);
    assert.equal(m.retries, 1);
    checkInAll(m);
    assert.equal(m.stage, 'selection'); // 3 can report while the switch is down: below the quorum
    m.handle({ type: 'node-up', node: S2 });
    assert.equal(m.stage, 'training');
    assert.notEqual(m.attempt, first);
    const stale = ofType(report(m, S1, 2, 1, first), 'refuse')[0];
    assert.match(stale.reason, /another opening of round 1/);
  });

  it('a client that checks in is up again, whatever the health checks said', () => {
    const m = started({ goal: 1 });
    m.handle(wentDown('c1'));
    const actions = checkInAll(m, ['c1']);
    assert.deepEqual(sentTo(actions), ['c1']);
    assert.equal(m.members.isDown('c1'), false);
  });

  it('names every opening of a round uniquely, across retries and aggregator restarts', () => {
    const a = machine({ goal: 1, minFraction: 1, deadlineMs: 1, session: 'a' });
    const b = machine({ goal: 1, minFraction: 1, deadlineMs: 1, session: 'b' });
    const attempts = new Set<string>();
    for (const m of [a, b]) {
      m.handle({ type: 'start' });
      checkInAll(m, ['d1']);
      attempts.add(m.attempt);
      m.handle(deadline(m, 'training')); // nothing arrived: retried
      checkInAll(m, ['d1']);
      attempts.add(m.attempt);
    }
    assert.equal(attempts.size, 4);
  });
});

describe('aggregator round machine: phases own their deadlines', () => {
  it('a deadline of an earlier attempt of the round is dropped, in either phase', () => {
    const m = machine({ minFraction: 0.8 });
    m.handle({ type: 'start' });
    const selectionOfFirst = deadline(m, 'selection');
    checkInAll(m);
    const first = m.attempt;
    report(m, S1, 2);
    m.handle(deadline(m, 'training')); // 2 of 5: the round starts again
    assert.equal(m.stage, 'selection');
    checkInAll(m);
    assert.equal(m.stage, 'training');
    assert.notEqual(m.attempt, first);
    assert.deepEqual(m.handle(deadline(m, 'training', first)), [], 'the first attempt closed the retry');
    assert.deepEqual(m.handle(selectionOfFirst), []);
    assert.equal(m.stage, 'training');
    assert.equal(ofType(m.handle(deadline(m, 'training')), 'discard-round').length, 1, "the retry's own deadline still acts");
  });

  it('every stage change cancels the timers of the stage it leaves, before new ones are set', () => {
    const m = machine();
    const opened = m.handle({ type: 'start' });
    assert.deepEqual(opened.map((a) => a.type), ['cancel-timers', 'start-timer']);
    const selected = checkInAll(m).map((a) => a.type);
    assert.equal(selected[0], 'cancel-timers');
    assert.equal(selected.filter((t) => t === 'cancel-timers').length, 1, 'once, entering training');
    assert.ok(selected.indexOf('start-timer') > 0);
    const closing = [report(m, S1, 2), report(m, S2, 2), report(m, 'd1', 1)].flat().map((a) => a.type);
    assert.ok(closing.includes('cancel-timers'), 'leaving training cancels its deadline');
    assert.ok(closing.indexOf('cancel-timers') < closing.indexOf('close-round'));
  });

  it('moves only along the transitions it declares, and refuses every other', () => {
    const allowed = ['idle>selection', 'selection>training', 'training>closing', 'training>selection', 'closing>selection', 'closing>done'];
    const stages = Object.keys(TRANSITIONS) as (keyof typeof TRANSITIONS)[];
    for (const from of stages) {
      for (const to of stages) {
        if (allowed.includes(`${from}>${to}`)) assert.doesNotThrow(() => checkTransition(from, to), `${from} to ${to}`);
        else assert.throws(() => checkTransition(from, to), new RegExp(`no transition from ${from} to ${to}`));
      }
    }
    // The machine takes the one back to selection when too few updates came: a retry.
    const m = machine({ minFraction: 1 });
    m.handle({ type: 'start' });
    checkInAll(m);
    report(m, S1, 2);
    m.handle(deadline(m, 'training'));
    assert.deepEqual([m.stage, m.retries], ['selection', 1]);
  });

  it('lets the strategy choose among the ready clients, never beyond them or the goal', () => {
    const m = machine({ goal: 2 }, (_round, ready) => [...ready].reverse().concat('nobody'));
    m.handle({ type: 'start' });
    const actions = checkInAll(m, ['c1', 'c3']);
    assert.deepEqual(sentTo(actions), ['c3', 'c1']);
  });

  it('names the clients it is still waiting for at the selection deadline', () => {
    const m = machine();
    m.handle({ type: 'start' });
    checkInAll(m, ['c1', 'c2']);
    const [waiting] = ofType(m.handle(deadline(m, 'selection')), 'waiting');
    assert.deepEqual([waiting.ready, waiting.needed, waiting.missing], [2, 3, ['c3', 'c4', 'd1']]);
  });
});

describe('aggregator round machine: a client lost mid-training', () => {
  const training = () => {
    const m = machine();
    m.handle({ type: 'start' });
    checkInAll(m);
    return m;
  };

  it('drops a selected client that goes down from its switch at once; the round closes when the rest are in', () => {
    const m = training();
    report(m, S2, 2);
    report(m, 'd1', 1);
    const down = m.handle(wentDown('c1'));
    assert.deepEqual(ofType(down, 'drop-client').map((a) => [a.switch, a.client, a.attempt]), [[S1, 'c1', m.attempt]]);
    assert.equal(m.stage, 'training', 'c2 is still on its way through s1');
    const last = m.handle({ type: 'report', round: 1, attempt: m.attempt, from: S1, clients: ['c2'], weight: 100 });
    assert.deepEqual(ofType(last, 'close-round')[0].missing, ['c1']);
  });

  it('stops waiting for a direct client that went down at once, and for a switch when it says it has nothing', () => {
    const m = training();
    report(m, S2, 2);
    m.handle(wentDown('c1'));
    m.handle(wentDown('d1'));
    m.handle(wentDown('c2'));
    assert.deepEqual([...m.awaiting], [S1], 'the switch may hold their updates already: it is asked, not assumed empty');
    const actions = m.handle({ type: 'withheld', round: 1, attempt: m.attempt, from: S1, clients: [], reason: 'no client reported' });
    assert.equal(m.stage, 'selection', '2 of 5 arrived: below the quorum, the round starts again');
    assert.equal(ofType(actions, 'discard-round').length, 1);
  });

  it('keeps a waiting client that hung, parked, and puts it back when the same process answers; not one started anew', () => {
    const m = machine({ goal: 5 });
    m.handle({ type: 'start' });
    checkInAll(m, ['c1', 'c2']);
    m.handle(wentDown('c1'));
    m.handle(wentDown('c2'));
    assert.deepEqual(m.members.waiting(), []);
    m.handle({ type: 'node-up', node: 'c1', resumed: true });
    m.handle({ type: 'node-up', node: 'c2', resumed: false });
    assert.deepEqual(m.members.waiting(), ['c1'], 'c2 restarted: it checks in once it has loaded its data');
  });

  it('counts a dropped client whose update made its switch\'s sum after all', () => {
    const m = training();
    m.handle(wentDown('c1'));
    report(m, S1, 2);
    report(m, S2, 2);
    const last = report(m, 'd1', 1);
    assert.deepEqual(ofType(last, 'close-round')[0].missing, []);
  });

  it('stops waiting for a switch that says it forwards nothing', () => {
    const m = training();
    report(m, S1, 2);
    report(m, 'd1', 1);
    const refusedNotice = m.handle({ type: 'withheld', round: 1, attempt: 'old', from: S2, clients: [], reason: 'x' });
    assert.equal(ofType(refusedNotice, 'refuse')[0].status, 409);
    const actions = m.handle({ type: 'withheld', round: 1, attempt: m.attempt, from: S2, clients: ['c3'], reason: 'only 1 update arrived' });
    assert.deepEqual(ofType(actions, 'close-round')[0].missing, ['c3', 'c4']);
  });
});

describe('the aggregator round machine in a tree of switches', () => {
  // r1 (c1, c2) and r2 (c3) are racks under spine sp, which also has c4 itself, under the aggregator.
  const SP = 'sp:5000';
  const R1 = 'r1:5000';
  const R2 = 'r2:5000';
  const tree = new Topology(AGG, { c1: R1, c2: R1, c3: R2, c4: SP, [R1]: SP, [R2]: SP, [SP]: AGG });
  const training = () => {
    const m = machine({ goal: 4 }, firstComeFirstServed, tree);
    m.handle({ type: 'start' });
    const actions = ['c1', 'c2', 'c3', 'c4'].flatMap((client) => m.handle(checkIn(client)));
    return { m, actions };
  };

  it('the aggregator opens the round of the spine alone, with every client beneath it', () => {
    const { m, actions } = training();
    assert.deepEqual(ofType(actions, 'open-switch-round').map((a) => [a.switch, a.clients]), [[SP, ['c1', 'c2', 'c3', 'c4']]]);
    assert.deepEqual([...m.awaiting], [SP]);
  });

  it('a rack going down takes its clients out: dropped at the spine, told to stand by; the spine is still awaited', () => {
    const { m } = training();
    const down = m.handle(wentDown(R1));
    assert.deepEqual(ofType(down, 'standby').map((a) => a.clients), [['c1', 'c2']]);
    assert.deepEqual(ofType(down, 'drop-client').map((a) => [a.switch, a.client]), [[SP, 'c1'], [SP, 'c2']]);
    assert.deepEqual([...m.awaiting], [SP]);
    const last = m.handle({ type: 'report', round: 1, attempt: m.attempt, from: SP, clients: ['c3', 'c4'], weight: 200 });
    assert.deepEqual(ofType(last, 'close-round')[0].missing, ['c1', 'c2']);
  });

  it('a client beneath a switch that is down is not selected', () => {
    const m = machine({ goal: 4 }, firstComeFirstServed, tree);
    m.handle({ type: 'start' });
    m.handle(wentDown(R2));
    const actions = ['c1', 'c2', 'c3', 'c4'].flatMap((client) => m.handle(checkIn(client)));
    assert.deepEqual(ofType(actions, 'open-switch-round')[0].clients, ['c1', 'c2', 'c4']);
  });

});

describe('aggregator round machine: a client that cannot use the model, a sum that cannot be read', () => {
  it('drops a client that declines the model at once, naming why; a decline for another opening or from a client not in the round is refused', () => {
    const m = machine();
    m.handle({ type: 'start' });
    checkInAll(m);
    const stale = m.handle({ type: 'declined', round: 1, attempt: 's:1.9', client: 'c1', reason: 'x' });
    assert.deepEqual(ofType(stale, 'refuse').map((r) => r.status), [409]);
    const declined = m.handle({ type: 'declined', round: 1, attempt: m.attempt, client: 'c1', reason: 'value 4934 at 0 does not fit the HE scale' });
    assert.deepEqual(ofType(declined, 'drop-client').map((a) => [a.switch, a.client]), [[S1, 'c1']]);
    assert.match(ofType(declined, 'log')[0].message, /round 1: client c1 cannot use the model: value 4934 at 0 does not fit the HE scale; the round goes on without it/);
    const direct = m.handle({ type: 'declined', round: 1, attempt: m.attempt, client: 'd1', reason: 'NaN' });
    assert.deepEqual([...m.awaiting].sort(), [S1, S2].sort(), 'a direct client that declines is not waited for');
    assert.deepEqual(ofType(direct, 'drop-client'), []);
  });

  /** Runs openings of round 1 with every client reporting, until `spoiler`'s sum is named; each opening's sum is unreadable when it holds `spoiler`. */
  function searchFor(spoiler: string) {
    const m = machine({ goal: 5, minFraction: 0.6, rounds: 20 });
    m.handle({ type: 'start' });
    const all: Action[] = [];
    const openings: string[][] = [];
    for (let i = 0; i < 12 && !ofType(all, 'leave-out').length; i++) {
      all.push(...checkInAll(m, ['c1', 'c2', 'c3', 'c4', 'd1'].filter((c) => !m.selected.includes(c) || m.stage !== 'training')));
      assert.equal(m.stage, 'training', `opening ${i} started`);
      const selected = [...m.selected];
      openings.push(selected);
      for (const from of new Set(selected.map((c) => m.topology.reporterOf(c)))) {
        all.push(...report(m, from, selected.filter((c) => m.topology.reporterOf(c) === from).length));
      }
      assert.equal(m.stage, 'closing');
      const spoiled = selected.some((c) => c === spoiler || m.topology.chainOf(c).includes(spoiler));
      all.push(...m.handle(spoiled ? { type: 'unreadable', round: m.round, attempt: m.attempt, reason: 'it does not decrypt' } : { type: 'closed', round: m.round, attempt: m.attempt }));
    }
    return { m, all, openings };
  }

  it('runs a round whose sum cannot be read again, without about half the suspects, until the spoiler is named and left out', () => {
    const { all, openings } = searchFor('c3');
    const [leave] = ofType(all, 'leave-out');
    assert.equal(leave.node, 'c3');
    assert.match(leave.reason, /^its updates made [2-9] of the round's sums unreadable \(the last: it does not decrypt\)$/);
    const logs = ofType(all, 'log').map((l) => l.message);
    assert.ok(logs.some((l) => /^round 1: the sum cannot be read: it does not decrypt; suspects: .*c3.*; the round runs again without /.test(l)), logs.join('\n'));
    assert.ok(logs.some((l) => /^round \d: c3 is left out of the experiment/.test(l)));
    // Quorum 3 of 5: at most 2 clients sit an opening out.
    for (const selected of openings) assert.ok(selected.length >= 3, JSON.stringify(openings));
    assert.ok(openings.length <= 7, JSON.stringify(openings));
    assert.ok(openings.some((selected) => !selected.includes('c3')), 'some opening ran without it');
    assert.deepEqual(ofType(all, 'discard-round').length, openings.filter((s) => s.includes('c3')).length, 'each unreadable sum is thrown away');
  });

  it('keeps a client it left out out for good, though it answers as if started anew (a restart is its own to claim)', () => {
    const { m } = searchFor('c3');
    m.handle({ type: 'node-up', node: 'c3', reason: 'configured again' });
    assert.equal(m.members.healthOf('c3')?.state, 'failed');
    assert.deepEqual(ofType(m.handle(checkIn('c3')), 'refuse').map((r) => r.status), [403]);
    assert.ok(!m.members.waiting().includes('c3'));
  });

  it('runs a round whose new model nobody could score again, with every client in and nobody suspected', () => {
    const m = machine({ goal: 5, minFraction: 0.6, rounds: 3 });
    m.handle({ type: 'start' });
    checkInAll(m);
    for (const from of [S1, S2, 'd1']) report(m, from, from === 'd1' ? 1 : 2);
    const opened = m.attempt;
    const actions = m.handle({ type: 'unscored', round: 1, attempt: m.attempt, reason: 'no client could score the new model (5 asked gave no score)' });
    assert.deepEqual(ofType(actions, 'log').map((l) => l.message), ['round 1: no client could score the new model (5 asked gave no score); the round runs again']);
    assert.deepEqual(ofType(actions, 'leave-out'), []);
    checkInAll(m);
    assert.notEqual(m.attempt, opened);
    assert.deepEqual([...m.selected].sort(), ['c1', 'c2', 'c3', 'c4', 'd1'], 'nobody sits the next opening out');
  });

  it('names a switch whose sums cannot be read, not the clients beneath it', () => {
    const { all } = searchFor(S2);
    assert.deepEqual(ofType(all, 'leave-out').map((a) => a.node), [S2]);
    assert.match(ofType(all, 'leave-out')[0].reason, /^the sums through it made/);
  });

  it('refuses the check-in of a client whose role failed until the health checks see it started anew', () => {
    const m = machine();
    m.handle({ type: 'node-down', node: 'c1', reason: 'its data has shape [3]; the model takes [784]', failed: true });
    const [refusal] = ofType(m.handle(checkIn('c1')), 'refuse');
    assert.deepEqual(refusal, { type: 'refuse', status: 403, reason: 'c1 is out of the experiment: its data has shape [3]; the model takes [784]' });
    assert.deepEqual(m.members.waiting(), []);
    m.handle({ type: 'node-up', node: 'c1', reason: 'configured again' });
    assert.deepEqual(ofType(m.handle(checkIn('c1')), 'refuse'), []);
    assert.deepEqual(m.members.waiting(), ['c1']);
  });

  it('gives up on a round opened too often, saying why, rather than run it for ever', () => {
    const m = machine({ goal: 5, minFraction: 1 });
    m.handle({ type: 'start' });
    const limit = retryLimit(5);
    let gaveUp: Extract<Action, { type: 'give-up' }> | undefined;
    for (let i = 0; i < limit + 2 && !gaveUp; i++) {
      checkInAll(m);
      for (const from of [S1, S2, 'd1']) report(m, from, from === 'd1' ? 1 : 2);
      [gaveUp] = ofType(m.handle({ type: 'unreadable', round: 1, attempt: m.attempt, reason: 'garbage in its slots' }), 'give-up');
    }
    assert.ok(gaveUp, 'it gave up');
    assert.equal(gaveUp!.reason, `round 1 was opened ${limit} times and never closed (the last: the sum could not be read: garbage in its slots)`);
    assert.equal(m.retries, limit - 1);
  });
});
