/** Check-ins as the aggregator role takes them, no sockets: one that does not fit, a stranger's. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HttpError } from '../../../../src/net/errors';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../../src/config/load';
import type { AggregatorNodeConfig } from '../../../../src/config/node-config';
import { testbedConfig } from '../../../../src/config/testbed';
import { AggregatorRole } from '../../../../src/roles/aggregator';
import { nodeContext } from '../../../helpers/node-context';

const aggregatorConfig = () => {
  const raw = testbedConfig({ base: '127.0.9', nodes: 6, switches: 1 }) as Record<string, any>;
  return [...resolveNodeConfigs(parseExperimentConfig(raw)).values()].find((n): n is AggregatorNodeConfig => n.type === 'aggregator')!;
};

/** What each check-in carries for the model it may be selected for (protocol/client.ts). */
const T = 'ab'.repeat(16);

describe('check-ins at the aggregator', () => {
  it('refuses a check-in whose data does not fit the model and takes that client out of the pool; keeps each fit one\'s classes', async () => {
    const role = new AggregatorRole(aggregatorConfig(), nodeContext('agg'));
    const [c1, c2, c3] = role.topology.clients;
    const histogram = [5, 5, 5, 5, 5, 5, 5, 5, 5, 5];
    assert.throws(() => role.notices.checkIn({ ticket: T, client: c1, samples: 50, shape: [32, 32, 3], histogram }, { node: c1 }), (err: HttpError) => err.status === 422 && err.message.includes('its samples have shape [32, 32, 3]; the model takes [28, 28, 1]'));
    assert.throws(() => role.notices.checkIn({ ticket: T, client: c2, samples: 50, shape: [28, 28, 1], histogram: [25, 25] }, { node: c2 }), (err: HttpError) => err.status === 422 && /counts 2 classes; the model tells 10 apart/.test(err.message));
    const { members } = role.machine;
    assert.equal(members.healthOf(c1)?.state, 'failed');
    assert.match(members.healthOf(c1)?.reason ?? '', /shape \[32, 32, 3\]/);
    assert.ok(members.isDown(c1) && !members.waiting().includes(c1), 'a misfit is out of the pool');
    assert.equal(role.histograms.get(c3), undefined);
    const answer = role.notices.checkIn({ ticket: T, client: c3, samples: 50, shape: [28, 28, 1], histogram }, { node: c3 });
    // Before its first opening it names none, but its session: the client takes models of it alone from then on.
    assert.deepEqual([answer.status, answer.attempt, answer.session], ['queued', '', role.machine.rules.session]);
    assert.match(answer.session, /^[\w-]{1,64}$/);
    assert.deepEqual(members.waiting(), [c3], 'the fitting client waits to be selected; the misfits do not');
    assert.deepEqual(role.histograms.get(c3), histogram);
    assert.ok(!role.histograms.has(c2) && !role.histograms.has(c1), 'a misfit\'s classes are not kept');
    await role.stop();
  });

  it('under DP, refuses a client that claims to weigh more than 1, naming why', async () => {
    const raw = testbedConfig({ base: '127.0.9', nodes: 6, switches: 1, he: false }) as Record<string, any>;
    raw.dp = { mode: 'central', clip: 1, noise_multiplier: 1 };
    const config = [...resolveNodeConfigs(parseExperimentConfig(raw)).values()].find((n): n is AggregatorNodeConfig => n.type === 'aggregator')!;
    const role = new AggregatorRole(config, nodeContext('agg'));
    const [c1, c2] = role.topology.clients;
    assert.throws(() => role.notices.checkIn({ ticket: T, client: c1, samples: 1000 }, { node: c1 }), (err: HttpError) => err.status === 422 && /it weighs 1000; with dp on every client weighs 1/.test(err.message));
    assert.equal(role.notices.checkIn({ ticket: T, client: c2, samples: 1 }, { node: c2 }).status, 'queued');
    await role.stop();
  });

  it('refuses a check-in that contradicts the client\'s first (its samples, classes, model), changing nothing: its weight is what it said first', async () => {
    const role = new AggregatorRole(aggregatorConfig(), nodeContext('agg'));
    const [c1] = role.topology.clients;
    const first = { client: c1, samples: 50, shape: [28, 28, 1], histogram: [5, 5, 5, 5, 5, 5, 5, 5, 5, 5], ticket: T };
    role.notices.checkIn(first, { node: c1 });
    for (const lie of [{ samples: 5e8 }, { histogram: [50, 0, 0, 0, 0, 0, 0, 0, 0, 0] }, { model: 999 }]) {
      assert.throws(() => role.notices.checkIn({ ...first, ...lie }, { node: c1 }), (err: HttpError) => err.status === 409 && /checked in first with .*"samples":50.*: its data and model do not change while it runs/.test(err.reason));
    }
    assert.equal(role.machine.members.healthOf(c1)?.state, undefined, 'not marked down or failed');
    assert.deepEqual(role.histograms.get(c1), first.histogram);
    assert.equal(role.notices.checkIn(first, { node: c1 }).status, 'queued', 'the same again is taken');
    // Its ticket is the latest it checked in with (a new one each time it took a model); a refused check-in's is not kept.
    assert.throws(() => role.notices.checkIn({ ...first, samples: 5e8, ticket: 'cd'.repeat(16) }, { node: c1 }));
    assert.equal(role.checkins.ticketOf(c1), T);
    role.notices.checkIn({ ...first, ticket: 'ef'.repeat(16) }, { node: c1 });
    assert.equal(role.checkins.ticketOf(c1), 'ef'.repeat(16));
    await role.stop();
  });

  it("refuses a check-in from a name that is not a client of the experiment, and keeps nothing for it", async () => {
    const role = new AggregatorRole(aggregatorConfig(), nodeContext('agg'));
    const stranger = '127.0.9.200:5000';
    assert.throws(() => role.notices.checkIn({ ticket: T, client: stranger, samples: 50, shape: [32, 32, 3], histogram: [1, 2], model: 7 }, { node: stranger }), (err: HttpError) => err.status === 403 && /not a client of this experiment/.test(err.message));
    assert.equal(role.histograms.has(stranger), false);
    assert.equal(role.checkins.ticketOf(stranger), undefined);
    assert.equal(role.machine.members.healthOf(stranger), undefined, 'no health record for a made-up name');
    assert.deepEqual(role.machine.members.waiting(), []);
    await role.stop();
  });
});
