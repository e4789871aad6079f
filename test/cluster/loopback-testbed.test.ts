/** Real processes on loopback: the launcher starts workers, `main.js agg` configures them. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatConfig, testbedConfig } from '../../src/config/testbed';
import { get, MAIN, post, script, Testbed, waitFor } from '../helpers/cluster';

const PREFIX: Record<string, string> = { client: 'c', switch: 's', aggregator: 'a' };

describe('a 15-node testbed on loopback', () => {
  const testbed = new Testbed({ nodes: 15, switches: 2, rounds: 1 });
  let aggOutput = '';

  before(async () => {
    const up = await testbed.up();
    assert.equal(up.code, 0, up.stdout + up.stderr);
    assert.match(up.stdout, /14 of 14 workers up/);
    // Kept serving after its one round: on a loaded machine the round can end while the tests below
    // still ask the aggregator's routes, and a closing aggregator has unmounted its role.
    const agg = await testbed.startAggregator(['--keep-serving']);
    aggOutput = agg.output;
    assert.equal(agg.exitCode, null, `the aggregator exited early:\n${agg.output}`);
  });
  after(() => testbed.down());

  it('the aggregator reports every worker configured', () => {
    assert.match(aggOutput, /14 configured, 0 refused, 0 unreachable \(of 14 workers\)/);
    for (const address of testbed.addresses()) {
      if (testbed.config.others[address].type !== 'aggregator') assert.match(aggOutput, new RegExp(`ok\\s+${address.replace(/\./g, '\\.')}\\s`));
    }
  });

  it('every node answers /health with the role it was given', async () => {
    for (const [address, entry] of Object.entries(testbed.config.others)) {
      const { status, body } = await get(address, '/health');
      assert.equal(status, 200);
      assert.equal(body.role, entry.type, address);
    }
  });

  it("every node's role routes answer and the other roles' routes are 404", async () => {
    for (const [address, entry] of Object.entries(testbed.config.others)) {
      const own = await get(address, `/${PREFIX[entry.type]}/status`, testbed.token);
      assert.equal(own.status, 200, address);
      assert.equal(own.body.role, entry.type);
      for (const other of Object.values(PREFIX).filter((p) => p !== PREFIX[entry.type])) {
        assert.equal((await get(address, `/${other}/status`, testbed.token)).status, 404, `${address} /${other}`);
      }
    }
  });

  it('a client knows its slice and its switch; a switch knows its clients', async () => {
    const [switchA] = testbed.addresses('switch');
    const sw = await get(switchA, '/s/status', testbed.token);
    assert.equal(sw.body.clients.length, 6);
    const client = await get(sw.body.clients[2], '/c/status', testbed.token);
    assert.deepEqual(client.body.slice, { index: 2, of: 12 });
    assert.equal(client.body.upstream, switchA);
  });

  it('refuses requests without the right token, over the network too', async () => {
    const [client] = testbed.addresses('client');
    assert.equal((await get(client, '/c/status')).status, 401);
    assert.equal((await get(client, '/c/status', 'x'.repeat(48))).status, 401);
    const push = await post(client, '/config', JSON.stringify({ type: 'switch' }), { 'Content-Type': 'application/json' });
    assert.equal(push.status, 401);
    // The cluster token is the operator's: it reads, and names no node, so it pushes no config.
    const [aggregator] = testbed.addresses('aggregator');
    const config = (await get(client, '/config', testbed.token)).body;
    const byOperator = await post(client, '/config', JSON.stringify(config), { 'Content-Type': 'application/json', Authorization: `Bearer ${testbed.token}` });
    assert.equal(byOperator.status, 403);
    assert.match(byOperator.body.reason, /only this node's aggregator pushes its config; the call comes from the operator/);
    // A node naming itself with another's token: the token proves who calls, not the header.
    const forged = await post(client, '/config', JSON.stringify(config), { 'Content-Type': 'application/json', ...testbed.as(client), 'x-fl-node': aggregator });
    assert.equal(forged.status, 401);
    assert.match(forged.body.reason, new RegExp(`the token is not ${aggregator.replace(/\./g, '\\.')}'s`));
    assert.equal((await get(client, '/health')).body.role, 'client');
  });

  it('bad bodies get a 4xx with a reason; the process keeps running and keeps its role', async () => {
    const [client] = testbed.addresses('client');
    const [aggregator] = testbed.addresses('aggregator');
    const headers = { 'Content-Type': 'application/json', ...testbed.as(aggregator) };
    const before = await get(client, '/config', testbed.token);
    const answers = [
      await post(client, '/config', '{"type": ', headers),
      await post(client, '/config', JSON.stringify({ type: 'client', pad: 'x'.repeat(2_000_000) }), headers),
      await post(client, '/config', JSON.stringify({ type: 'spy' }), headers),
      await post(client, '/nowhere', '{}', headers),
    ];
    assert.deepEqual(answers.map((a) => a.status), [400, 413, 400, 404]);
    for (const a of answers) assert.equal(typeof a.body.reason, 'string');
    assert.equal(before.status, 200, 'the client runs a config to compare with');
    assert.deepEqual(await get(client, '/config', testbed.token), before);
  });

  it('the push-config script re-configures running workers for the next experiment', async () => {
    // Next experiment: three switches, so the twelfth machine turns from client into switch.
    const next = testbedConfig({ base: testbed.base, nodes: 15, switches: 3, experiment: 'second', rounds: 1 });
    const file = join(testbed.dir, 'second.json');
    writeFileSync(file, formatConfig(next));
    // Eleven clients each start their role anew (HE threads and all) on two cores other test files share: not 10 s, the script's default.
    const pushed = await script('push-config', ['--config', file, '--token-file', join(testbed.state, 'token'), '--deadline', '60000'], { timeout: 90_000 });
    assert.equal(pushed.code, 0, pushed.stdout + pushed.stderr);
    assert.match(pushed.stdout, /14 configured, 0 refused, 0 unreachable/);
    assert.match(pushed.stdout, /configured \(replaced\)/);

    const turned = `${testbed.base}.12:5000`;
    assert.equal((await get(turned, '/health')).body.role, 'switch');
    assert.equal((await get(turned, '/c/status', testbed.token)).status, 404);
    const sw = await get(turned, '/s/status', testbed.token);
    assert.equal(sw.body.experiment, 'second');
    assert.equal(sw.body.clients.length, 4);

    const again = await script('push-config', ['--config', file, '--token-file', join(testbed.state, 'token'), '--only', turned]);
    assert.match(again.stdout, /configured \(unchanged\)/);
  });

  it('each node writes its human-readable log, with no token in it', async () => {
    const logs = readdirSync(testbed.logs).filter((f) => f.endsWith('.log'));
    assert.equal(logs.length, 15);
    for (const file of logs) {
      const text = readFileSync(join(testbed.logs, file), 'utf8');
      assert.match(text, /listening on/);
      assert.ok(!text.includes(testbed.token), `${file} holds the token`);
    }
  });
});

describe('the aggregator with workers missing', () => {
  it('exits non-zero naming the switch it could not reach and the worker that refused', async () => {
    const testbed = new Testbed({ nodes: 6, switches: 1 }, (c) => ((c.timeouts as { push_ms: number }).push_ms = 1500));
    let stranger: ChildProcess | undefined;
    try {
      const up = await testbed.up();
      assert.equal(up.code, 0, up.stdout);
      const [sw] = testbed.addresses('switch');
      const [, strangerAddress] = testbed.addresses('client');
      const pids = join(testbed.state, 'pids');
      process.kill(Number(readFileSync(join(pids, `${sw.replace(':', '-')}.pid`), 'utf8')), 'SIGKILL');
      process.kill(Number(readFileSync(join(pids, `${strangerAddress.replace(':', '-')}.pid`), 'utf8')), 'SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      // A worker from another cluster (another token) sits where a client should be.
      const [host, port] = strangerAddress.split(':');
      stranger = spawn(process.execPath, [MAIN, '--host', host, '--port', port, '--logs', testbed.logs], {
        env: { ...process.env, FL_TOKEN: 'another-cluster-token-entirely' },
        stdio: 'ignore',
      });
      await waitFor(async () => (await get(strangerAddress, '/health').catch(() => undefined))?.status === 200);

      const agg = await testbed.startAggregator();
      assert.equal(agg.exitCode ?? (await new Promise((r) => agg.child.on('exit', r))), 1, agg.output);
      assert.match(agg.output, new RegExp(`\\?\\?\\s+${sw.replace(/\./g, '\\.')}\\s+switch\\s+unreachable: ECONNREFUSED`));
      // Said at its first miss, while the push retries: a round that starts meanwhile goes on without it.
      assert.match(agg.output, new RegExp(`worker ${sw.replace(/\./g, '\\.')} is not answering yet \\(ECONNREFUSED\\): the push retries`));
      assert.match(agg.output, new RegExp(`NO\\s+${strangerAddress.replace(/\./g, '\\.')}\\s+client\\s+refused: 401: the token is not ${testbed.addresses('aggregator')[0].replace(/\./g, '\\.')}'s here`));
      assert.match(agg.output, /the experiment cannot start/);
      assert.match(agg.output, new RegExp(`switch ${sw.replace(/\./g, '\\.')} unreachable: ECONNREFUSED`));
      assert.match(agg.output, /\d+ of \d+ clients can take part, but a round needs at least \d+/);
    } finally {
      stranger?.kill('SIGKILL');
      await testbed.down();
    }
  });
});
