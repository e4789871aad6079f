/** main.js and the launcher as a user types them: config mistakes named, flags checked, workers started and stopped. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isAlive } from '../../scripts/testbed';
import { MAIN, node, Testbed, waitFor } from '../helpers/cluster';
import { tempDir } from '../helpers/temp-dir';

describe('the command line', () => {
  it('names every mistake in a config file and exits 2', async () => {
    const testbed = new Testbed({ nodes: 4, switches: 1 }, (c) => {
      c.rounds = 'many';
      (c.training as Record<string, unknown>).epoch = 2;
    });
    const res = await node(['main.js', 'agg', '--config', testbed.configFile], { env: { FL_TOKEN: '' } });
    assert.equal(res.code, 2);
    assert.match(res.stderr, /2 problems/);
    assert.match(res.stderr, /rounds: .*expected number/);
    assert.match(res.stderr, /training: unknown key "epoch" \(did you mean "epochs"\?\)/);
  });

  it('agg --check validates and prints the topology without starting anything', async () => {
    const res = await node(['main.js', 'agg', '--check', '--config', 'config.json']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /valid\. experiment mnist-mlp, 20 rounds, strategy fedavg\n/);
    assert.equal(res.stdout.match(/ client /g)?.length, 12);
    // With a DP budget it says where the run will stop.
    const testbed = new Testbed({ nodes: 4, switches: 1, he: false }, (c) => (c.dp = { mode: 'central', clip: 1, noise_multiplier: 1, max_epsilon: 10 }));
    const privacy = await node(['main.js', 'agg', '--check', '--config', testbed.configFile]);
    assert.equal(privacy.code, 0, privacy.stderr);
    assert.match(privacy.stdout, /differential privacy: ε 9\.01 at δ 0\.00001 after 3 rounds: dp\.max_epsilon 10 stops the run there, before round 4 of 20/);
  });

  it('compare puts two runs side by side, and names a folder that is not a run', async () => {
    const root = tempDir('fl-compare-');
    const run = (name: string, epochs: number) => {
      const dir = join(root, name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ experiment: name, training: { epochs } }));
      const rows = [1, 2].map((round) => ({ round, accuracy: 0.5 + round / 10, loss: 1, clients: 2, samples: 2, round_ms: 1000, selection_ms: 0, training_ms: 900, waiting_ms: 0, aggregation_ms: 50, evaluation_ms: 50, bytes_up: 1e6, bytes_down: 1e6, retries: 0, missing: [] }));
      writeFileSync(join(dir, 'metrics.json'), JSON.stringify({ rounds: rows }));
      return dir;
    };
    const out = join(root, 'side-by-side');
    const res = await node(['main.js', 'compare', run('one', 1), run('three', 3), '--out', out]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`wrote ${join(out, 'compare.html').replace(/[.]/g, '\\.')}`));
    assert.deepEqual(readdirSync(join(out, 'charts')).sort(), ['accuracy-time.png', 'accuracy.png', 'bytes.png', 'phases.png']);
    assert.match(readFileSync(join(out, 'compare.html'), 'utf8'), /<th>training\.epochs<\/th><td>1<\/td><td>3<\/td>/);
    const wrong = await node(['main.js', 'compare', join(root, 'one'), root]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /config\.json is missing: is .* an experiment's outputs folder\?/);
  });

  it('refuses worker flags it cannot use, naming the flag', async () => {
    const badId = await node(['main.js', '--id', '../elsewhere', '--port', '0'], { env: { FL_TOKEN: 'x'.repeat(32) } });
    assert.notEqual(badId.code, 0);
    assert.match(badId.stderr, /option '--id <id>' argument '\.\.\/elsewhere' is invalid/);
    const badLevel = await node(['main.js', '--log-level', 'loud', '--port', '0'], { env: { FL_TOKEN: 'x'.repeat(32) } });
    assert.notEqual(badLevel.code, 0);
    assert.match(badLevel.stderr, /'loud' is invalid\. Allowed choices are error, warn, info, debug/);
  });

  it('a worker started with --id, --logs and --debug writes its log under that name, there', async () => {
    const logs = tempDir('fl-flags-');
    const worker = spawn(process.execPath, [MAIN, '--id', 'rack2-node7', '--host', '127.0.0.1', '--port', '0', '--logs', logs, '--debug'], {
      env: { ...process.env, FL_TOKEN: 'x'.repeat(32) },
      stdio: 'ignore',
    });
    try {
      const log = () => (existsSync(join(logs, 'rack2-node7.log')) ? readFileSync(join(logs, 'rack2-node7.log'), 'utf8') : '');
      // Its first debug line comes after it is listening: waited for, not looked for the moment it listens.
      await waitFor(async () => / debug /.test(log())).catch(() => assert.fail(`--debug writes debug lines; the log has: ${log()}`));
      assert.match(log(), /listening on 127\.0\.0\.1:\d+/);
    } finally {
      worker.kill('SIGTERM');
    }
  });

  it('refuses to start a worker without a cluster token', async () => {
    const res = await node(['main.js', '--host', '127.0.0.1', '--port', '0'], { env: { FL_TOKEN: '' } });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /no token: pass --token-file FILE or set \$FL_TOKEN/);
  });

  it('refuses a port that is not one', async () => {
    const res = await node(['main.js', '--port', 'http'], { env: { FL_TOKEN: 'x'.repeat(20) } });
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /--port.*expected a port number/);
  });

  it('refuses a --nodes list it cannot serve, naming what is wrong', async () => {
    const env = { FL_TOKEN: 'x'.repeat(20) };
    const twice = await node(['main.js', '--nodes', '127.0.0.1:5001,127.0.0.1:5001'], { env });
    assert.match(twice.stderr, /--nodes.*a node is named twice/);
    const portless = await node(['main.js', '--nodes', '127.0.0.1'], { env });
    assert.match(portless.stderr, /--nodes.*each node as host:port/);
    const named = await node(['main.js', '--nodes', '127.0.0.1:5001,127.0.0.1:5002', '--id', 'one'], { env });
    assert.match(named.stderr, /--id names one node: with --nodes each is named <host>-<port>/);
    const both = await node(['main.js', '--nodes', '127.0.0.1:5001,127.0.0.1:5002', '--port', '5003'], { env });
    assert.match(both.stderr, /--nodes names each node's address: drop --port/);
    for (const res of [twice, portless, named, both]) assert.notEqual(res.code, 0);
  });

  it('testbed down stops every worker it started', async () => {
    const testbed = new Testbed({ nodes: 4, switches: 1 });
    assert.equal((await testbed.up()).code, 0);
    const pids = readdirSync(join(testbed.state, 'pids')).map((f) => Number(readFileSync(join(testbed.state, 'pids', f), 'utf8')));
    assert.equal(pids.length, 3);
    const down = await testbed.down();
    assert.match(down.stdout, /stopped 3 workers/);
    for (const pid of pids) assert.equal(isAlive(pid), false, `worker ${pid} still runs`);
    assert.deepEqual(readdirSync(join(testbed.state, 'pids')), []);
  });
});
