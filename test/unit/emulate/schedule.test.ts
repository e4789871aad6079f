/** config.json's `compute` and `events`: checked as config.json is read, each machine's share, and the schedule run against a stand-in testbed. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, parseExperimentConfig } from '../../../src/config/load';
import { joinCommand } from '../../../src/emulate/cgroups';
import { planTestbed } from '../../../src/emulate/plan';
import { describeEvent, dueEvents, targetsOf, type EventRecord } from '../../../src/emulate/schedule';
import { runSchedule, type MachineDriver } from '../../../src/emulate/schedule-runner';
import { roundsChart } from '../../../src/report/charts';
import type { RoundMetrics } from '../../../src/outputs';
import { ROOT } from '../../helpers/cluster';
import { tempDir } from '../../helpers/temp-dir';

const reference = JSON.parse(readFileSync(join(ROOT, 'config.json'), 'utf8'));
const nodes = [
  { address: '10.10.1.1:5000', role: 'client' },
  { address: '10.10.1.2:5000', role: 'client' },
  { address: '10.10.1.2:6000', role: 'client' },
  { address: '10.10.1.13:5000', role: 'switch' },
];

describe('compute and events in config.json', () => {
  it('takes a share by role or machine, the machine winning, and the larger share where roles share a machine', () => {
    const config = parseExperimentConfig({ ...reference, compute: { client: { cpu: 1, memory_mb: 512 }, '10.10.1.3': { cpu: 0.25 }, switch: { cpu: 2 } } });
    const compute = (host: string) => planTestbed(config, '/tmp/s').machines.find((m) => m.host === host)!.compute;
    assert.deepEqual(compute('10.10.1.1'), { cpu: 1, memory_mb: 512 });
    assert.deepEqual(compute('10.10.1.3'), { cpu: 0.25 });
    assert.deepEqual(compute('10.10.1.13'), { cpu: 2 });
    assert.equal(compute('10.10.1.15'), undefined, 'the aggregator has the host\'s compute');
  });

  it('refuses a share it cannot set, a key or an `on` that names nothing, and an event that is not whole', () => {
    const refused = (changes: Record<string, unknown>, pattern: RegExp) =>
      assert.throws(() => parseExperimentConfig({ ...reference, ...changes }), (err: ConfigError) => pattern.test(err.message) || assert.fail(err.message));
    refused({ compute: { client: { cpu: 0.001 } } }, /compute\.client\.cpu/);
    refused({ compute: { client: {} } }, /give cpu \(cores\), memory_mb, or both/);
    refused({ compute: { clients: { cpu: 1 } } }, /compute\["clients"\]: expected a role/);
    refused({ events: [{ at_round: 2, on: '10.10.9.9', do: 'kill' }] }, /events\[0\]\.on: "10\.10\.9\.9"/);
    refused({ events: [{ at_round: 2, at_s: 5, on: 'client', do: 'kill' }] }, /exactly one of at_round and at_s/);
    refused({ events: [{ on: 'client', do: 'kill' }] }, /exactly one of at_round and at_s/);
    refused({ events: [{ at_round: 2, on: 'client', do: 'stop' }] }, /for_s/);
    refused({ events: [{ at_round: 2, on: 'client', do: 'reboot' }] }, /do must be "kill", "stop", "start", "link" or "cpu"/);
    refused({ events: [{ at_round: 2, on: 'client', do: 'link', rate_mbit: 0 }] }, /rate_mbit/);
    const config = parseExperimentConfig({ ...reference, events: [{ at_s: 30, on: '10.10.1.3:5000', do: 'stop', for_s: 10 }] });
    assert.deepEqual(config.events, [{ at_s: 30, on: '10.10.1.3:5000', do: 'stop', for_s: 10 }]);
  });

  it('never hands the nodes the testbed\'s part of config.json', async () => {
    const { resolveNodeConfigs } = await import('../../../src/config/load');
    const config = parseExperimentConfig({ ...reference, compute: { client: { cpu: 1 } }, events: [{ at_round: 1, on: 'client', do: 'kill' }] });
    for (const node of resolveNodeConfigs(config).values()) assert.ok(!('compute' in node.settings) && !('events' in node.settings));
  });
});

describe('the schedule', () => {
  const kill = { at_round: 3, on: '10.10.1.2', do: 'kill' } as const;
  const stop = { at_s: 20, on: 'client', do: 'stop', for_s: 10 } as const;

  it('is due as round N opens (not while the aggregator idles before it), or at_s after round 1 opened', () => {
    assert.deepEqual(dueEvents([kill, stop], new Set(), { round: 3, opened: false, elapsed_s: 19 }), []);
    assert.deepEqual(dueEvents([kill, stop], new Set(), { round: 3, opened: true, elapsed_s: 19 }), [0]);
    assert.deepEqual(dueEvents([kill, stop], new Set(), { round: 5, opened: false, elapsed_s: 20 }), [0, 1], 'late, both at once');
    assert.deepEqual(dueEvents([kill, stop], new Set([0]), { round: 5, opened: true, elapsed_s: 20 }), [1], 'once only');
    assert.deepEqual(dueEvents([stop], new Set(), { round: 1, opened: false }), [], 'no time before round 1');
  });

  it('names every node of a role, one node by address, or every node of a machine by its IP', () => {
    assert.deepEqual(targetsOf({ ...kill, on: 'client' }, nodes), ['10.10.1.1:5000', '10.10.1.2:5000', '10.10.1.2:6000']);
    assert.deepEqual(targetsOf(kill, nodes), ['10.10.1.2:5000', '10.10.1.2:6000']);
    assert.deepEqual(targetsOf({ ...kill, on: '10.10.1.2:6000' }, nodes), ['10.10.1.2:6000']);
    assert.equal(describeEvent(stop, ['10.10.1.1:5000']), 'stop 10.10.1.1:5000 for 10 s');
    assert.equal(describeEvent({ at_round: 1, on: 'switch', do: 'link', rate_mbit: 5 }, ['a', 'b']), 'link of switch (2: a, b) to 5 Mbit/s');
  });

  it('runs each event once at its round, lets a stopped node go after for_s, and records it all in events.json', async () => {
    const outputs = tempDir('fl-schedule-');
    const done: string[] = [];
    const act = (what: string) => async (address: string) => {
      done.push(`${what} ${address}`);
      if (address === '10.10.1.13:5000') throw new Error('no such process');
      return `${what}ed`;
    };
    const driver: MachineDriver = { kill: act('kill'), stop: act('stop'), resume: act('resume'), start: act('start'), link: act('link'), cpu: act('cpu') };
    // The aggregator's state as the schedule polls it: idle, then rounds 1 to 4, then done.
    const states = [{ experiment: 'other', round: 1, stage: 'training' }, { experiment: 'x', round: 1, stage: 'idle' }, ...[1, 2, 3, 4].flatMap((round) => [{ experiment: 'x', round, stage: 'training' }, { experiment: 'x', round, stage: 'training' }])];
    const lines: string[] = [];
    const records = await runSchedule({
      experiment: 'x',
      events: [
        { at_round: 2, on: '10.10.1.1:5000', do: 'stop', for_s: 0.05 },
        { at_round: 3, on: 'switch', do: 'kill' },
        { at_round: 9, on: 'client', do: 'start' },
      ],
      nodes,
      driver,
      state: async () => states.shift() ?? { experiment: 'x', round: 4, stage: 'done', finished: true },
      outputs,
      print: (line) => lines.push(line),
      pollMs: 1,
    });
    assert.deepEqual(done, ['stop 10.10.1.1:5000', 'kill 10.10.1.13:5000', 'resume 10.10.1.1:5000']);
    assert.deepEqual(records.map((r) => [r.do, r.ok]), [['stop', true], ['kill', false], ['continue', true]]);
    assert.deepEqual(records.slice(0, 2).map((r) => r.round), [2, 3], 'each at the round it was due');
    assert.match(records[1].detail, /10\.10\.1\.13:5000: no such process/);
    const saved: { events: EventRecord[] } = JSON.parse(readFileSync(join(outputs, 'x', 'events.json'), 'utf8'));
    assert.deepEqual(saved.events, records);
    assert.ok(lines.some((l) => /kill switch.*FAILED 10\.10\.1\.13:5000: no such process|kill 10\.10\.1\.13:5000: FAILED/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /not carried out, the experiment ended first: start client .* at round 9/.test(l)), lines.join('\n'));
  });

  it('runs a command inside a group by entering it first, then becoming the command', () => {
    const [shell, flag, script, zero, ...command] = joinCommand('fl-abc-127.0.0.1-5000', ['node', 'main.js', '--port', '5000']);
    assert.deepEqual([shell, flag, zero, command], ['/bin/sh', '-c', 'sh', ['node', 'main.js', '--port', '5000']]);
    assert.equal(script, 'echo $$ > /sys/fs/cgroup/cpu/fl-abc-127.0.0.1-5000/cgroup.procs && echo $$ > /sys/fs/cgroup/memory/fl-abc-127.0.0.1-5000/cgroup.procs && exec "$@"');
  });
});

describe("the rounds chart", () => {
  const row = (round: number, fields: Partial<RoundMetrics>): RoundMetrics => ({ round, accuracy: 0.9, loss: 0.3, clients: 3, samples: 9, round_ms: 6000, selection_ms: 100, training_ms: 1000, waiting_ms: 0, aggregation_ms: 50, evaluation_ms: 50, bytes_up: 1, bytes_down: 1, retries: 0, missing: [], ...fields });

  it('stacks each round\'s parts, names the client that held a round a second or more, and rules each event at its round', () => {
    const rows = [row(1, { straggling_ms: 4800, held_by: 'c3' }), row(2, { straggling_ms: 900, held_by: 'c2', round_ms: 2100 })];
    const events = [{ index: 0, do: 'kill', on: 'c1', targets: ['c1'], round: 2, time: '', elapsed_s: 3, ok: true, detail: '' }] as EventRecord[];
    const layers = (roundsChart(rows, events) as { layer: { data: { values: Record<string, unknown>[] } }[] }).layer;
    const parts = layers[0].data.values.filter((v) => v.round === 1);
    assert.deepEqual(parts.map((v) => v.part), ['selection', 'training', 'held by the slowest', 'waiting for missing', 'aggregation', 'evaluation']);
    assert.equal(parts.reduce((sum, v) => sum + (v.s as number), 0), 6);
    assert.deepEqual(layers[1].data.values.map((v) => v.label), ['c3'], 'round 2 was held under a second: no name');
    assert.deepEqual(layers[2].data.values.map((v) => [v.round, v.label]), [[2, 'kill c1']]);
  });
});
