/** The client's stage machine, driven by events alone: no sockets, no model. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClientMachine } from '../../../src/protocol/client';
import { selectionPass } from '../../../src/wire/control';

const types = (actions: { type: string }[]) => actions.map((a) => a.type);
/** Most tests here are about openings: every model carries its pass, made with a ticket that stays the same. */
const TICKET = 'ab'.repeat(16);
const model = (round: number, retry = 0, session = 's') => {
  const attempt = `${session}:${round}.${retry}`;
  return { type: 'model' as const, round, attempt, pass: selectionPass(TICKET, attempt) };
};

function waiting(mint = () => TICKET): ClientMachine {
  const m = new ClientMachine(mint);
  m.handle({ type: 'prepared' });
  return m;
}

describe('client stage machine', () => {
  it('refuses a model while it prepares (503: try again), and checks in once prepared', () => {
    const m = new ClientMachine(() => TICKET);
    const early = m.handle(model(1));
    assert.deepEqual(early, [{ type: 'refuse', status: 503, reason: 'this client is still loading its data; try again shortly' }]);
    assert.equal(m.stage, 'preparing');
    assert.deepEqual(types(m.handle({ type: 'prepared' })), ['check-in']);
    assert.equal(m.stage, 'waiting');
  });

  it('trains the model it is sent, refuses another while it trains or reports (409 busy), and checks in once the round is over', () => {
    const m = waiting();
    assert.deepEqual(m.handle(model(3)), [{ type: 'train', round: 3, attempt: 's:3.0' }]);
    assert.deepEqual([m.stage, m.round], ['training', 3]);
    const busy = m.handle(model(4));
    assert.deepEqual(busy, [{ type: 'refuse', status: 409, kind: 'busy', reason: 'this client is still working on round 3' }]);
    m.handle({ type: 'trained' });
    assert.equal(m.stage, 'reporting');
    assert.equal(m.handle(model(4))[0].type, 'refuse');
    assert.deepEqual(types(m.handle({ type: 'round-over' })), ['check-in']);
    assert.deepEqual(m.handle(model(4)), [{ type: 'train', round: 4, attempt: 's:4.0' }]);
  });

  it('never trains the same opening twice, nor one older than the last it took', () => {
    const m = waiting();
    m.handle(model(3, 1));
    m.handle({ type: 'round-over' });
    const again = m.handle(model(3, 1));
    assert.deepEqual(again, [{ type: 'refuse', status: 409, kind: 'taken', reason: 'this client took the model of s:3.1 already' }]);
    const older = m.handle(model(3, 0));
    assert.equal(older.length, 1);
    assert.deepEqual(older[0], { type: 'refuse', status: 409, kind: 'stale', reason: 'the model is for s:3.0, but it has heard of s:3.1 since' });
    assert.deepEqual(types(m.handle(model(2, 4))), ['refuse'], 'an earlier round');
    assert.equal(m.stage, 'waiting');
    assert.deepEqual(m.handle(model(3, 2)), [{ type: 'train', round: 3, attempt: 's:3.2' }], 'a later opening of the same round');
  });

  it('takes a model of another session (an aggregator started again) whatever its round', () => {
    const m = waiting();
    m.handle(model(7));
    m.handle({ type: 'round-over' });
    assert.deepEqual(m.handle(model(2, 0, 'new')), [{ type: 'train', round: 2, attempt: 'new:2.0' }]);
  });

  it('told to train from a model it does not keep, forgets the one it kept, checks in for the whole model, and stays free', () => {
    const m = waiting();
    const actions = m.handle({ ...model(2), missing: 'a1b2' });
    assert.deepEqual(types(actions), ['forget-kept', 'check-in', 'refuse']);
    assert.match((actions[2] as { reason: string }).reason, /keeps no model a1b2 to train from/);
    assert.equal(m.stage, 'waiting');
    m.handle(model(2, 1));
    assert.deepEqual(types(m.handle({ ...model(3), missing: 'c3d4' })), ['refuse'], 'busy: the model it keeps is not touched');
  });

  it('checks in again on a stand-by or a config pushed again only while it waits', () => {
    const m = new ClientMachine(() => TICKET);
    assert.deepEqual(m.handle({ type: 'standby', attempt: 's:1.0' }), [], 'still preparing');
    m.handle({ type: 'prepared' });
    assert.deepEqual(types(m.handle({ type: 'standby', attempt: 's:1.0' })), ['check-in']);
    assert.deepEqual(types(m.handle({ type: 'reconnected' })), ['check-in']);
    m.handle(model(1, 1));
    assert.deepEqual(m.handle({ type: 'standby', attempt: 's:1.1' }), [], 'in the round the stand-by is about: it trains on');
    assert.deepEqual(m.handle({ type: 'reconnected' }), []);
  });

  it('refuses a stand-by older than the opening it heard of at check-in, or than the model it took', () => {
    const m = waiting();
    // The aggregator took its check-in while selecting for round 5: a stand-by for 5.0 still concerns it.
    m.handle({ type: 'checked-in', attempt: 's:5.0', open: true });
    assert.deepEqual(types(m.handle({ type: 'standby', attempt: 's:5.0' })), ['check-in']);
    const late = m.handle({ type: 'standby', attempt: 's:4.2' });
    assert.deepEqual(late, [{ type: 'refuse', status: 409, kind: 'stale', reason: 'the stand-by is for s:4.2, but it has heard of s:5.0 since' }]);
    // Checked in while round 6 trained without it: notices for 6.0 are about an opening it is not in.
    m.handle({ type: 'checked-in', attempt: 's:6.0', open: false });
    const over = m.handle({ type: 'standby', attempt: 's:6.0' });
    assert.deepEqual(over, [{ type: 'refuse', status: 409, kind: 'stale', reason: 'the stand-by is for s:6.0, but s:6.0 was over for it when it checked in' }]);
    assert.equal(m.handle(model(6))[0].type, 'refuse', 'nor a model of it');
    assert.deepEqual(m.handle(model(7)), [{ type: 'train', round: 7, attempt: 's:7.0' }]);
    m.handle({ type: 'round-over' });
    assert.equal(m.handle({ type: 'standby', attempt: 's:6.1' })[0].type, 'refuse', 'a stand-by of before the model it took');
  });

  it('takes a stand-by for a later opening as a reason to check in, not as news: one from a lying switch for a far round makes no true model stale', () => {
    const m = waiting();
    m.handle({ type: 'checked-in', attempt: 's:5.0', open: true });
    assert.deepEqual(types(m.handle({ type: 'standby', attempt: 's:999999.0' })), ['check-in']);
    assert.equal(m.attempt, 's:5.0');
    assert.deepEqual(m.handle(model(5)), [{ type: 'train', round: 5, attempt: 's:5.0' }]);
  });

  it('a check-in answered while selecting for the opening it is then selected in does not make that model stale', () => {
    const m = waiting();
    m.handle({ type: 'checked-in', attempt: 's:2.0', open: true });
    assert.deepEqual(types(m.handle(model(2))), ['train']);
    // The answer may also come after the model: it leaves the round it trains alone.
    const other = waiting();
    other.handle(model(2));
    other.handle({ type: 'checked-in', attempt: 's:2.0', open: true });
    assert.deepEqual(other.handle({ type: 'standby', attempt: 's:2.0' }), []);
    assert.equal(other.stage, 'training');
  });

  it('forgets the openings it heard of when its config is pushed again (the aggregator may be new, its rounds start over)', () => {
    const m = waiting();
    m.handle({ type: 'checked-in', attempt: 's:9.0', open: false });
    m.handle({ type: 'reconnected' });
    assert.deepEqual(types(m.handle(model(9))), ['train']);
  });

  it('trains only a model that carries its pass for that opening, made with the ticket it checks in with, which it makes anew as it takes one: a switch cannot have it train an opening it was not selected for', () => {
    let minted = 0;
    const m = waiting(() => `t${++minted}`);
    assert.equal(m.ticket, 't1');
    const modelOf = (attempt: string, pass?: string) => ({ type: 'model' as const, round: Number(attempt.split(':')[1].split('.')[0]), attempt, pass });
    const refusal = (attempt: string, what: string) => [{ type: 'refuse', status: 409, kind: 'not selected', reason: `the model of ${attempt} carries ${what}: the aggregator did not select this client for it` }];
    const other = 'a pass not made with the ticket this client checks in with, for this opening';
    assert.deepEqual(m.handle(modelOf('x1:2.0')), refusal('x1:2.0', 'no pass'));
    assert.deepEqual(m.handle(modelOf('s:2.0', selectionPass('t0', 's:2.0'))), refusal('s:2.0', other), 'made with another ticket');
    assert.deepEqual(m.handle(modelOf('s:2.0', selectionPass('t1', 's:2.1'))), refusal('s:2.0', other), "another opening's pass");
    assert.deepEqual(m.handle(modelOf('s:2.0', 't1')), refusal('s:2.0', other), 'the ticket itself is no pass');
    assert.deepEqual(types(m.handle({ ...modelOf('s:2.0', selectionPass('t1', 's:2.0')), missing: 'gone' })), ['forget-kept', 'check-in', 'refuse'], 'a refused reference leaves the ticket as it was');
    assert.equal(m.stage, 'waiting');
    // Neither a stand-by, a check-in's answer nor a config pushed again changes it: only a model taken.
    m.handle({ type: 'standby', attempt: 's:2.0' });
    m.handle({ type: 'checked-in', attempt: 's:2.0', open: true });
    m.handle({ type: 'reconnected' });
    assert.equal(m.ticket, 't1');
    assert.deepEqual(m.handle(modelOf('s:2.0', selectionPass('t1', 's:2.0'))), [{ type: 'train', round: 2, attempt: 's:2.0' }]);
    assert.equal(m.ticket, 't2', 'a new ticket for its next check-in');
    m.handle({ type: 'round-over' });
    // Passes made with t1, held back by a switch, are spent: for a later opening or another session alike.
    assert.deepEqual(m.handle(modelOf('s:3.0', selectionPass('t1', 's:3.0'))), refusal('s:3.0', other));
    assert.equal((m.handle(modelOf('x2:1.0', selectionPass('t1', 'x2:1.0')))[0] as { kind?: string }).kind, 'stale', 'another session than its answer\'s');
    // Nor does a spent pass pass for another session before any answer came.
    let fresh = 0;
    const unanswered = waiting(() => `u${++fresh}`);
    assert.deepEqual(types(unanswered.handle(modelOf('s:2.0', selectionPass('u1', 's:2.0')))), ['train']);
    unanswered.handle({ type: 'round-over' });
    assert.deepEqual(unanswered.handle(modelOf('x2:1.0', selectionPass('u1', 'x2:1.0'))), refusal('x2:1.0', other));
    assert.equal(m.stage, 'waiting');
    assert.deepEqual(types(m.handle(modelOf('s:3.0', selectionPass('t2', 's:3.0')))), ['train']);
  });

  it("refuses a model of another session than the one its aggregator answered its last check-in in: a pass held back from before the aggregator started again is spent", () => {
    const m = waiting(() => 't1');
    const held = { type: 'model' as const, round: 4, attempt: 'old:4.0', pass: selectionPass('t1', 'old:4.0') };
    // It checked in with t1 while the old aggregator selected; a switch held that model back. The aggregator started again, as session "new".
    m.handle({ type: 'reconnected' });
    m.handle({ type: 'checked-in', attempt: 'new:1.0', open: true });
    assert.deepEqual(m.handle(held), [{ type: 'refuse', status: 409, kind: 'stale', reason: 'the model of old:4.0 is of another session than new, in which the aggregator answered its last check-in' }]);
    assert.deepEqual(types(m.handle({ type: 'model', round: 1, attempt: 'new:1.0', pass: selectionPass('t1', 'new:1.0') })), ['train']);
    // Before any answer, a model of any session passes on its pass alone (the first check-in's answer may come after it).
    assert.deepEqual(types(waiting(() => 't1').handle(held)), ['train']);
    // An answer before the aggregator's first opening names no attempt, but its session all the same.
    const early = waiting(() => 't1');
    early.handle({ type: 'checked-in', attempt: '', open: true, session: 'new' });
    assert.equal((early.handle(held)[0] as { kind?: string }).kind, 'stale');
    assert.deepEqual(types(early.handle({ type: 'model', round: 1, attempt: 'new:1.0', pass: selectionPass('t1', 'new:1.0') })), ['train']);
  });
});
