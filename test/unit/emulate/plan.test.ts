/** Planning an emulated testbed from config.json, without a system call: namespaces, addresses, shaped links. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseExperimentConfig, ConfigError } from '../../../src/config/load';
import { testbedConfig } from '../../../src/config/testbed';
import { planTestbed, testbedTag } from '../../../src/emulate/plan';
import { missingForEmulation } from '../../../src/emulate/system';
import { shapeCommands } from '../../../src/emulate/links';
import { ROOT } from '../../helpers/cluster';

const reference = JSON.parse(readFileSync(join(ROOT, 'config.json'), 'utf8'));

describe('planning an emulated testbed (no system calls)', () => {
  it('gives the reference config one namespace per machine in its own /24, and the bridge an address no machine has', () => {
    const plan = planTestbed(parseExperimentConfig(reference), '/tmp/some-state');
    assert.equal(plan.machines.length, 15);
    assert.equal(plan.prefix, 24);
    assert.equal(plan.probe, '10.10.1.254');
    assert.equal(new Set(plan.machines.map((m) => m.ns)).size, 15);
    assert.ok(plan.machines.every((m) => m.ns.startsWith(`fl-${testbedTag('/tmp/some-state')}-`)));
    assert.deepEqual(plan.machines.find((m) => m.host === '10.10.1.15')!.nodes, [{ address: '10.10.1.15:5000', role: 'aggregator' }]);
  });

  it('shapes by role, an address winning over its role', () => {
    const config = parseExperimentConfig({ ...reference, links: { client: { rate_mbit: 100 }, '10.10.1.3': { rate_mbit: 10, delay_ms: 5 }, aggregator: { rate_mbit: 1000 } } });
    const link = (host: string) => planTestbed(config, '/tmp/s').machines.find((m) => m.host === host)!.link;
    assert.deepEqual(link('10.10.1.1'), { rate_mbit: 100 });
    assert.deepEqual(link('10.10.1.3'), { rate_mbit: 10, delay_ms: 5 });
    assert.deepEqual(link('10.10.1.15'), { rate_mbit: 1000 });
    // A bare IP names the machine, whatever port its node listens on.
    const onAnotherPort = parseExperimentConfig({ ...reference, others: { ...reference.others, '10.10.1.16:6000': { type: 'client', client_number: 13, index: 12, switch: '10.10.1.13:5000' } }, links: { '10.10.1.16': { rate_mbit: 5 } } });
    assert.deepEqual(planTestbed(onAnotherPort, '/tmp/s').machines.find((m) => m.host === '10.10.1.16')!.link, { rate_mbit: 5 });
    assert.equal(link('10.10.1.13'), undefined, 'switches are not shaped here');
    assert.deepEqual(shapeCommands('eth0', { rate_mbit: 10, delay_ms: 5 }, false).map((c) => c[7]), ['tbf'], 'no netem: the rate alone');
    assert.deepEqual(shapeCommands('eth0', { rate_mbit: 10, delay_ms: 5 }, true).map((c) => c.includes('netem')), [false, true]);
  });

  it('names a links key that is neither a role nor a node, and refuses loopback addresses', () => {
    assert.throws(() => parseExperimentConfig({ ...reference, links: { clients: { rate_mbit: 100 } } }), (err: ConfigError) => /links\["clients"\]: expected a role/.test(err.message));
    assert.throws(() => parseExperimentConfig({ ...reference, links: { client: { rate_mbit: -1 } } }), /links\.client\.rate_mbit/);
    const loopback = parseExperimentConfig(testbedConfig({ base: '127.0.9', nodes: 4, switches: 1 }));
    assert.throws(() => planTestbed(loopback, '/tmp/s'), /127\.0\.9\.1 is a loopback address/);
  });

  it('says what is missing without root: the capabilities, by name', () => {
    const none = 'CapEff:\t0000000000000000\n';
    assert.match(missingForEmulation('linux', none, () => true).join(), /root, or CAP_NET_ADMIN and CAP_SYS_ADMIN/);
    assert.deepEqual(missingForEmulation('linux', 'CapEff:\t000001ffffffffff\n', () => true), []);
    assert.match(missingForEmulation('darwin').join(), /Linux network namespaces \(this is darwin\)/);
    assert.match(missingForEmulation('linux', 'CapEff:\t000001ffffffffff\n', (p) => p !== 'tc').join(), /the "tc" command/);
  });
});

