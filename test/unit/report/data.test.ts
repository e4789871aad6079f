/** The per-node numbers behind the charts. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RoundMetrics } from '../../../src/outputs';
import { experimentCharts } from '../../../src/report/charts';
import { meanPhases, nodeRounds } from '../../../src/report/data';

const entry = (round: number, extra: Record<string, unknown> = {}) => ({
  round, start_time: 't0', end_time: 't1', byte_received: 1000 * round, byte_send: 2000 * round, ...extra,
});

const rows: RoundMetrics[] = [1, 2, 3].map((round) => ({
  round, accuracy: 0.8 + round / 100, loss: 1 / round, clients: 2, samples: 200, round_ms: 1000, selection_ms: 10, training_ms: 700, waiting_ms: 100,
  aggregation_ms: 40 + round, evaluation_ms: 30, bytes_up: 5e6, bytes_down: 4e6, retries: 0, missing: [],
}));

describe('the numbers behind the charts', () => {
  const workers = [
    { node: 'c1', address: '127.0.9.1:5000', role: 'client' as const, iteration: [entry(1, { train_ms: 100, encrypt_ms: 20, send_ms: 5 }), entry(2, { train_ms: 300, encrypt_ms: 40, send_ms: 7 })] },
    { node: 's1', address: '127.0.9.3:5000', role: 'switch' as const, iteration: [entry(1, { aggregate_ms: 3, he_sum_ms: 9 }), entry(1, { aggregate_ms: 5, he_sum_ms: 11 })] },
  ];

  it('gives one row per node and round; a retried round counts its last try', () => {
    const perNode = nodeRounds('127.0.9.9:5000', rows, workers);
    assert.equal(perNode.filter((r) => r.role === 'aggregator').length, 3);
    const sw = perNode.filter((r) => r.node === '127.0.9.3:5000');
    assert.deepEqual(sw.map((r) => r.phases), [{ aggregate: 16 }]);
    const agg = perNode.find((r) => r.role === 'aggregator' && r.round === 2)!;
    assert.deepEqual({ sent: agg.sent, received: agg.received }, { sent: 4e6, received: 5e6 });
  });

  it('averages each phase per node', () => {
    const means = meanPhases(nodeRounds('127.0.9.9:5000', rows, workers));
    const client = Object.fromEntries(means.filter((m) => m.node === '127.0.9.1:5000').map((m) => [m.phase, m.ms]));
    assert.deepEqual(client, { train: 200, encrypt: 30, send: 6 });
  });

  it('puts every round and node into the chart specs', () => {
    const charts = experimentCharts(rows, nodeRounds('127.0.9.9:5000', rows, workers));
    assert.deepEqual((charts.accuracy.data as { values: { round: number }[] }).values.map((v) => v.round), [1, 2, 3]);
    const nodes = new Set((charts.bytes.data as { values: { node: string }[] }).values.map((v) => v.node));
    assert.deepEqual([...nodes].sort(), ['127.0.9.1:5000 (client)', '127.0.9.3:5000 (switch)', '127.0.9.9:5000 (aggregator)']);
  });
});
