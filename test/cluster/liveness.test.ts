/**
 * Faults the aggregator must notice and act on, with real processes on loopback: a switch that
 * hangs (SIGSTOP) and comes back (SIGCONT), and workers whose role cannot start. The round timeouts
 * are long (300 s): a test that passes did not wait for a deadline.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RoundMetrics } from '../../src/outputs';
import { get, MAIN, Testbed, waitFor, type LaunchedAggregator } from '../helpers/cluster';

const LONG_ROUNDS = { push_ms: 30_000, request_ms: 10_000, round_ms: 300_000, heartbeat_ms: 300 };
const escape = (address: string) => address.replace(/\./g, '\\.');

describe('a hung switch (SIGSTOP, then SIGCONT)', () => {
  const ROUNDS = 6;
  const testbed = new Testbed({ nodes: 9, switches: 2, rounds: ROUNDS, trainSize: 'all' }, (config: Record<string, any>) => {
    config.experiment = 'hung';
    config.model = { architecture: 'mlp', hidden_units: 16 };
    config.timeouts = LONG_ROUNDS;
  });
  const [aggregator] = testbed.addresses('aggregator');
  const [hung] = testbed.addresses('switch');
  const behind = testbed.addresses('client').filter((c) => (testbed.config.others[c] as { switch?: string }).switch === hung);
  const metrics = (): RoundMetrics[] => JSON.parse(readFileSync(join(testbed.outputs, 'hung', 'metrics.json'), 'utf8')).rounds;
  const readLog = (worker: string) => {
    try {
      return readFileSync(join(testbed.logs, `${worker.replace(':', '-')}.log`), 'utf8');
    } catch (err) {
      return (err as Error).message;
    }
  };
  /** The rounds a client trained in, from the aggregator's central log (so the check above cannot pass on a log it never read). */
  const trainedRounds = (client: string): number[] =>
    JSON.parse(readFileSync(join(testbed.logs, 'cluster', 'hung', `${client.replace(':', '-')}_hung.json`), 'utf8')).iteration.map((e: { round: number }) => e.round);
  let agg: LaunchedAggregator;
  let stoppedIn = 0;
  let exitCode: number | null = null;

  before(async () => {
    assert.equal((await testbed.up()).code, 0);
    agg = testbed.launchAggregator();
    // What a stall needs to be understood: what the aggregator says it waits for, and what the hung switch and its clients logged.
    const diagnose = async () => {
      const status = await get(aggregator, '/a/status', testbed.token).then((r) => JSON.stringify(r.body), (err) => `no status: ${err.message}`);
      const logs = [hung, ...behind].map((w) => `--- ${w}\n${readLog(w).slice(-3000)}`).join('\n');
      return `${agg.output.slice(-6000)}\n/a/status ${status}\n${logs}`;
    };
    const stage = (what: string) => async (err: Error) => {
      throw new Error(`${what}: ${err.message}\n${await diagnose()}`);
    };
    await waitFor(async () => {
      const status = (await get(aggregator, '/a/status', testbed.token).catch(() => undefined))?.body;
      stoppedIn = status?.round ?? 0;
      // Training is the moment wanted; a short round may slip between two polls, and the next one then serves.
      return status?.round >= 2 && ['training', 'selection'].includes(status.stage);
    }, 120_000).catch(stage('round 2 never trained'));
    process.kill(testbed.pidOf(hung), 'SIGSTOP');
    await waitFor(async () => new RegExp(`worker ${escape(hung)} is down`).test(agg.output), 30_000).catch(stage('never declared down'));
    // The experiment goes on without it for a round at least, then it wakes up.
    await waitFor(async () => (await get(aggregator, '/a/status', testbed.token)).body.rounds_done >= stoppedIn, 60_000).catch(stage(`round ${stoppedIn} never finished`));
    process.kill(testbed.pidOf(hung), 'SIGCONT');
    // Well inside the hook's budget, so a stall reports what the aggregator said.
    const stalled = new Promise<null>((_, reject) => setTimeout(() => void diagnose().then((d) => reject(new Error(`stalled:\n${d}`))), 150_000).unref());
    exitCode = await Promise.race([agg.exited, stalled]);
  }, { timeout: 240_000 });
  after(() => {
    try {
      process.kill(testbed.pidOf(hung), 'SIGCONT');
    } catch {}
    return testbed.down();
  });

  it('is declared down after missed heartbeats, naming how long it was silent', () => {
    assert.match(agg.output, new RegExp(`worker ${escape(hung)} is down \\(.*silent for 3 heartbeats \\(0\\.9 s\\)\\)`));
  });

  it('the round it hung in goes on without it (or starts again), without waiting for a deadline', () => {
    assert.equal(exitCode, 0, agg.output);
    // The stop lands in round `stoppedIn`, or (had the switch forwarded already) in the next one.
    // Run again only counts when the hung switch is why: the aggregator said it went down in that round.
    // Without it: every client beneath it missing, or (stopped while the round selected) none of them trained in it.
    const wentDown = (round: number) => agg.output.includes(`round ${round}: ${hung} went down; the round goes on without the clients beneath it`);
    const trainedIn = (client: string, round: number) => trainedRounds(client).includes(round);
    const without = (m: RoundMetrics) => behind.every((c) => m.missing.includes(c) || !trainedIn(c, m.round));
    const hit = metrics().filter((m) => m.round >= stoppedIn && ((m.retries > 0 && wentDown(m.round)) || without(m)));
    assert.ok(hit.length > 0, JSON.stringify(metrics()));
    assert.ok(hit[0].round <= stoppedIn + 1, `the first round without the switch is ${hit[0].round}`);
    for (const row of metrics()) assert.ok(row.round_ms < LONG_ROUNDS.round_ms / 2, `round ${row.round} took ${row.round_ms} ms`);
  });

  it('is up again after SIGCONT, and its clients take part in later rounds', () => {
    assert.match(agg.output, new RegExp(`worker ${escape(hung)} is answering again`));
    const later = metrics().filter((m) => m.round > stoppedIn + 1);
    assert.ok(later.length > 0, 'rounds after it woke up');
    assert.ok(later.some((m) => behind.every((c) => !m.missing.includes(c)) && m.clients === testbed.addresses('client').length), JSON.stringify(later));
    for (const client of behind) assert.ok(trainedRounds(client).some((round) => round > stoppedIn + 1), `${client} trained in ${trainedRounds(client)}`);
  });
});

