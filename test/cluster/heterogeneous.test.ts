/**
 * Machines as a lab has them, on the loopback testbed: one client at a quarter of a core beside two
 * at a whole one (cgroups, measured at `up`), and a schedule in config.json that the testbed driver
 * carries out as the rounds go: a client killed at round 3, a cpu share raised at round 4, a client
 * stopped for 10 s at round 5, the killed one started again at round 6. Each is checked where a
 * user would look: events.json, the aggregator's round lines and logs, the report's round table.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { computeProblem, groupsOf } from '../../src/emulate/cgroups';
import { testbedTag } from '../../src/emulate/plan';
import type { EventRecord } from '../../src/emulate/schedule';
import type { RoundMetrics } from '../../src/outputs';
import { formatConfig } from '../../src/config/testbed';
import { runAgain, runExperiment, Testbed, type Result } from '../helpers/cluster';

const unmet = computeProblem();
// CI runs as root with cgroup v1 mounted: there it must run, not skip.
const why = process.env.CI ? undefined : unmet;

/** Heartbeats 5 s apart: a client stopped for 10 s is not declared down (three missed: 15 s), so it holds its round. */
const TIMEOUTS = { push_ms: 30_000, request_ms: 30_000, round_ms: 300_000, heartbeat_ms: 5000 };

