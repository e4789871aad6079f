/** The aggregator's central log of the cluster: what workers ship, kept once, strangers refused. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { LogBatch } from '../../../src/log/central';
import { ClusterLog, WORKER_LOG_LIMITS } from '../../../src/log/cluster-log';
import type { HttpError } from '../../../src/net/errors';

const WORKERS = new Map<string, 'client' | 'switch'>([['127.0.9.1:5000', 'client'], ['127.0.9.3:5000', 'switch']]);
const entry = (round: number, extra: Record<string, unknown> = {}) => ({
  round, start_time: 't0', end_time: 't1', byte_received: 1000 * round, byte_send: 2000 * round, ...extra,
});
const batch = (over: Partial<LogBatch> = {}): LogBatch => ({
  node: '127.0.9.1-5000', address: '127.0.9.1:5000', role: 'client', experiment: 'exp', boot: 'boot1', entries: [], ...over,
});
const tmp = () => mkdtempSync(join(tmpdir(), 'fl-observe-'));

describe('the cluster log at the aggregator', () => {
  it("keeps each worker's iteration log and its warnings in logs/cluster/<experiment>/", () => {
    const logs = tmp();
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false);
    cluster.receive(batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1, { train_ms: 50 }) }, { seq: 1, kind: 'log', level: 'warn', time: 'T', message: 'slow round' }] }));
    const file = JSON.parse(readFileSync(join(logs, 'cluster', 'exp', '127.0.9.1-5000_exp.json'), 'utf8'));
    assert.deepEqual(file.iteration.map((e: { round: number }) => e.round), [1]);
    assert.equal(file.address, '127.0.9.1:5000');
    assert.match(readFileSync(join(logs, 'cluster', 'exp', '127.0.9.1-5000.log'), 'utf8'), /^T warn \[127\.0\.9\.1-5000\] slow round\n$/);
  });

  it('writes a batch sent twice once, and takes the next boot of the same worker from seq 0', () => {
    const cluster = new ClusterLog(tmp(), 'exp', WORKERS, false);
    const first = batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }, { seq: 1, kind: 'iteration', entry: entry(2) }] });
    assert.deepEqual(cluster.receive(first), { taken: 2, duplicates: 0 });
    assert.deepEqual(cluster.receive(first), { taken: 0, duplicates: 2 });
    const overlapping = batch({ entries: [{ seq: 1, kind: 'iteration', entry: entry(2) }, { seq: 2, kind: 'iteration', entry: entry(3) }] });
    assert.deepEqual(cluster.receive(overlapping), { taken: 1, duplicates: 1 });
    assert.deepEqual(cluster.receive(batch({ boot: 'boot2', entries: [{ seq: 0, kind: 'iteration', entry: entry(4) }] })), { taken: 1, duplicates: 0 });
    assert.deepEqual(cluster.records()[0].iteration.map((e) => e.round), [1, 2, 3, 4]);
  });

  it('refuses strangers, impostors and other experiments, and writes nothing for them', () => {
    const logs = tmp();
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false);
    assert.throws(() => cluster.receive(batch({ address: '127.0.9.9:5000' })), /not a client of experiment exp/);
    assert.throws(() => cluster.receive(batch({ role: 'switch' })), /not a switch of experiment exp/);
    assert.throws(() => cluster.receive(batch({ experiment: 'other' })), /these logs are for other/);
    assert.deepEqual(cluster.records(), []);
    assert.deepEqual(readdirSync(logs, { recursive: true }), ['cluster', join('cluster', 'exp')], 'no file written');
  });

  it("files a worker's records by its address, whatever id it gives: one giving another's id cannot write into the other's, nor keep it out", () => {
    const logs = tmp();
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false);
    const squatter = batch({ address: '127.0.9.3:5000', role: 'switch', entries: [{ seq: 5, kind: 'iteration', entry: entry(9) }, { seq: 6, kind: 'log', level: 'error', time: 'T', message: 'forged' }] });
    cluster.receive(squatter);
    cluster.receive(batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }, { seq: 1, kind: 'log', level: 'warn', time: 'T', message: 'own' }] }));
    assert.deepEqual(cluster.records().map((r) => [r.address, r.node, r.iteration.map((e) => e.round)]), [['127.0.9.1:5000', '127.0.9.1-5000', [1]], ['127.0.9.3:5000', '127.0.9.3-5000', [9]]]);
    assert.match(readFileSync(join(logs, 'cluster', 'exp', '127.0.9.1-5000.log'), 'utf8'), /^T warn \[127\.0\.9\.1-5000\] own\n$/);
    assert.match(readFileSync(join(logs, 'cluster', 'exp', '127.0.9.3-5000.log'), 'utf8'), /^T error \[127\.0\.9\.3-5000\] forged\n$/);
  });

  it('keeps at most its limits of one worker: round records, lines, runs; past them a batch is refused whole', () => {
    const cluster = new ClusterLog(tmp(), 'exp', WORKERS, false);
    const lines = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ seq: from + i, kind: 'log' as const, level: 'warn' as const, time: 'T', message: 'x' }));
    for (let at = 0; at < WORKER_LOG_LIMITS.lines; at += 5000) cluster.receive(batch({ entries: lines(at, 5000) }));
    assert.throws(() => cluster.receive(batch({ entries: lines(WORKER_LOG_LIMITS.lines, 1) })), (err: HttpError) => err.status === 413 && /has shipped 0 round records \(0 bytes\) and 20000 lines .*; at most 20000 records, 20000 lines/.test(err.reason));
    for (let boot = 1; boot < WORKER_LOG_LIMITS.boots; boot++) cluster.receive(batch({ boot: `b${boot}` }));
    assert.throws(() => cluster.receive(batch({ boot: 'one-too-many' })), /has shipped from 64 runs already/);
  });

  it('keeps at most its bytes of round records: records padded to the batch limit are refused once they pass it, and nothing of them is kept', () => {
    const cluster = new ClusterLog(tmp(), 'exp', WORKERS, false);
    const padded = (seq: number) => ({ seq, kind: 'iteration' as const, entry: entry(1, Object.fromEntries(Array.from({ length: 19 }, (_, i) => [`pad${i}`, Array.from({ length: 1000 }, () => 'x'.repeat(200))]))) });
    const perEntry = JSON.stringify(padded(0).entry).length;
    const fit = Math.floor(WORKER_LOG_LIMITS.iterationBytes / perEntry);
    for (let seq = 0; seq < fit; seq++) cluster.receive(batch({ entries: [padded(seq)] }));
    assert.throws(() => cluster.receive(batch({ entries: [padded(fit)] })), (err: HttpError) => err.status === 413);
    assert.equal(cluster.records()[0].iteration.length, fit);
  });

  it('reads its records back on resume, and drops an earlier run on a fresh start', () => {
    const logs = tmp();
    new ClusterLog(logs, 'exp', WORKERS, false).receive(batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }] }));
    assert.equal(new ClusterLog(logs, 'exp', WORKERS, true).records()[0].iteration.length, 1);
    assert.deepEqual(new ClusterLog(logs, 'exp', WORKERS, false).records(), []);
  });
});