describe('workers whose role cannot start', () => {
  const testbed = new Testbed({ nodes: 9, switches: 1, rounds: 2, trainSize: 'all' }, (config: Record<string, any>) => {
    config.experiment = 'nokey';
    config.model = { architecture: 'mlp', hidden_units: 16 };
    config.he = { enabled: true, key_holder: 'clients' };
    config.timeouts = LONG_ROUNDS;
  });
  const clients = testbed.addresses('client');
  const restarted: ChildProcess[] = [];
  /** Starts a client again as a user who forgot its key would: --he-key names a file that is not there. */
  const withoutKey = async (address: string) => {
    testbed.kill(address);
    const [host, port] = address.split(':');
    await new Promise((r) => setTimeout(r, 200));
    const child = spawn(process.execPath, [MAIN, '--host', host, '--port', port, '--logs', testbed.logs, '--he-key', '/nonexistent/he-secret.json'], {
      env: { ...process.env, FL_TOKEN: testbed.token },
      stdio: 'ignore',
    });
    restarted.push(child);
    await waitFor(async () => (await get(address, '/health').catch(() => undefined))?.status === 200, 30_000);
  };
  before(async () => {
    assert.equal((await testbed.up()).code, 0);
  }, { timeout: 60_000 });
  after(async () => {
    restarted.forEach((child) => child.kill('SIGKILL'));
    await testbed.down();
  });

  it('goes on without two that failed while the quorum holds, naming each and why', { timeout: 180_000 }, async () => {
    await withoutKey(clients[0]);
    await withoutKey(clients[1]);
    const agg = testbed.launchAggregator();
    assert.equal(await agg.exited, 0, agg.output);
    for (const client of clients.slice(0, 2)) {
      assert.match(agg.output, new RegExp(`NO\\s+${escape(client)}\\s+client\\s+failed to start: .*cannot read /nonexistent/he-secret\\.json`));
    }
    assert.match(agg.output, /going on without 2 workers \(the quorum holds\)/);
    const rows: RoundMetrics[] = JSON.parse(readFileSync(join(testbed.outputs, 'nokey', 'metrics.json'), 'utf8')).rounds;
    assert.equal(rows.length, 2);
    for (const row of rows) {
      assert.ok(row.clients > 0 && row.clients <= clients.length - 2, `round ${row.round} summed ${row.clients} clients`);
      assert.ok(!row.missing.includes(clients[0]) && !row.missing.includes(clients[1]), 'the failed clients were never selected');
    }
    const health = await get(clients[0], '/health');
    assert.equal(health.body.status, 'failed');
    assert.match(health.body.error, /cannot read \/nonexistent\/he-secret\.json/);
  });

  it('stops at once, exit code 1, when too few are left, naming every worker that failed', { timeout: 120_000 }, async () => {
    for (const client of clients.slice(2, 4)) await withoutKey(client);
    const agg = testbed.launchAggregator();
    assert.equal(await agg.exited, 1, agg.output);
    assert.match(agg.output, /the experiment cannot start/);
    assert.match(agg.output, new RegExp(`${clients.length - 4} of ${clients.length} clients can take part, but a round needs at least 4`));
    // One line for the four, as they failed alike.
    assert.match(agg.output, new RegExp(`4 clients \\(${clients.slice(0, 4).map(escape).join(', ')}\\) failed: .*cannot read /nonexistent/he-secret\\.json`));
  });
});
