/** A round's floor, worked by hand on a small tree: the slowest summed client's path, or a link that carries too much. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExperimentConfig } from '../../../src/config/load';
import { testbedConfig } from '../../../src/config/testbed';
import type { NodeRecords } from '../../../src/log/cluster-log';
import type { RoundMetrics } from '../../../src/outputs';
import { overFloor, pathsOf, roundFloors } from '../../../src/report/floor';

const row = (round: number, missing: string[] = [], roundMs = 4000): RoundMetrics => ({
  round, accuracy: 0.9, loss: 0.3, clients: 2, samples: 100, round_ms: roundMs, selection_ms: 0, training_ms: 3000,
  waiting_ms: 0, aggregation_ms: 300, evaluation_ms: 200, bytes_up: 0.5e6, bytes_down: 1e6, retries: 0, missing,
});
const entry = (round: number, fields: Record<string, number>) => ({ round, start_time: '', end_time: '', byte_received: 0, byte_send: 0, ...fields });

describe("a round's floor", () => {
  // Two clients under one switch under the aggregator: 127.0.9.1, .2 under .3, the aggregator .4.
  const config = parseExperimentConfig({ ...testbedConfig({ base: '127.0.9', nodes: 4, switches: 1 }), links: { client: { rate_mbit: 10 }, switch: { rate_mbit: 100 }, aggregator: { rate_mbit: 100 } } });
  const [c1, c2, sw, aggregator] = ['127.0.9.1:5000', '127.0.9.2:5000', '127.0.9.3:5000', '127.0.9.4:5000'];
  const records = (switchSent = 2.5e6): NodeRecords[] => [
    { node: c1, address: c1, role: 'client', iteration: [entry(1, { train_ms: 1000, encrypt_ms: 200, queue_ms: 5000, byte_received: 1e6, byte_send: 0.5e6 })] },
    { node: c2, address: c2, role: 'client', iteration: [entry(1, { train_ms: 500, encrypt_ms: 200, byte_received: 1e6, byte_send: 0.5e6 })] },
    { node: sw, address: sw, role: 'switch', iteration: [entry(1, { he_sum_ms: 100, byte_received: 2e6, byte_send: switchSent })] },
  ];

  it('is the slowest summed client\'s path: its work (not its queueing), the model down and update up at each hop\'s slower rate, the aggregator\'s work', () => {
    const paths = pathsOf(config);
    assert.deepEqual(paths.above, { [c1]: [sw], [c2]: [sw] });
    assert.deepEqual(paths.mbit, { [c1]: 10, [c2]: 10, [sw]: 100, [aggregator]: 100 });
    const floor = roundFloors([row(1)], records(), paths).get(1)!;
    // c1: work 1000 + 200; 1.5 MB at 10 Mbit/s (1200 ms) to the switch, at 100 (120 ms) to the aggregator; the aggregator's 300 + 200.
    assert.deepEqual(floor, { ms: 3020, client: c1, parts: { work: 1200, wire: 1320, aggregator: 500 } });
    assert.equal(overFloor(row(1), floor), '1.32x');
    // Left out of the sum, c1's path is no floor: c2's is (700 of work).
    assert.equal(roundFloors([row(1, [c1])], records(), paths).get(1)!.ms, 2520);
  });

  it('is a link when one carries more than any path takes: a switch sending 50 MB over 100 Mbit/s (4 s)', () => {
    const floor = roundFloors([row(1, [], 10_000)], records(50e6), pathsOf(config)).get(1)!;
    assert.deepEqual(floor, { ms: 4000 + 500, parts: { work: 0, wire: 4000, aggregator: 500 } });
    // Past the round itself it cannot be (a worker's word, a clock): the round is its own floor.
    assert.deepEqual(roundFloors([row(1)], records(50e6), pathsOf(config)).get(1)!, { ms: 4000, parts: { work: 0, wire: 4000, aggregator: 500 }, clamped: true });
  });

  it('on loopback the wire costs nothing: the slowest client\'s work and the aggregator\'s', () => {
    const loopback = pathsOf(parseExperimentConfig(testbedConfig({ base: '127.0.9', nodes: 4, switches: 1 })));
    assert.deepEqual(loopback.mbit, {});
    assert.equal(roundFloors([row(1)], records(), loopback).get(1)!.ms, 1200 + 500);
  });
});
