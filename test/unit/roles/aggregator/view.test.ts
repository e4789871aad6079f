/** What the aggregator shows of itself: the workers a round waits for, named with what they last said. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../../src/config/load';
import type { AggregatorNodeConfig } from '../../../../src/config/node-config';
import { testbedConfig } from '../../../../src/config/testbed';
import { AggregatorRole } from '../../../../src/roles/aggregator';
import { describeWorkers } from '../../../../src/roles/aggregator/view';
import { nodeContext } from '../../../helpers/node-context';

describe('the aggregator role, seen', () => {
  it('names each worker a round waits for with what it last said', async () => {
    const raw = testbedConfig({ base: '127.0.9', nodes: 6, switches: 1 }) as Record<string, any>;
    const nodes = [...resolveNodeConfigs(parseExperimentConfig(raw)).values()];
    const role = new AggregatorRole(nodes.find((n): n is AggregatorNodeConfig => n.type === 'aggregator')!, nodeContext('agg'));
    const [c1, c2, c3, c4] = role.topology.clients;
    const [sw] = role.topology.switches;
    role.health.down(c1, 'ECONNREFUSED');
    role.health.failed(c2, 'cannot read /keys/he-secret.json');
    role.health.up(c3, 'answering again');
    assert.equal(describeWorkers(role.machine, [c1, c2, c3]), `${c1} (down: ECONNREFUSED), ${c2} (failed: cannot read /keys/he-secret.json), ${c3} (up, answering again; has not checked in)`);
    role.health.down(sw, 'silent for 3 heartbeats (6.0 s)');
    assert.equal(describeWorkers(role.machine, [c4]), `${c4} (its switch ${sw} is down: silent for 3 heartbeats (6.0 s))`);
    await role.stop();
  });
});