describe('compute shares and a schedule of events on the loopback testbed', { skip: why }, () => {
  const experiment = 'heterogeneous';
  const testbed = new Testbed({ nodes: 5, switches: 1, rounds: 7, he: false, experiment, trainSize: 'all' }, (config: Record<string, any>) => {
    const [killed, stopped, slow] = Object.keys(config.others).filter((a) => config.others[a].type === 'client');
    config.model = { architecture: 'mlp', hidden_units: 32 };
    config.timeouts = TIMEOUTS;
    config.compute = { client: { cpu: 1 }, [slow]: { cpu: 0.25, memory_mb: 2048 } };
    config.events = [
      { at_round: 3, on: killed, do: 'kill' },
      { at_round: 4, on: slow, do: 'cpu', cpu: 1 },
      { at_round: 5, on: stopped, do: 'stop', for_s: 10 },
      { at_round: 6, on: killed, do: 'start' },
    ];
  });
  const [killed, stopped, slow] = testbed.addresses('client');
  const tag = testbedTag(testbed.state);
  let up: Result;
  let run: { code: number | null; output: string };
  let groupsWhileUp: string[] = [];
  let overselected: Awaited<ReturnType<typeof runAgain>>;
  const outputs = join(testbed.outputs, experiment);
  const rows = (): RoundMetrics[] => JSON.parse(readFileSync(join(outputs, 'metrics.json'), 'utf8')).rounds;
  const events = (): EventRecord[] => JSON.parse(readFileSync(join(outputs, 'events.json'), 'utf8')).events;
  /** A client's iteration log: its rounds, as it timed them on its own clock (every node is on this machine). */
  const entries = (client: string): { round: number; end_time: string; train_ms?: number }[] =>
    JSON.parse(readFileSync(join(testbed.logs, `${client.replace(':', '-')}_${experiment}.json`), 'utf8')).iteration;
  /** A client's training time in each round it trained. */
  const trainMs = (client: string): Map<number, number> => new Map(entries(client).flatMap((e) => (e.train_ms !== undefined ? [[e.round, e.train_ms]] : [])));
  /** When a client had its update taken in a round. */
  const takenAt = (client: string, round: number): number => Date.parse(entries(client).find((e) => e.round === round)!.end_time);
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];

  before(async () => {
    up = await testbed.up();
    assert.equal(up.code, 0, up.stdout + up.stderr);
    groupsWhileUp = groupsOf(tag);
    // First, on the same workers, the straggler deadline: all three selected, closing once two are in plus 500 ms, so the
    // slow one is left out (over-selection's choice of whom to select is the unit tests' and the bench's; the schedule waits for its own experiment).
    overselected = await runAgain(testbed, 'overselect', { rounds: 3, stragglers: { close_fraction: 0.66, grace_ms: 500 } }, 120_000);
    writeFileSync(testbed.configFile, formatConfig(testbed.config));
    run = await runExperiment(testbed, 300_000, ['--log-level', 'info']);
  }, { timeout: 440_000 });
  after(() => testbed.down());

  it('puts each client in its own cgroup and measures the share at `up`, beside the configured one', () => {
    const output = up.stdout;
    for (const worker of testbed.addresses().filter((a) => testbed.config.others[a].type !== 'aggregator')) assert.ok(groupsWhileUp.includes(`cpu/fl-${tag}-${worker.replace(':', '-')}`), `no cpu group for ${worker}: ${groupsWhileUp}`);
    // The share a busy loop got inside the group, and the memory limit the kernel holds for it (read back, not the config's).
    const measured = new RegExp(`${slow.replace(':', '-').replace(/\./g, '\\.')}\\s+0\\.25 of a core, 2048 MB\\s+measured (\\d\\.\\d\\d) of a core, limit 2048 MB`).exec(output);
    assert.ok(measured, output);
    // A quota of 25 ms in 100 ms cannot give more than a quarter; a share far under it would be the host's load.
    assert.ok(Number(measured[1]) <= 0.3 && Number(measured[1]) >= 0.1, `the quarter-core machine measured ${measured[1]} of a core`);
  });

  // Capped, 3.0-4.4x on this machine, and 2.46x once on CI's (its share measured within bounds at up); uncapped
  // (a whole core for the slow one too), 0.95x. The bounds sit well between, so load or a quicker machine does not fail them
  // (raised to a core, it trains about as the others do: capped against raised is about the first ratio again).
  it('trains at least 1.8x slower at a quarter of a core than at a whole one, in the same rounds, until its share is raised', () => {
    assert.equal(run.code, 0, run.output);
    const slowMs = trainMs(slow);
    const fastMs = trainMs(stopped);
    // Rounds 1-3, before the schedule raised the slow client's share at round 4.
    const capped = [1, 2, 3].filter((r) => slowMs.has(r) && fastMs.has(r));
    assert.ok(capped.length >= 2, `too few rounds with both: ${[...slowMs.keys()]} / ${[...fastMs.keys()]}`);
    const ratio = median(capped.map((r) => slowMs.get(r)! / fastMs.get(r)!));
    console.log(`# training at 0.25 of a core against 1: ${ratio.toFixed(2)}x (rounds ${capped.join(', ')})`);
    assert.ok(ratio >= 1.8, `the quarter-core client trained only ${ratio.toFixed(2)}x slower`);
    const raised = [5, 6, 7].filter((r) => slowMs.has(r)).map((r) => slowMs.get(r)!);
    assert.ok(raised.length, 'the slow client trained in no round after its share was raised');
    assert.ok(median(capped.map((r) => slowMs.get(r)!)) >= 1.5 * median(raised), `raising its share to a core did not speed it up: ${[...slowMs]}`);
  });

  it('records each event in events.json at the round it was due, and every one was carried out', () => {
    const records = events();
    const find = (what: string, on: string) => records.find((e) => e.do === what && e.targets.includes(on));
    for (const [what, on, round] of [['kill', killed, 3], ['cpu', slow, 4], ['stop', stopped, 5], ['start', killed, 6]] as const) {
      const record = find(what, on);
      assert.ok(record, `no ${what} of ${on} in events.json: ${JSON.stringify(records)}`);
      assert.equal(record.round, round, `${what} of ${on}`);
      assert.ok(record.ok, `${what} of ${on} failed: ${record.detail}`);
    }
    const stop = find('stop', stopped)!;
    const resumed = find('continue', stopped);
    assert.ok(resumed, 'the stopped client was never let go');
    const held = (Date.parse(resumed.time) - Date.parse(stop.time)) / 1000;
    assert.ok(held >= 10 && held < 11.5, `stopped for ${held} s, not 10`);
  });

  it('shows each event at its round: the killed client missing from round 3, the stopped one holding round 5, both in the round lines and the report', () => {
    const byRound = new Map(rows().map((r) => [r.round, r]));
    assert.ok(byRound.get(3)!.missing.includes(killed) || byRound.get(3)!.clients === 2, `round 3: ${JSON.stringify(byRound.get(3))}`);
    for (const r of [4, 5]) assert.equal(byRound.get(r)!.clients, 2, `round ${r} ran without the killed client: ${JSON.stringify(byRound.get(r))}`);
    // The aggregator's own log says the killed client went down after round 2, before the stop at round 5.
    const at = (pattern: string) => run.output.search(new RegExp(pattern.replace(/\./g, '\\.')));
    const down = at(`worker ${killed} is down`);
    assert.ok(down > at('round   2/7') && down < at('round   5/7'), `${killed} went down out of its rounds:\n${run.output}`);
    // Round 5 was held by the stopped client: it came back after 10 s and its update made the sum.
    const five = byRound.get(5)!;
    assert.equal(five.held_by, stopped, JSON.stringify(five));
    // Against the clients' own logs: when each had its update taken. The round's two: the slow one (now at a core) and the stopped one.
    const realHold = takenAt(stopped, 5) - takenAt(slow, 5);
    assert.ok(realHold > 5000, `${stopped} came only ${realHold} ms after ${slow}: was it stopped in its training?`);
    assert.ok(Math.abs(five.straggling_ms! - realHold) < 1000, `straggling_ms ${five.straggling_ms}, but ${stopped} came ${realHold} ms after the median client`);
    assert.deepEqual(five.missing, []);
    for (const [round, words] of [[3, `kill ${killed}`], [4, `cpu ${slow}`], [5, `stop ${stopped}`]] as const) {
      const line = run.output.split('\n').find((l) => l.startsWith(`round ${String(round).padStart(3)}/`));
      assert.ok(line?.includes(`[schedule: ${words}`), `round ${round}'s line does not name "${words}": ${line}`);
    }
    const report = readFileSync(join(outputs, 'report.html'), 'utf8');
    assert.match(report, /<th[^>]*>events<\/th>/);
    assert.match(report, new RegExp(`<tr><td>3</td>(?:(?!<tr>).)*<td>kill ${killed.replace(/\./g, '\\.')}</td>`));
    assert.match(report, /Where each round/);
  });

  it('under the straggler deadline closes each round without the slow client, its training counted as wasted in the round table', () => {
    // Every round: all three selected, the fast two in, the switch waits out the grace for the slow one, then forwards without it.
    for (const row of overselected.rows) {
      assert.deepEqual([row.clients, row.missing], [2, [slow]], `round ${row.round}: ${JSON.stringify(row)}`);
      assert.ok(row.waiting_ms >= 450 && row.waiting_ms < 2500, `round ${row.round} waited ${row.waiting_ms} ms for a grace of 500`);
    }
    assert.match(overselected.output, new RegExp(`round 1: no update from ${slow.replace(/\./g, '\\.')}`));
    // The report's round table: the slow client's client-seconds of training, thrown away, each round (the last one's too).
    const cells = [...overselected.report.matchAll(new RegExp(`<td title="${slow.replace(/\./g, '\\.')}">(\\d+\\.\\d\\d) \\(1\\)</td>`, 'g'))].map((m) => Number(m[1]));
    assert.equal(cells.length, 3, overselected.report.slice(overselected.report.indexOf('<h2>Rounds')));
    assert.ok(cells.every((s) => s > 0.5), `wasted: ${cells}`);
    assert.match(overselected.report, /each switch and the aggregator close once 66% of their clients are in, plus 500 ms/);
  });

  it('removes the compute groups at `down`', async () => {
    const down = await testbed.down();
    assert.equal(down.code, 0, down.stdout + down.stderr);
    // Every worker had a group (the switch too, with the host's CPU), so all weighed alike.
    assert.match(down.stdout, /removed the compute groups of 4 machines/);
    assert.deepEqual(groupsOf(tag), []);
  });
});
