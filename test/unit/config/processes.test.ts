/** Many clients to a machine and a process: how `testbed init` lays them out and how launchers group them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../src/config/load';
import { workerProcesses } from '../../../src/config/processes';
import { testbedConfig } from '../../../src/config/testbed';

const layout = (shape: Parameters<typeof testbedConfig>[0]) => parseExperimentConfig(testbedConfig(shape), 'config.json');

describe('many clients to a process', () => {
  it('init --clients 40 --per-process 12: four client machines (12, 12, 12, 4 clients on ports 5000…), the switches and the aggregator after them', () => {
    const config = layout({ base: '127.0.9', nodes: 0, clients: 40, perProcess: 12, switches: 3, spines: 1 });
    assert.equal(config.clients_per_process, 12);
    assert.equal(config.clients_per_round, 40);
    const clients = Object.entries(config.others).filter(([, e]) => e.type === 'client');
    assert.equal(clients.length, 40);
    assert.deepEqual([...new Set(clients.map(([a]) => a.split(':')[0]))], ['127.0.9.1', '127.0.9.2', '127.0.9.3', '127.0.9.4']);
    assert.equal(clients[11][0], '127.0.9.1:5011');
    assert.equal(clients[12][0], '127.0.9.2:5000');
    assert.deepEqual(clients.map(([, e]) => (e as { index: number }).index), [...Array(40).keys()]);
    assert.deepEqual(Object.keys(config.others).slice(40), ['127.0.9.5:5000', '127.0.9.6:5000', '127.0.9.7:5000', '127.0.9.8:5000']);
    const processes = workerProcesses(config);
    assert.deepEqual(processes.map((p) => [p.type, p.addresses.length]), [['client', 12], ['client', 12], ['client', 12], ['client', 4], ['switch', 1], ['switch', 1], ['switch', 1]]);
  });

  it('a launcher starts at most clients_per_process clients in a process, only clients of one machine together, never a switch with them', () => {
    const config = layout({ base: '127.0.9', nodes: 0, clients: 10, perProcess: 5, switches: 1 });
    // Three to a process on machines of five: 3 + 2 on each.
    const processes = workerProcesses({ ...config, clients_per_process: 3 });
    assert.deepEqual(processes.map((p) => p.addresses.length), [3, 2, 3, 2, 1]);
    for (const p of processes) assert.equal(new Set(p.addresses.map((a) => a.split(':')[0])).size, 1, `${p.addresses} on one machine`);
    // One a process, as before this setting.
    assert.equal(workerProcesses({ ...config, clients_per_process: 1 }).length, 11);
  });

  it('refuses what cannot be laid out, and the setting stays off the nodes', () => {
    assert.throws(() => testbedConfig({ base: '127.0.9', nodes: 15, switches: 2, perProcess: 4 }), /--per-process needs --clients/);
    assert.throws(() => testbedConfig({ base: '127.0.9', nodes: 0, clients: 4, perProcess: 0, switches: 1 }), /--per-process: 1 to 256/);
    assert.throws(() => testbedConfig({ base: '127.0.9', nodes: 0, clients: 4, perProcess: 4, switches: 1, port: 65534 }), /no room for 4 clients/);
    assert.throws(() => parseExperimentConfig({ ...testbedConfig({ base: '127.0.9', nodes: 4, switches: 1 }), clients_per_process: 0 }), /clients_per_process/);
    const config = layout({ base: '127.0.9', nodes: 0, clients: 4, perProcess: 2, switches: 1 });
    for (const node of resolveNodeConfigs(config).values()) assert.ok(!('clients_per_process' in node.settings), `${node.address} is not told how it was launched`);
  });
});
