/** The switch's round machine, driven by events alone: no sockets, no timers. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SwitchMachine } from '../../../src/protocol/switch';
import { Topology } from '../../../src/topology/tree';

const SW = 'sw:5000';
/** A switch with three clients of its own. */
const rack = new Topology(SW, { c1: SW, c2: SW, c3: SW });

/** Every client weighs 100 samples in these rounds but c2, which weighs 50. */
const WEIGHT: Record<string, number> = { c1: 100, c2: 50, c3: 100, c4: 100 };
const weightsOf = (clients: string[]) => Object.fromEntries(clients.map((c) => [c, WEIGHT[c] ?? 100]));

describe('switch round machine', () => {
  const open = (m: SwitchMachine, round = 1, clients = ['c1', 'c2'], attempt = `s:${round}.0`) =>
    m.handle({ type: 'open', round, attempt, clients, weights: weightsOf(clients), deadlineMs: 500 });
  const update = (m: SwitchMachine, from: string, round = 1, attempt = m.state.attempt, weight = WEIGHT[from] ?? 100) => m.handle({ type: 'update', round, attempt, from, weight });

  it('forwards once every selected client reported, in sender order', () => {
    const m = new SwitchMachine(rack);
    open(m);
    assert.deepEqual(update(m, 'c2', 1).map((a) => a.type), ['accept']);
    const last = update(m, 'c1', 1);
    assert.deepEqual(last.at(-1), { type: 'forward', round: 1, attempt: 's:1.0', from: ['c1', 'c2'], missing: [] });
  });

  it('forwards what it has at the deadline, naming who is missing; nothing when no one reported', () => {
    const m = new SwitchMachine(rack);
    open(m);
    update(m, 'c1', 1);
    assert.deepEqual(m.handle({ type: 'deadline', attempt: m.state.attempt }).at(-1), { type: 'forward', round: 1, attempt: 's:1.0', from: ['c1'], missing: ['c2'] });
    const empty = new SwitchMachine(rack);
    open(empty);
    const withheld = empty.handle({ type: 'deadline', attempt: empty.state.attempt });
    assert.deepEqual(withheld.map((a) => a.type), ['log', 'withhold']);
    assert.match((withheld[1] as { reason: string }).reason, /no client reported/);
  });

  const refusals: [string, (m: SwitchMachine) => ReturnType<SwitchMachine['handle']>, number][] = [
    ['an update before any round is open', () => update(new SwitchMachine(rack), 'c1', 1, 's:1.0'), 409],
    ['an update for another round', (m) => update(m, 'c1', 2), 409],
    ['a duplicate update', (m) => (update(m, 'c1', 1), update(m, 'c1', 1)), 409],
    ['an update from a member not selected this round', (m) => update(m, 'c3', 1), 403],
    ['an update from a stranger', (m) => update(m, 'x9', 1), 403],
    ['an opening naming a stranger', (m) => open(m, 2, ['c1', 'x9']), 400],
    ['an opening of an older round', (m) => open(m, 0, ['c1'], 's:0.0'), 409],
    ['an update for an earlier opening of the round', (m) => update(m, 'c1', 1, 's:1.-1'), 409],
    ['an update after the sum was forwarded', (m) => (update(m, 'c1', 1), update(m, 'c2', 1), update(m, 'c2', 1)), 409],
    ['an update weighing more than the aggregator assigned its client', (m) => update(m, 'c2', 1, m.state.attempt, 1e12), 400],
    ['an update weighing less than the aggregator assigned its client', (m) => update(m, 'c1', 1, m.state.attempt, 99), 400],
    ['the same opening again with other clients', (m) => open(m, 1, ['c1']), 409],
  ];
  for (const [name, act, status] of refusals) {
    it(`refuses ${name}`, () => {
      const m = new SwitchMachine(rack);
      open(m);
      const refusal = act(m).find((a) => a.type === 'refuse');
      assert.equal(refusal?.type === 'refuse' && refusal.status, status);
    });
  }

  it('names the weight it expected when it refuses an update for its weight, and keeps waiting for the client', () => {
    const m = new SwitchMachine(rack);
    open(m);
    const [refusal] = update(m, 'c2', 1, m.state.attempt, 1e12);
    assert.deepEqual(refusal, { type: 'refuse', status: 400, reason: 'the update from c2 weighs 1000000000000, not the 50 the aggregator assigned it (the samples said at check-in)' });
    assert.deepEqual(update(m, 'c2', 1).map((a) => a.type), ['accept'], 'its own weight is taken after');
  });

  it('takes the same opening again as it is (a resend): nothing is reset, and one sum goes up', () => {
    const m = new SwitchMachine(rack);
    open(m);
    update(m, 'c1', 1);
    assert.deepEqual(open(m), [], 'no new round, no timer, no opening below');
    assert.deepEqual([...m.state.received], ['c1']);
    const forwards = update(m, 'c2', 1).filter((a) => a.type === 'forward');
    assert.equal(forwards.length, 1);
    assert.deepEqual(open(m), [], 'after the forward too');
    assert.equal(m.state.stage, 'forwarded');
  });

  it('lets an aggregator started again (a new session) begin from round 1', () => {
    const m = new SwitchMachine(rack);
    open(m, 7, ['c1', 'c2'], 'first:7.0');
    assert.equal(open(m, 1, ['c1'], 'second:1.0').some((a) => a.type === 'refuse'), false);
    assert.deepEqual([m.state.round, m.state.attempt], [1, 'second:1.0']);
  });

  it('accepts the same round opened again (a retried round) and starts it afresh', () => {
    const m = new SwitchMachine(rack);
    open(m);
    update(m, 'c1', 1);
    m.handle({ type: 'deadline', attempt: m.state.attempt });
    const again = open(m, 1, ['c2'], 's:1.1');
    assert.ok(again.some((a) => a.type === 'opened'));
    assert.equal(m.state.received.size, 0);
    assert.equal(update(m, 'c2', 1).at(-1)?.type, 'forward');
  });
  it('stops waiting for a client the aggregator dropped, and refuses its late update', () => {
    const m = new SwitchMachine(rack);
    open(m, 1, ['c1', 'c2', 'c3']);
    update(m, 'c1', 1);
    assert.deepEqual(m.handle({ type: 'drop', round: 1, attempt: 'other', client: 'c2' }).map((a) => a.type), ['refuse']);
    assert.equal(m.handle({ type: 'drop', round: 1, attempt: m.state.attempt, client: 'c2' }).at(-1)?.type, 'log');
    assert.deepEqual(m.handle({ type: 'drop', round: 1, attempt: m.state.attempt, client: 'c1' }), [], 'its update is in: nothing changes');
    const last = update(m, 'c3', 1);
    assert.deepEqual(last.at(-1), { type: 'forward', round: 1, attempt: 's:1.0', from: ['c1', 'c3'], missing: ['c2'] });
    const late = new SwitchMachine(rack);
    open(late, 1, ['c1', 'c2']);
    late.handle({ type: 'drop', round: 1, attempt: late.state.attempt, client: 'c2' });
    assert.match((update(late, 'c2', 1).find((a) => a.type === 'refuse') as { reason: string }).reason, /dropped/);
  });

  it('ignores the deadline of an earlier opening of the round', () => {
    const m = new SwitchMachine(rack);
    open(m, 1, ['c1', 'c2'], 's:1.0');
    open(m, 1, ['c1', 'c2'], 's:1.1');
    update(m, 'c1', 1);
    assert.deepEqual(m.handle({ type: 'deadline', attempt: 's:1.0' }), []);
    assert.equal(m.state.stage, 'collecting');
  });

  it('withholds a lone update when it must forward at least two, and says so', () => {
    const m = new SwitchMachine(rack, 2);
    open(m, 1, ['c1', 'c2']);
    update(m, 'c1', 1);
    const actions = m.handle({ type: 'drop', round: 1, attempt: m.state.attempt, client: 'c2' });
    assert.deepEqual(actions.at(-1), { type: 'withhold', round: 1, attempt: 's:1.0', from: ['c1'], missing: ['c2'], reason: 'only 1 update arrived, 2 needed to forward a sum' });
  });

  it('under the straggler policy, forwards once enough of its clients are in and the grace has passed, without the rest', () => {
    // Three selected, close_fraction 2/3: after two updates the grace starts (once), and its end forwards them.
    const m = new SwitchMachine(rack, 1, { over_select: 1.5, grace_ms: 300 });
    open(m, 1, ['c1', 'c2', 'c3']);
    assert.deepEqual(update(m, 'c1').map((a) => a.type), ['accept']);
    const second = update(m, 'c3');
    assert.deepEqual(second.map((a) => a.type), ['accept', 'log', 'start-timer']);
    assert.deepEqual(second.at(-1), { type: 'start-timer', attempt: 's:1.0', ms: 300 });
    // The grace ends: c2 is left out (its work is wasted), and an update of it after is refused.
    assert.deepEqual(m.handle({ type: 'deadline', attempt: m.state.attempt }).at(-1), { type: 'forward', round: 1, attempt: 's:1.0', from: ['c1', 'c3'], missing: ['c2'] });
    assert.equal(update(m, 'c2').find((a) => a.type === 'refuse')?.type, 'refuse');
    // All in before the grace ends: forwarded at once, and the timer's end changes nothing.
    const quick = new SwitchMachine(rack, 1, { over_select: 1.5, grace_ms: 300 });
    open(quick, 1, ['c1', 'c2', 'c3']);
    update(quick, 'c1');
    update(quick, 'c2');
    assert.equal(update(quick, 'c3').at(-1)!.type, 'forward');
    assert.deepEqual(quick.handle({ type: 'deadline', attempt: quick.state.attempt }), []);
    // Without the policy (or with over_select 1), it waits for every client.
    const plain = new SwitchMachine(rack, 1, { over_select: 1, grace_ms: 300 });
    open(plain, 1, ['c1', 'c2', 'c3']);
    update(plain, 'c1');
    assert.deepEqual(update(plain, 'c3').map((a) => a.type), ['accept']);
  });
});

