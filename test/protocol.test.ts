/** The round state machines, driven by events alone: no sockets, no timers. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RoundMachine } from '../src/protocol/aggregator/machine';
import { enter, TRANSITIONS } from '../src/protocol/aggregator/phases';
import type { Action } from '../src/protocol/aggregator/state';
import { SwitchMachine } from '../src/protocol/switch';

const AGG = 'agg:5000';
const S1 = 's1:5000';
const S2 = 's2:5000';
// c1..c4 report through s1 and s2; d1 reports to the aggregator directly.
const upstreamOf = new Map([
  ['c1', S1], ['c2', S1], ['c3', S2], ['c4', S2], ['d1', AGG],
]);

function machine(overrides: Partial<RoundMachine['rules']> = {}) {
  return new RoundMachine({ rounds: 2, goal: 5, minFraction: 0.5, deadlineMs: 1000, ...overrides }, { upstreamOf, self: AGG });
}
/** The deadline the machine's current phase and attempt set. */
const deadline = (m: RoundMachine, phase: 'selection' | 'training', attempt = m.state.attempt) => ({ type: 'deadline' as const, phase, attempt });
const ofType = <T extends Action['type']>(actions: Action[], type: T) => actions.filter((a): a is Extract<Action, { type: T }> => a.type === type);
const checkInAll = (m: RoundMachine, clients = ['c1', 'c2', 'c3', 'c4', 'd1']) => clients.flatMap((client) => m.handle({ type: 'checkin', client }));
/** A report of the first `contributors` clients `from` has in the round (a stranger claims made-up ones). */
const report = (m: RoundMachine, from: string, contributors: number, round = m.state.round, attempt = m.state.attempt) => {
  const expected = m.state.expected.get(from) ?? [];
  const clients = Array.from({ length: contributors }, (_, i) => expected[i] ?? `${from}/c${i}`);
  return m.handle({ type: 'report', round, attempt, from, clients, weight: contributors * 100 });
};

