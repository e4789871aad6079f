/** The round state machines, driven by events alone: no sockets, no timers. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RoundMachine } from '../src/protocol/aggregator/machine';
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
const ofType = <T extends Action['type']>(actions: Action[], type: T) => actions.filter((a): a is Extract<Action, { type: T }> => a.type === type);
const checkInAll = (m: RoundMachine, clients = ['c1', 'c2', 'c3', 'c4', 'd1']) => clients.flatMap((client) => m.handle({ type: 'checkin', client }));
const report = (m: RoundMachine, from: string, contributors: number, round = m.state.round) =>
  m.handle({ type: 'report', round, from, contributors, weight: contributors * 100 });

describe('aggregator round machine', () => {
  it('selects once the goal count has checked in, opens each switch with its clients, sends the model', () => {
    const m = machine();
    assert.deepEqual(m.handle({ type: 'start' }).map((a) => a.type), ['start-timer']);
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
    assert.deepEqual(m.handle({ type: 'aggregated', round: 1 }), [{ type: 'evaluate', round: 1 }]);
    assert.deepEqual(m.handle({ type: 'evaluated', round: 1 }), [{ type: 'checkpoint', round: 1 }]);
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
    assert.deepEqual(m.handle({ type: 'checkpointed', round: 1 }), [{ type: 'finish' }]);
    assert.equal(m.state.stage, 'done');
  });

  // The last field: how many reports the act itself got accepted before the refused one.
  const refusals: [string, (m: RoundMachine) => Action[], number, RegExp, number?][] = [
    ['a report for a finished round', (m) => report(m, S1, 2, 0), 409, /round 0 is over/],
    ['a report for a future round', (m) => report(m, S1, 2, 7), 409, /round 7 has not started/],
    ['a second report from the same switch', (m) => (report(m, S1, 2), report(m, S1, 2)), 409, /already reported/, 1],
    ['a report from a node with no clients in the round', (m) => report(m, 'stranger:1', 1), 403, /has no clients in round 1/],
    ['a switch claiming more updates than it has clients', (m) => report(m, S1, 3), 400, /can sum 1 to 2 updates/],
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
    const actions = m.handle({ type: 'report-deadline', round: 1 });
    assert.deepEqual(ofType(actions, 'aggregate')[0].missing, ['d1']);
    assert.match(ofType(actions, 'log')[0].message, /no update from d1/);
  });

  it('starts the round again when too few updates arrived, instead of averaging over too few', () => {
    const m = machine({ minFraction: 0.8 });
    m.handle({ type: 'start' });
    checkInAll(m);
    report(m, S1, 2);
    const actions = m.handle({ type: 'report-deadline', round: 1 });
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
    assert.deepEqual(m.handle({ type: 'report-deadline', round: 1 }), []);
    assert.equal(m.state.stage, 'aggregation');
  });

  it('at the selection deadline, goes on with enough clients and keeps waiting with too few', () => {
    const m = machine({ minFraction: 0.6 });
    m.handle({ type: 'start' });
    checkInAll(m, ['c1', 'c2']);
    const waiting = m.handle({ type: 'selection-deadline', round: 1 });
    assert.equal(m.state.stage, 'selection');
    assert.ok(ofType(waiting, 'start-timer').length === 1);
    checkInAll(m, ['c3']);
    const go = m.handle({ type: 'selection-deadline', round: 1 });
    assert.deepEqual(ofType(go, 'send-model')[0].clients, ['c1', 'c2', 'c3']);
  });
});

describe('switch round machine', () => {
  const members = ['c1', 'c2', 'c3'];
  const open = (m: SwitchMachine, round = 1, clients = ['c1', 'c2']) => m.handle({ type: 'open', round, clients, deadlineMs: 500 });

  it('forwards once every selected client reported, in sender order', () => {
    const m = new SwitchMachine(members);
    open(m);
    assert.deepEqual(m.handle({ type: 'update', round: 1, from: 'c2' }).map((a) => a.type), ['accept']);
    const last = m.handle({ type: 'update', round: 1, from: 'c1' });
    assert.deepEqual(last.at(-1), { type: 'forward', round: 1, from: ['c1', 'c2'], missing: [] });
  });

  it('forwards what it has at the deadline, naming who is missing; nothing when no one reported', () => {
    const m = new SwitchMachine(members);
    open(m);
    m.handle({ type: 'update', round: 1, from: 'c1' });
    assert.deepEqual(m.handle({ type: 'deadline', round: 1 }).at(-1), { type: 'forward', round: 1, from: ['c1'], missing: ['c2'] });
    const empty = new SwitchMachine(members);
    open(empty);
    assert.deepEqual(empty.handle({ type: 'deadline', round: 1 }).map((a) => a.type), ['log']);
  });

  const refusals: [string, (m: SwitchMachine) => ReturnType<SwitchMachine['handle']>, number][] = [
    ['an update before any round is open', (m) => new SwitchMachine(members).handle({ type: 'update', round: 1, from: 'c1' }), 409],
    ['an update for another round', (m) => m.handle({ type: 'update', round: 2, from: 'c1' }), 409],
    ['a duplicate update', (m) => (m.handle({ type: 'update', round: 1, from: 'c1' }), m.handle({ type: 'update', round: 1, from: 'c1' })), 409],
    ['an update from a member not selected this round', (m) => m.handle({ type: 'update', round: 1, from: 'c3' }), 403],
    ['an update from a stranger', (m) => m.handle({ type: 'update', round: 1, from: 'x9' }), 403],
    ['an opening naming a stranger', (m) => open(m, 2, ['c1', 'x9']), 400],
    ['an opening of an older round', (m) => open(m, 0), 409],
    ['an update after the sum was forwarded', (m) => (m.handle({ type: 'update', round: 1, from: 'c1' }), m.handle({ type: 'update', round: 1, from: 'c2' }), m.handle({ type: 'update', round: 1, from: 'c2' })), 409],
  ];
  for (const [name, act, status] of refusals) {
    it(`refuses ${name}`, () => {
      const m = new SwitchMachine(members);
      open(m);
      const refusal = act(m).find((a) => a.type === 'refuse');
      assert.equal(refusal?.type === 'refuse' && refusal.status, status);
    });
  }

  it('accepts the same round opened again (a retried round) and starts it afresh', () => {
    const m = new SwitchMachine(members);
    open(m);
    m.handle({ type: 'update', round: 1, from: 'c1' });
    m.handle({ type: 'deadline', round: 1 });
    const again = open(m, 1, ['c2']);
    assert.ok(again.some((a) => a.type === 'reset-buffer'));
    assert.equal(m.state.received.size, 0);
    assert.equal(m.handle({ type: 'update', round: 1, from: 'c2' }).at(-1)?.type, 'forward');
  });
});