describe('a spine switch over two racks and a client of its own', () => {
  // r1 (c1, c2) and r2 (c3) are racks under spine sp, which also has c4 itself.
  const SP = 'sp:5000';
  const R1 = 'r1:5000';
  const R2 = 'r2:5000';
  const tree = new Topology(SP, { c1: R1, c2: R1, c3: R2, c4: SP, [R1]: SP, [R2]: SP });
  const spine = (minUpdates = 1) => {
    const m = new SwitchMachine(tree, minUpdates);
    const clients = ['c1', 'c2', 'c3', 'c4'];
    const actions = m.handle({ type: 'open', round: 1, attempt: 's:1.0', clients, weights: weightsOf(clients), deadlineMs: 500 });
    return { m, actions };
  };
  const sum = (m: SwitchMachine, from: string, clients: string[], weight = clients.reduce((w, c) => w + WEIGHT[c], 0)) =>
    m.handle({ type: 'update', round: 1, attempt: 's:1.0', from, clients, weight });
  const own = (m: SwitchMachine) => m.handle({ type: 'update', round: 1, attempt: 's:1.0', from: 'c4', weight: 100 });

  it('opens the round of each rack with its selected clients, and forwards once their sums and its own client are in', () => {
    const { m, actions } = spine();
    const below = actions.filter((a) => a.type === 'open-below').map((a) => a.type === 'open-below' && [a.switch, a.clients, a.weights]);
    assert.deepEqual(below, [[R1, ['c1', 'c2'], { c1: 100, c2: 50 }], [R2, ['c3'], { c3: 100 }]], 'each rack is told its clients\' weights');
    assert.deepEqual(sum(m, R1, ['c1', 'c2']).map((a) => a.type), ['accept']);
    own(m);
    assert.deepEqual(sum(m, R2, ['c3']).at(-1), { type: 'forward', round: 1, attempt: 's:1.0', from: ['c1', 'c2', 'c3', 'c4'], missing: [] });
  });

  it('gives up the clients a rack left out of its sum, and all of those of a rack that sends nothing', () => {
    const { m } = spine();
    sum(m, R1, ['c2']);
    own(m);
    const last = m.handle({ type: 'withheld', round: 1, attempt: 's:1.0', from: R2, reason: 'no client reported' });
    assert.deepEqual(last.at(-1), { type: 'forward', round: 1, attempt: 's:1.0', from: ['c2', 'c4'], missing: ['c1', 'c3'] });
  });

  it('passes a drop down to the rack holding the client, and counts a dropped client that made the rack\'s sum', () => {
    const { m } = spine();
    const dropped = m.handle({ type: 'drop', round: 1, attempt: 's:1.0', client: 'c1' });
    assert.deepEqual(dropped.filter((a) => a.type === 'drop-below'), [{ type: 'drop-below', round: 1, attempt: 's:1.0', switch: R1, client: 'c1' }]);
    sum(m, R1, ['c1', 'c2']);
    sum(m, R2, ['c3']);
    assert.deepEqual(own(m).at(-1), { type: 'forward', round: 1, attempt: 's:1.0', from: ['c1', 'c2', 'c3', 'c4'], missing: [] });
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

  it('refuses a sum that does not weigh what the aggregator assigned the clients it names', () => {
    const { m } = spine();
    const [refusal] = sum(m, R1, ['c1', 'c2'], 1000);
    assert.deepEqual(refusal, { type: 'refuse', status: 400, reason: 'the sum from r1:5000 weighs 1000, not the 150 the aggregator assigned c1, c2 (the samples said at check-in)' });
    assert.deepEqual(sum(m, R1, ['c1'], 100).map((a) => a.type), ['accept'], 'a sum of fewer clients weighs theirs only');
  });

  it("refuses a bundle (robust rules) that weighs right in total but moves samples from one client's update to another's", () => {
    const { m } = spine();
    const bundle = (updateWeights: Record<string, number>) => m.handle({ type: 'update', round: 1, attempt: 's:1.0', from: R1, clients: ['c1', 'c2'], weight: 150, updateWeights });
    assert.deepEqual(bundle({ c1: 50, c2: 100 })[0], { type: 'refuse', status: 400, reason: 'the bundle from r1:5000 weighs its updates otherwise than the aggregator assigned them (c1 50, not 100; c2 100, not 50)' });
    assert.deepEqual(bundle({ c1: 100, c2: 50 }).map((a) => a.type), ['accept']);
  });

  it('counts updates, not sums, against the two it must forward', () => {
    const { m } = spine(2);
    sum(m, R2, ['c3']);
    m.handle({ type: 'withheld', round: 1, attempt: 's:1.0', from: R1, reason: 'x' });
    const last = m.handle({ type: 'drop', round: 1, attempt: 's:1.0', client: 'c4' });
    assert.equal(last.at(-1)?.type, 'withhold');
  });
});
