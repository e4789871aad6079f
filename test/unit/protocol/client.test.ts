/** The client's stage machine, driven by events alone: no sockets, no model. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClientMachine } from '../../../src/protocol/client';

const types = (actions: { type: string }[]) => actions.map((a) => a.type);

describe('client stage machine', () => {
  it('refuses a model while it prepares (503: try again), and checks in once prepared', () => {
    const m = new ClientMachine();
    const early = m.handle({ type: 'model', round: 1 });
    assert.deepEqual(early, [{ type: 'refuse', status: 503, reason: 'this client is still loading its data; try again shortly' }]);
    assert.equal(m.stage, 'preparing');
    assert.deepEqual(types(m.handle({ type: 'prepared' })), ['check-in']);
    assert.equal(m.stage, 'waiting');
  });

  it('trains the model it is sent, refuses another while it trains or reports (409 busy), and checks in once the round is over', () => {
    const m = new ClientMachine();
    m.handle({ type: 'prepared' });
    assert.deepEqual(m.handle({ type: 'model', round: 3 }), [{ type: 'train', round: 3 }]);
    assert.deepEqual([m.stage, m.round], ['training', 3]);
    const busy = m.handle({ type: 'model', round: 4 });
    assert.deepEqual(busy, [{ type: 'refuse', status: 409, kind: 'busy', reason: 'this client is still working on round 3' }]);
    m.handle({ type: 'trained' });
    assert.equal(m.stage, 'reporting');
    assert.equal(m.handle({ type: 'model', round: 4 })[0].type, 'refuse');
    assert.deepEqual(types(m.handle({ type: 'round-over' })), ['check-in']);
    assert.deepEqual(m.handle({ type: 'model', round: 4 }), [{ type: 'train', round: 4 }]);
  });

  it('told to train from a model it does not keep, forgets the one it kept, checks in for the whole model, and stays free', () => {
    const m = new ClientMachine();
    m.handle({ type: 'prepared' });
    const actions = m.handle({ type: 'model', round: 2, missing: 'a1b2' });
    assert.deepEqual(types(actions), ['forget-kept', 'check-in', 'refuse']);
    assert.match((actions[2] as { reason: string }).reason, /keeps no model a1b2 to train from/);
    assert.equal(m.stage, 'waiting');
    m.handle({ type: 'model', round: 2 });
    assert.deepEqual(types(m.handle({ type: 'model', round: 3, missing: 'c3d4' })), ['refuse'], 'busy: the model it keeps is not touched');
  });

  it('checks in again on a stand-by or a config pushed again only while it waits', () => {
    const m = new ClientMachine();
    assert.deepEqual(m.handle({ type: 'standby' }), [], 'still preparing');
    m.handle({ type: 'prepared' });
    assert.deepEqual(types(m.handle({ type: 'standby' })), ['check-in']);
    assert.deepEqual(types(m.handle({ type: 'reconnected' })), ['check-in']);
    m.handle({ type: 'model', round: 1 });
    assert.deepEqual(m.handle({ type: 'standby' }), []);
    assert.deepEqual(m.handle({ type: 'reconnected' }), []);
  });
});
