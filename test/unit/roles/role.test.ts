/** What every role shares: a stop that ends its timers and requests. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../src/config/load';
import type { NodeConfig } from '../../../src/config/node-config';
import { testbedConfig } from '../../../src/config/testbed';
import { Role } from '../../../src/roles/role';
import { nodeContext } from '../../helpers/node-context';

function configs(experiment = 'exp-a'): NodeConfig[] {
  const raw = testbedConfig({ base: '127.0.0', nodes: 5, switches: 1, experiment, he: false });
  return [...resolveNodeConfigs(parseExperimentConfig(raw)).values()];
}
const ofType = (type: NodeConfig['type'], experiment?: string) => configs(experiment).find((c) => c.type === type)!;

describe('role lifecycle', () => {
  class TimedRole extends Role {
    fired = 0;
    status() {
      return {};
    }
    schedule(ms: number) {
      this.after(ms, () => this.fired++);
    }
  }

  it('stop() clears the timers a role owns and aborts its requests', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const running = new TimedRole(ofType('client'), nodeContext());
    running.schedule(20);
    t.mock.timers.tick(25);
    assert.equal(running.fired, 1, 'the clock is the test\'s: a timer fires when it is moved past it');
    const role = new TimedRole(ofType('client'), nodeContext());
    role.schedule(20);
    role.schedule(30);
    const signal = (role as unknown as { abort: AbortController }).abort.signal;
    await role.stop();
    assert.ok(signal.aborted);
    t.mock.timers.tick(100);
    assert.equal(role.fired, 0, 'a timer of a stopped role fired');
    await running.stop();
  });
});