describe('aggregator round machine', () => {
  it('selects once the goal count has checked in, opens each switch with its clients, sends the model', () => {
    const m = machine();
    assert.deepEqual(m.handle({ type: 'start' }).map((a) => a.type), ['cancel-timers', 'start-timer']);
    const actions = checkInAll(m);
    assert.equal(m.state.stage, 'training');
    assert.deepEqual(ofType(actions, 'open-switch-round').map((a) => [a.switch, a.clients]), [[S1, ['c1', 'c2']], [S2, ['c3', 'c4']]]);
    assert.deepEqual(ofType(actions, 'send-model')[0].clients, ['c1', 'c2', 'c3', 'c4', 'd1']);
    assert.deepEqual([...m.state.expected.keys()].sort(), ['d1', S1, S2].sort());
  });

  it('takes clients that checked in before the start', () => {
    const m = machine();
    checkInAll(m);
    assert.equal(m.state.stage, 'idle');
    const actions = m.handle({ type: 'start' });
    assert.equal(m.state.stage, 'training');
    assert.equal(ofType(actions, 'send-model')[0].clients.length, 5);
  });

  it('first come first served: extra clients are told to stand by and go first next round', () => {
    const m = machine({ goal: 2 });
    m.handle({ type: 'start' });
    const actions = [...checkInAll(m, ['c3', 'c1']), ...checkInAll(m, ['c2', 'c4'])];
    assert.deepEqual(ofType(actions, 'send-model')[0].clients, ['c3', 'c1']);
    assert.deepEqual(m.state.pool, ['c2', 'c4']);
    assert.deepEqual(ofType(actions, 'standby'), []); // those who arrive after selection simply wait
    const late = machine({ goal: 2 });
    checkInAll(late, ['c3', 'c1', 'c2']);
    const started = late.handle({ type: 'start' });
    assert.deepEqual(ofType(started, 'standby')[0].clients, ['c2']);
  });

  it('aggregates when every switch and direct client has reported, then evaluates, checkpoints, and starts the next round', () => {
    const m = machine();
    m.handle({ type: 'start' });
    checkInAll(m);
    assert.deepEqual(report(m, S1, 2).map((a) => a.type), ['accept-report']);
    report(m, 'd1', 1);
    const last = report(m, S2, 2);
    assert.deepEqual(ofType(last, 'aggregate')[0], { type: 'aggregate', round: 1, from: [S1, 'd1', S2], missing: [] });
    assert.deepEqual(m.handle({ type: 'aggregated', round: 1 }), [{ type: 'cancel-timers' }, { type: 'evaluate', round: 1 }]);
    assert.deepEqual(m.handle({ type: 'evaluated', round: 1 }), [{ type: 'cancel-timers' }, { type: 'checkpoint', round: 1 }]);
    m.handle({ type: 'checkpointed', round: 1 });
    assert.equal(m.state.round, 2);
    assert.equal(m.state.stage, 'selection');
  });

  it('finishes after the last round', () => {
    const m = machine({ rounds: 1 });
    m.handle({ type: 'start' });
    checkInAll(m);
    for (const from of [S1, S2, 'd1']) report(m, from, from === 'd1' ? 1 : 2);
    m.handle({ type: 'aggregated', round: 1 });
    m.handle({ type: 'evaluated', round: 1 });
    assert.deepEqual(m.handle({ type: 'checkpointed', round: 1 }), [{ type: 'cancel-timers' }, { type: 'finish' }]);
    assert.equal(m.state.stage, 'done');
  });

  // The last field: how many reports the act itself got accepted before the refused one.
  const refusals: [string, (m: RoundMachine) => Action[], number, RegExp, number?][] = [
    ['a report for a finished round', (m) => report(m, S1, 2, 0), 409, /round 0 is over/],
    ['a report for a future round', (m) => report(m, S1, 2, 7), 409, /round 7 has not started/],
    ['a second report from the same switch', (m) => (report(m, S1, 2), report(m, S1, 2)), 409, /already reported/, 1],
    ['a report from a node with no clients in the round', (m) => report(m, 'stranger:1', 1), 403, /has no clients in round 1/],
    ['a switch claiming more updates than it has clients', (m) => report(m, S1, 3), 400, /can sum the updates of c1, c2 in round 1, not of \[c1, c2, s1:5000\/c2\]/],
    ['a switch naming a client of another switch', (m) => m.handle({ type: 'report', round: 1, attempt: m.state.attempt, from: S1, clients: ['c1', 'c3'], weight: 200 }), 400, /not of \[c1, c3\]/],
    ['a switch naming one client twice', (m) => m.handle({ type: 'report', round: 1, attempt: m.state.attempt, from: S1, clients: ['c1', 'c1'], weight: 200 }), 400, /not of \[c1, c1\]/],
    ['a report for an earlier opening of the round', (m) => report(m, S1, 2, 1, ':1.7'), 409, /earlier opening of round 1/],
    ['a check-in from a node that is not a client', (m) => m.handle({ type: 'checkin', client: 'nobody' }), 403, /not a client/],
  ];
  for (const [name, act, status, reason, accepted = 0] of refusals) {
    it(`refuses ${name}, and the round goes on as before`, () => {
      const m = machine();
      m.handle({ type: 'start' });
      checkInAll(m);
      const refusal = ofType(act(m), 'refuse').at(-1)!;
      assert.equal(refusal.status, status);
      assert.match(refusal.reason, reason);
      assert.equal(m.state.stage, 'training');
      assert.equal(m.state.reported.size, accepted, 'a refused report was recorded');
    });
  }

  it('at the report deadline, closes the round with who reported when enough did', () => {
    const m = machine();
    m.handle({ type: 'start' });
    checkInAll(m);
    report(m, S1, 2);
    report(m, S2, 1);
    const actions = m.handle(deadline(m, 'training'));
    assert.deepEqual(ofType(actions, 'aggregate')[0].missing, ['c4', 'd1']);
    assert.match(ofType(actions, 'log')[0].message, /no update from c4, d1/);
  });

  it('starts the round again when too few updates arrived, instead of averaging over too few', () => {
    const m = machine({ minFraction: 0.8 });
    m.handle({ type: 'start' });
    checkInAll(m);
    report(m, S1, 2);
    const actions = m.handle(deadline(m, 'training'));
    assert.deepEqual(ofType(actions, 'aggregate'), []);
    assert.equal(ofType(actions, 'discard-round').length, 1);
    assert.equal(m.state.round, 1);
    assert.equal(m.state.retries, 1);
    assert.equal(m.state.stage, 'selection');
    assert.equal(report(m, S2, 2)[0].type, 'refuse');
  });

  it('ignores a deadline of a round that already closed', () => {
    const m = machine();
    m.handle({ type: 'start' });
    checkInAll(m);
    for (const from of [S1, S2, 'd1']) report(m, from, from === 'd1' ? 1 : 2);
    assert.deepEqual(m.handle(deadline(m, 'training')), []);
    assert.equal(m.state.stage, 'aggregation');
  });

  it('at the selection deadline, goes on with enough clients and keeps waiting with too few', () => {
    const m = machine({ minFraction: 0.6 });
    m.handle({ type: 'start' });
    checkInAll(m, ['c1', 'c2']);
    const waiting = m.handle(deadline(m, 'selection'));
    assert.equal(m.state.stage, 'selection');
    assert.ok(ofType(waiting, 'start-timer').length === 1);
    checkInAll(m, ['c3']);
    const go = m.handle(deadline(m, 'selection'));
    assert.deepEqual(ofType(go, 'send-model')[0].clients, ['c1', 'c2', 'c3']);
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
    m.handle({ type: 'node-down', node: 'c4' });
    assert.equal(m.state.stage, 'selection'); // d1 is up and may still check in
    const actions = checkInAll(m, ['d1']);
    assert.deepEqual(ofType(actions, 'send-model')[0].clients, ['c1', 'c2', 'c3', 'd1']);
  });

  it("selects no client behind a switch that is down, and keeps them for when it is back", () => {
    const m = started();
    m.handle({ type: 'node-down', node: S2 });
    const actions = checkInAll(m);
    assert.deepEqual(ofType(actions, 'send-model')[0].clients, ['c1', 'c2', 'd1']);
    assert.deepEqual(ofType(actions, 'open-switch-round').map((a) => a.switch), [S1]);
    assert.deepEqual(m.state.pool, ['c3', 'c4']);
  });

  it('goes on as soon as a switch that was down is back and its clients are waiting', () => {
    const m = started({ goal: 3 });
    m.handle({ type: 'node-down', node: S2 });
    checkInAll(m, ['c3', 'c4', 'c1']);
    assert.equal(m.state.stage, 'selection'); // only c1 can report; c2 and d1 could, so it waits for them
    const back = m.handle({ type: 'node-up', node: S2 });
    assert.deepEqual(ofType(back, 'send-model')[0].clients, ['c3', 'c4', 'c1']);
  });

  it('waits, rather than run a round below the quorum, when too many workers are down', () => {
    const m = started({ minFraction: 0.8 });
    m.handle({ type: 'node-down', node: S1 });
    m.handle({ type: 'node-down', node: S2 });
    checkInAll(m, ['d1']);
    assert.equal(m.state.stage, 'selection');
    assert.deepEqual(ofType(m.handle(deadline(m, 'selection')), 'start-timer').length, 1);
  });

  it('stops waiting for a switch that goes down mid-round, and aggregates what arrived', () => {
    const m = started();
    checkInAll(m);
    report(m, S1, 2);
    report(m, 'd1', 1);
    const actions = m.handle({ type: 'node-down', node: S2 });
    assert.equal(m.state.stage, 'aggregation');
    assert.deepEqual(ofType(actions, 'aggregate')[0].missing, ['c3', 'c4']);
    assert.deepEqual(m.handle({ type: 'node-down', node: S1 }), []); // already reported: changes nothing
  });

  it('starts the round again, under a new attempt, when a switch going down leaves too few updates', () => {
    const m = started({ minFraction: 0.8 });
    checkInAll(m);
    const first = m.state.attempt;
    report(m, S1, 2);
    report(m, 'd1', 1);
    const actions = m.handle({ type: 'node-down', node: S2 }); // 3 of 5 in; 4 needed
    assert.equal(ofType(actions, 'discard-round').length, 1);
    assert.equal(m.state.retries, 1);
    checkInAll(m);
    assert.equal(m.state.stage, 'selection'); // 3 can report while the switch is down: below the quorum
    m.handle({ type: 'node-up', node: S2 });
    assert.equal(m.state.stage, 'training');
    assert.notEqual(m.state.attempt, first);
    const stale = ofType(report(m, S1, 2, 1, first), 'refuse')[0];
    assert.match(stale.reason, /earlier opening of round 1/);
  });

  it('a client that checks in is up again, whatever the health checks said', () => {
    const m = started({ goal: 1 });
    m.handle({ type: 'node-down', node: 'c1' });
    const actions = checkInAll(m, ['c1']);
    assert.deepEqual(ofType(actions, 'send-model')[0].clients, ['c1']);
    assert.equal(m.state.down.has('c1'), false);
  });

  it('names every opening of a round uniquely, across retries and aggregator restarts', () => {
    const a = new RoundMachine({ rounds: 2, goal: 1, minFraction: 1, deadlineMs: 1, session: 'a' }, { upstreamOf, self: AGG });
    const b = new RoundMachine({ rounds: 2, goal: 1, minFraction: 1, deadlineMs: 1, session: 'b' }, { upstreamOf, self: AGG });
    const attempts = new Set<string>();
    for (const m of [a, b]) {
      m.handle({ type: 'start' });
      checkInAll(m, ['d1']);
      attempts.add(m.state.attempt);
      m.handle(deadline(m, 'training')); // nothing arrived: retried
      checkInAll(m, ['d1']);
      attempts.add(m.state.attempt);
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
    const first = m.state.attempt;
    report(m, S1, 2);
    m.handle(deadline(m, 'training')); // 2 of 5: the round starts again
    assert.equal(m.state.stage, 'selection');
    checkInAll(m);
    assert.equal(m.state.stage, 'training');
    assert.notEqual(m.state.attempt, first);
    assert.deepEqual(m.handle(deadline(m, 'training', first)), [], 'the first attempt closed the retry');
    assert.deepEqual(m.handle(selectionOfFirst), []);
    assert.equal(m.state.stage, 'training');
    assert.equal(ofType(m.handle(deadline(m, 'training')), 'discard-round').length, 1, "the retry's own deadline still acts");
  });

  it('every stage change cancels the timers of the stage it leaves, before new ones are set', () => {
    const m = machine();
    const opened = m.handle({ type: 'start' });
    assert.deepEqual(opened.map((a) => a.type), ['cancel-timers', 'start-timer']);
    const selected = checkInAll(m).map((a) => a.type);
    assert.equal(selected[0], 'cancel-timers');
    assert.ok(selected.indexOf('start-timer') > selected.indexOf('cancel-timers'));
    const closing = [report(m, S1, 2), report(m, S2, 2), report(m, 'd1', 1)].flat().map((a) => a.type);
    assert.ok(closing.indexOf('cancel-timers') < closing.indexOf('aggregate'));
  });

  it('declares its transitions in one place and refuses any other', () => {
    const state = machine().state;
    state.stage = 'aggregation';
    assert.throws(() => enter(state, 'training'), /no transition from aggregation to training/);
    assert.ok(TRANSITIONS.training.includes('selection')); // a retry
  });

  it('lets the strategy choose among the ready clients, never beyond them or the goal', () => {
    const m = machine({ goal: 2, select: (_round, ready) => [...ready].reverse().concat('nobody') });
    m.handle({ type: 'start' });
    const actions = checkInAll(m, ['c1', 'c3']);
    assert.deepEqual(ofType(actions, 'send-model')[0].clients, ['c3', 'c1']);
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
    const down = m.handle({ type: 'node-down', node: 'c1' });
    assert.deepEqual(ofType(down, 'drop-client').map((a) => [a.switch, a.client, a.attempt]), [[S1, 'c1', m.state.attempt]]);
    assert.equal(m.state.stage, 'training', 'c2 is still on its way through s1');
    const last = m.handle({ type: 'report', round: 1, attempt: m.state.attempt, from: S1, clients: ['c2'], weight: 100 });
    assert.deepEqual(ofType(last, 'aggregate')[0].missing, ['c1']);
  });

  it('stops waiting for a direct client that went down at once, and for a switch when it says it has nothing', () => {
    const m = training();
    report(m, S2, 2);
    m.handle({ type: 'node-down', node: 'c1' });
    m.handle({ type: 'node-down', node: 'd1' });
    m.handle({ type: 'node-down', node: 'c2' });
    assert.deepEqual([...m.state.awaiting], [S1], 'the switch may hold their updates already: it is asked, not assumed empty');
    const actions = m.handle({ type: 'withheld', round: 1, attempt: m.state.attempt, from: S1, clients: [], reason: 'no client reported' });
    assert.equal(m.state.stage, 'selection', '2 of 5 arrived: below the quorum, the round starts again');
    assert.equal(ofType(actions, 'discard-round').length, 1);
  });

  it('keeps a waiting client that hung, parked, and puts it back when the same process answers; not one started anew', () => {
    const m = machine({ goal: 5 });
    m.handle({ type: 'start' });
    checkInAll(m, ['c1', 'c2']);
    m.handle({ type: 'node-down', node: 'c1' });
    m.handle({ type: 'node-down', node: 'c2' });
    assert.deepEqual(m.state.pool, []);
    m.handle({ type: 'node-up', node: 'c1', resumed: true });
    m.handle({ type: 'node-up', node: 'c2', resumed: false });
    assert.deepEqual(m.state.pool, ['c1'], 'c2 restarted: it checks in once it has loaded its data');
  });

  it('counts a dropped client whose update made its switch\'s sum after all', () => {
    const m = training();
    m.handle({ type: 'node-down', node: 'c1' });
    report(m, S1, 2);
    report(m, S2, 2);
    const last = report(m, 'd1', 1);
    assert.deepEqual(ofType(last, 'aggregate')[0].missing, []);
  });

  it('stops waiting for a switch that says it forwards nothing', () => {
    const m = training();
    report(m, S1, 2);
    report(m, 'd1', 1);
    const refusedNotice = m.handle({ type: 'withheld', round: 1, attempt: 'old', from: S2, clients: [], reason: 'x' });
    assert.equal(ofType(refusedNotice, 'refuse')[0].status, 409);
    const actions = m.handle({ type: 'withheld', round: 1, attempt: m.state.attempt, from: S2, clients: ['c3'], reason: 'only 1 update arrived' });
    assert.deepEqual(ofType(actions, 'aggregate')[0].missing, ['c3', 'c4']);
  });
});

describe('switch round machine', () => {
  const members = ['c1', 'c2', 'c3'];
  const open = (m: SwitchMachine, round = 1, clients = ['c1', 'c2'], attempt = `s:${round}.0`) => m.handle({ type: 'open', round, attempt, clients, deadlineMs: 500 });
  const update = (m: SwitchMachine, from: string, round = 1, attempt = m.state.attempt) => m.handle({ type: 'update', round, attempt, from });

  it('forwards once every selected client reported, in sender order', () => {
    const m = new SwitchMachine(members);
    open(m);
    assert.deepEqual(update(m, 'c2', 1).map((a) => a.type), ['accept']);
    const last = update(m, 'c1', 1);
    assert.deepEqual(last.at(-1), { type: 'forward', round: 1, attempt: 's:1.0', from: ['c1', 'c2'], missing: [] });
  });

  it('forwards what it has at the deadline, naming who is missing; nothing when no one reported', () => {
    const m = new SwitchMachine(members);
    open(m);
    update(m, 'c1', 1);
    assert.deepEqual(m.handle({ type: 'deadline', attempt: m.state.attempt }).at(-1), { type: 'forward', round: 1, attempt: 's:1.0', from: ['c1'], missing: ['c2'] });
    const empty = new SwitchMachine(members);
    open(empty);
    const withheld = empty.handle({ type: 'deadline', attempt: empty.state.attempt });
    assert.deepEqual(withheld.map((a) => a.type), ['log', 'withhold']);
    assert.match((withheld[1] as { reason: string }).reason, /no client reported/);
  });

  const refusals: [string, (m: SwitchMachine) => ReturnType<SwitchMachine['handle']>, number][] = [
    ['an update before any round is open', () => update(new SwitchMachine(members), 'c1', 1, 's:1.0'), 409],
    ['an update for another round', (m) => update(m, 'c1', 2), 409],
    ['a duplicate update', (m) => (update(m, 'c1', 1), update(m, 'c1', 1)), 409],
    ['an update from a member not selected this round', (m) => update(m, 'c3', 1), 403],
    ['an update from a stranger', (m) => update(m, 'x9', 1), 403],
    ['an opening naming a stranger', (m) => open(m, 2, ['c1', 'x9']), 400],
    ['an opening of an older round', (m) => open(m, 0, ['c1'], 's:0.0'), 409],
    ['an update for an earlier opening of the round', (m) => update(m, 'c1', 1, 's:1.-1'), 409],
    ['an update after the sum was forwarded', (m) => (update(m, 'c1', 1), update(m, 'c2', 1), update(m, 'c2', 1)), 409],
  ];
  for (const [name, act, status] of refusals) {
    it(`refuses ${name}`, () => {
      const m = new SwitchMachine(members);
      open(m);
      const refusal = act(m).find((a) => a.type === 'refuse');
      assert.equal(refusal?.type === 'refuse' && refusal.status, status);
    });
  }

  it('lets an aggregator started again (a new session) begin from round 1', () => {
    const m = new SwitchMachine(members);
    open(m, 7, ['c1', 'c2'], 'first:7.0');
    assert.equal(open(m, 1, ['c1'], 'second:1.0').some((a) => a.type === 'refuse'), false);
    assert.deepEqual([m.state.round, m.state.attempt], [1, 'second:1.0']);
  });

  it('accepts the same round opened again (a retried round) and starts it afresh', () => {
    const m = new SwitchMachine(members);
    open(m);
    update(m, 'c1', 1);
    m.handle({ type: 'deadline', attempt: m.state.attempt });
    const again = open(m, 1, ['c2'], 's:1.1');
    assert.ok(again.some((a) => a.type === 'reset-buffer'));
    assert.equal(m.state.received.size, 0);
    assert.equal(update(m, 'c2', 1).at(-1)?.type, 'forward');
  });
  it('stops waiting for a client the aggregator dropped, and refuses its late update', () => {
    const m = new SwitchMachine(members);
    open(m, 1, ['c1', 'c2', 'c3']);
    update(m, 'c1', 1);
    assert.deepEqual(m.handle({ type: 'drop', round: 1, attempt: 'other', client: 'c2' }).map((a) => a.type), ['refuse']);
    assert.equal(m.handle({ type: 'drop', round: 1, attempt: m.state.attempt, client: 'c2' }).at(-1)?.type, 'log');
    assert.deepEqual(m.handle({ type: 'drop', round: 1, attempt: m.state.attempt, client: 'c1' }), [], 'its update is in: nothing changes');
    const last = update(m, 'c3', 1);
    assert.deepEqual(last.at(-1), { type: 'forward', round: 1, attempt: 's:1.0', from: ['c1', 'c3'], missing: ['c2'] });
    const late = new SwitchMachine(members);
    open(late, 1, ['c1', 'c2']);
    late.handle({ type: 'drop', round: 1, attempt: late.state.attempt, client: 'c2' });
    assert.match((update(late, 'c2', 1).find((a) => a.type === 'refuse') as { reason: string }).reason, /dropped/);
  });

  it('ignores the deadline of an earlier opening of the round', () => {
    const m = new SwitchMachine(members);
    open(m, 1, ['c1', 'c2'], 's:1.0');
    open(m, 1, ['c1', 'c2'], 's:1.1');
    update(m, 'c1', 1);
    assert.deepEqual(m.handle({ type: 'deadline', attempt: 's:1.0' }), []);
    assert.equal(m.state.stage, 'collecting');
  });

  it('withholds a lone update when it must forward at least two, and says so', () => {
    const m = new SwitchMachine(members, {}, 2);
    open(m, 1, ['c1', 'c2']);
    update(m, 'c1', 1);
    const actions = m.handle({ type: 'drop', round: 1, attempt: m.state.attempt, client: 'c2' });
    assert.deepEqual(actions.at(-1), { type: 'withhold', round: 1, attempt: 's:1.0', from: ['c1'], missing: ['c2'], reason: 'only 1 update arrived, 2 needed to forward a sum' });
  });
});

describe('round machines in a tree of switches', () => {
  // r1 (c1, c2) and r2 (c3) are racks under spine sp, which also has c4 itself, under the aggregator.
  const SP = 'sp:5000';
  const R1 = 'r1:5000';
  const R2 = 'r2:5000';
  const tree = {
    upstreamOf: new Map([['c1', R1], ['c2', R1], ['c3', R2], ['c4', SP]]),
    switchUpstreamOf: new Map([[R1, SP], [R2, SP], [SP, AGG]]),
    self: AGG,
  };
  const training = () => {
    const m = new RoundMachine({ rounds: 2, goal: 4, minFraction: 0.5, deadlineMs: 1000 }, tree);
    m.handle({ type: 'start' });
    const actions = ['c1', 'c2', 'c3', 'c4'].flatMap((client) => m.handle({ type: 'checkin', client }));
    return { m, actions };
  };

  it('the aggregator opens the round of the spine alone, with every client beneath it', () => {
    const { m, actions } = training();
    assert.deepEqual(ofType(actions, 'open-switch-round').map((a) => [a.switch, a.clients]), [[SP, ['c1', 'c2', 'c3', 'c4']]]);
    assert.deepEqual([...m.state.awaiting], [SP]);
  });

  it('a rack going down takes its clients out: dropped at the spine, told to stand by; the spine is still awaited', () => {
    const { m } = training();
    const down = m.handle({ type: 'node-down', node: R1 });
    assert.deepEqual(ofType(down, 'standby').map((a) => a.clients), [['c1', 'c2']]);
    assert.deepEqual(ofType(down, 'drop-client').map((a) => [a.switch, a.client]), [[SP, 'c1'], [SP, 'c2']]);
    assert.deepEqual([...m.state.awaiting], [SP]);
    const last = m.handle({ type: 'report', round: 1, attempt: m.state.attempt, from: SP, clients: ['c3', 'c4'], weight: 200 });
    assert.deepEqual(ofType(last, 'aggregate')[0].missing, ['c1', 'c2']);
  });

  it('a client beneath a switch that is down is not selected', () => {
    const m = new RoundMachine({ rounds: 2, goal: 4, minFraction: 0.5, deadlineMs: 1000 }, tree);
    m.handle({ type: 'start' });
    m.handle({ type: 'node-down', node: R2 });
    const actions = ['c1', 'c2', 'c3', 'c4'].flatMap((client) => m.handle({ type: 'checkin', client }));
    assert.deepEqual(ofType(actions, 'open-switch-round')[0].clients, ['c1', 'c2', 'c4']);
  });

  describe('the spine switch', () => {
    const spine = (minUpdates = 1) => {
      const m = new SwitchMachine(['c4'], { [R1]: ['c1', 'c2'], [R2]: ['c3'] }, minUpdates);
      const actions = m.handle({ type: 'open', round: 1, attempt: 's:1.0', clients: ['c1', 'c2', 'c3', 'c4'], deadlineMs: 500 });
      return { m, actions };
    };
    const sum = (m: SwitchMachine, from: string, clients: string[]) => m.handle({ type: 'update', round: 1, attempt: 's:1.0', from, clients });

    it('opens the round of each rack with its selected clients, and forwards once their sums and its own client are in', () => {
      const { m, actions } = spine();
      assert.deepEqual(actions.filter((a) => a.type === 'open-below').map((a) => a.type === 'open-below' && [a.switch, a.clients]), [[R1, ['c1', 'c2']], [R2, ['c3']]]);
      assert.deepEqual(sum(m, R1, ['c1', 'c2']).map((a) => a.type), ['accept']);
      m.handle({ type: 'update', round: 1, attempt: 's:1.0', from: 'c4' });
      assert.deepEqual(sum(m, R2, ['c3']).at(-1), { type: 'forward', round: 1, attempt: 's:1.0', from: ['c1', 'c2', 'c3', 'c4'], missing: [] });
    });

    it('gives up the clients a rack left out of its sum, and all of those of a rack that sends nothing', () => {
      const { m } = spine();
      sum(m, R1, ['c2']);
      m.handle({ type: 'update', round: 1, attempt: 's:1.0', from: 'c4' });
      const last = m.handle({ type: 'withheld', round: 1, attempt: 's:1.0', from: R2, reason: 'no client reported' });
      assert.deepEqual(last.at(-1), { type: 'forward', round: 1, attempt: 's:1.0', from: ['c2', 'c4'], missing: ['c1', 'c3'] });
    });

    it('passes a drop down to the rack holding the client, and counts a dropped client that made the rack\'s sum', () => {
      const { m } = spine();
      const dropped = m.handle({ type: 'drop', round: 1, attempt: 's:1.0', client: 'c1' });
      assert.deepEqual(dropped.filter((a) => a.type === 'drop-below'), [{ type: 'drop-below', round: 1, attempt: 's:1.0', switch: R1, client: 'c1' }]);
      sum(m, R1, ['c1', 'c2']);
      sum(m, R2, ['c3']);
      assert.deepEqual(m.handle({ type: 'update', round: 1, attempt: 's:1.0', from: 'c4' }).at(-1), { type: 'forward', round: 1, attempt: 's:1.0', from: ['c1', 'c2', 'c3', 'c4'], missing: [] });
    });

    it('refuses a sum naming clients not beneath that rack, a second sum, and a sum from a stranger', () => {
      const { m } = spine();
      assert.equal(sum(m, R2, ['c1'])[0].type === 'refuse' && (sum(m, R2, ['c1'])[0] as { status: number }).status, 400);
      sum(m, R1, ['c1']);
      const again = sum(m, R1, ['c2'])[0];
      assert.ok(again.type === 'refuse' && again.status === 409, JSON.stringify(again));
      const stranger = sum(m, 'x:5000', ['c1'])[0];
      assert.ok(stranger.type === 'refuse' && stranger.status === 403, JSON.stringify(stranger));
    });

    it('counts updates, not sums, against the two it must forward', () => {
      const { m } = spine(2);
      sum(m, R2, ['c3']);
      m.handle({ type: 'withheld', round: 1, attempt: 's:1.0', from: R1, reason: 'x' });
      const last = m.handle({ type: 'drop', round: 1, attempt: 's:1.0', client: 'c4' });
      assert.equal(last.at(-1)?.type, 'withhold');
    });
  });
});
