/** What the push and the health checks say of the workers, as the aggregator's one record of it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../../src/config/load';
import type { AggregatorNodeConfig } from '../../../../src/config/node-config';
import { testbedConfig } from '../../../../src/config/testbed';
import { AggregatorRole } from '../../../../src/roles/aggregator';
import { nodeContext } from '../../../helpers/node-context';

describe("the aggregator's record of its workers", () => {
  it('takes a worker the push configured as up, unless its role failed since; a health check that sees it back clears that', async () => {
    const raw = testbedConfig({ base: '127.0.9', nodes: 6, switches: 1 }) as Record<string, any>;
    const config = [...resolveNodeConfigs(parseExperimentConfig(raw)).values()].find((n): n is AggregatorNodeConfig => n.type === 'aggregator')!;
    const role = new AggregatorRole(config, nodeContext('agg'));
    const [c1, c2] = role.topology.clients;
    const { members } = role.machine;
    role.health.down(c1, 'not answering the push yet');
    role.health.configured(c1, 'mounted');
    assert.deepEqual([members.healthOf(c1)?.state, members.healthOf(c1)?.reason], ['up', 'configured (mounted)']);
    role.health.failed(c2, 'its samples have shape [32, 32, 3]');
    role.health.configured(c2, 'mounted');
    assert.equal(members.healthOf(c2)?.state, 'failed', 'the push is older news than the failed check-in');
    assert.deepEqual(role.status().failed, { [c2]: 'its samples have shape [32, 32, 3]' });
    role.health.up(c2, 'answering again');
    assert.equal(members.healthOf(c2)?.state, 'up');
    assert.deepEqual(role.status().failed, {});
    await role.stop();
  });
});
