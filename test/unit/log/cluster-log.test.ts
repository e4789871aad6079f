/** The aggregator's central log of the cluster: what workers ship, kept once, strangers refused. */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { LogBatch } from '../../../src/log/central';
import { ClusterLog, WORKER_LOG_LIMITS } from '../../../src/log/cluster-log';
import type { HttpError } from '../../../src/net/errors';
import { tempDir } from '../../helpers/temp-dir';

const WORKERS = new Map<string, 'client' | 'switch'>([['127.0.9.1:5000', 'client'], ['127.0.9.3:5000', 'switch']]);
const entry = (round: number, extra: Record<string, unknown> = {}) => ({
  round, start_time: 't0', end_time: 't1', byte_received: 1000 * round, byte_send: 2000 * round, ...extra,
});
const batch = (over: Partial<LogBatch> = {}): LogBatch => ({
  node: '127.0.9.1-5000', address: '127.0.9.1:5000', role: 'client', experiment: 'exp', boot: 'boot1', entries: [], ...over,
});
const tmp = () => tempDir('fl-observe-');

describe('the cluster log at the aggregator', () => {
  it("keeps each worker's iteration log and its warnings in logs/cluster/<experiment>/", () => {
    const logs = tmp();
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false);
    cluster.receive(batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1, { train_ms: 50 }) }, { seq: 1, kind: 'log', level: 'warn', time: 'T', message: 'slow round\r1 error [aggregator] forged\r\nnext\x1b[1A\u2028done' }] }));
    cluster.flush(); // as settle does, before the report
    const file = JSON.parse(readFileSync(join(logs, 'cluster', 'exp', '127.0.9.1-5000_exp.json'), 'utf8'));
    assert.deepEqual(file.iteration.map((e: { round: number }) => e.round), [1]);
    assert.equal(file.address, '127.0.9.1:5000');
    assert.match(readFileSync(join(logs, 'cluster', 'exp', '127.0.9.1-5000.log'), 'utf8'), /^T warn \[127\.0\.9\.1-5000\] slow round\n    1 error \[aggregator\] forged\n    next\\u001b\[1A\\u2028done\n$/, "a message's line breaks of any kind are its own lines, indented; other control characters written out");
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

  it('keeps at most its limits of one worker: round records, lines, runs; past them a batch is refused whole, after a resume too', () => {
    const logs = tmp();
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false);
    const lines = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ seq: from + i, kind: 'log' as const, level: 'warn' as const, time: 'T', message: 'x\ny' }));
    for (let at = 0; at < WORKER_LOG_LIMITS.lines; at += 5000) cluster.receive(batch({ entries: lines(at, 5000) }));
    const full = (err: HttpError) => err.status === 413 && /has shipped 0 round records \(0 bytes\) and 20000 lines \(640000 bytes\); at most 20000 records, 20000 lines/.test(err.reason);
    assert.throws(() => cluster.receive(batch({ entries: lines(WORKER_LOG_LIMITS.lines, 1) })), full);
    // Resumed after a crash, the aggregator counts what the worker's .log holds already.
    assert.throws(() => new ClusterLog(logs, 'exp', WORKERS, true).receive(batch({ entries: lines(WORKER_LOG_LIMITS.lines, 1) })), full);
    // Runs are counted once a batch of theirs is taken: these two are not.
    const record = [{ seq: 0, kind: 'iteration' as const, entry: entry(1) }];
    assert.throws(() => cluster.receive(batch({ boot: 'refused', entries: lines(0, WORKER_LOG_LIMITS.lines + 1) })), (err: HttpError) => err.status === 413);
    cluster.receive(batch({ boot: 'nothing new', entries: [] })); // nor one that brings nothing
    for (let boot = 1; boot < WORKER_LOG_LIMITS.boots; boot++) cluster.receive(batch({ boot: `b${boot}`, entries: record }));
    assert.throws(() => cluster.receive(batch({ boot: 'one-too-many', entries: record })), /has shipped from 64 runs already/);
  });

  it('keeps at most its bytes of round records: records padded to the batch limit are refused once they pass it, and nothing of them is kept', () => {
    const cluster = new ClusterLog(tmp(), 'exp', WORKERS, false);
    const padded = (seq: number) => ({ seq, kind: 'iteration' as const, entry: entry(1, Object.fromEntries(Array.from({ length: 19 }, (_, i) => [`pad${i}`, Array.from({ length: 1000 }, () => 'x'.repeat(200))]))) });
    const perEntry = JSON.stringify(padded(0).entry).length + 1; // a line of the journal
    const fit = Math.floor(WORKER_LOG_LIMITS.iterationBytes / perEntry);
    for (let seq = 0; seq < fit; seq++) cluster.receive(batch({ entries: [padded(seq)] }));
    assert.throws(() => cluster.receive(batch({ entries: [padded(fit)] })), (err: HttpError) => err.status === 413);
    assert.equal(cluster.records()[0].iteration.length, fit);
  });

  it("appends each batch's records to the worker's journal before it answers, and makes the .json copy when they are settled, not on every batch", async () => {
    const logs = tmp();
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false);
    const [journal, copy] = ['jsonl', 'json'].map((ext) => join(logs, 'cluster', 'exp', `127.0.9.1-5000_exp.${ext}`));
    const sizes: number[] = [];
    for (let seq = 0; seq < 50; seq++) {
      cluster.receive(batch({ entries: [{ seq, kind: 'iteration', entry: entry(seq + 1) }] }));
      sizes.push(statSync(journal).size);
    }
    // Each batch adds its own line and its mark, not the worker's whole record again.
    const lines = (seq: number) => Buffer.byteLength(`${JSON.stringify(entry(seq + 1))}\n${JSON.stringify({ boot: 'boot1', seq })}\n`);
    for (let seq = 1; seq < 50; seq++) assert.equal(sizes[seq] - sizes[seq - 1], lines(seq), `batch ${seq}`);
    assert.equal(existsSync(copy), false, 'no copy made while the batches come');
    assert.deepEqual(await cluster.settle(50, ['127.0.9.1:5000'], 1000), []);
    assert.deepEqual(JSON.parse(readFileSync(copy, 'utf8')).iteration.map((e: { round: number }) => e.round), Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('refuses a batch it cannot write with a 503 and takes nothing of it, its lines cut back out of the .log; sent again, it is written once', () => {
    const logs = tmp();
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false);
    const [journal, log] = ['127.0.9.1-5000_exp.jsonl', '127.0.9.1-5000.log'].map((f) => join(logs, 'cluster', 'exp', f));
    mkdirSync(journal); // a folder where the journal goes: appending to it fails, after the .log's line
    const sent = batch({ entries: [{ seq: 0, kind: 'log', level: 'warn', time: 'T', message: 'once' }, { seq: 1, kind: 'iteration', entry: entry(1) }] });
    assert.throws(() => cluster.receive(sent), (err: HttpError) => err.status === 503 && /could not write the logs of 127\.0\.9\.1:5000/.test(err.reason));
    assert.deepEqual(cluster.records(), []);
    assert.equal(readFileSync(log, 'utf8'), '', 'the line cut back out');
    rmSync(journal, { recursive: true });
    assert.deepEqual(cluster.receive(sent), { taken: 2, duplicates: 0 });
    assert.equal(readFileSync(log, 'utf8'), 'T warn [127.0.9.1-5000] once\n');
    assert.equal(new ClusterLog(logs, 'exp', WORKERS, true).records()[0].iteration.length, 1);
  });

  it("starts a worker's journal with who it is, whatever its first batch (lines alone), and carries into it the records of a copy an earlier version kept", () => {
    const logs = tmp();
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false);
    cluster.receive(batch({ entries: [{ seq: 0, kind: 'log', level: 'warn', time: 'T', message: 'lines first' }] }));
    cluster.receive(batch({ entries: [{ seq: 1, kind: 'iteration', entry: entry(1) }] }));
    assert.deepEqual(new ClusterLog(logs, 'exp', WORKERS, true).records().map((r) => [r.address, r.iteration.length]), [['127.0.9.1:5000', 1]]);
    // A copy alone (no journal): read, and carried into the journal with the next record.
    const dir = join(logs, 'cluster', 'exp');
    rmSync(join(dir, '127.0.9.1-5000_exp.jsonl'));
    writeFileSync(join(dir, '127.0.9.1-5000_exp.json'), JSON.stringify({ node: '127.0.9.1-5000', address: '127.0.9.1:5000', role: 'client', iteration: [entry(1), entry(2)] }));
    const resumed = new ClusterLog(logs, 'exp', WORKERS, true);
    resumed.receive(batch({ boot: 'boot2', entries: [{ seq: 0, kind: 'iteration', entry: entry(3) }] }));
    rmSync(join(dir, '127.0.9.1-5000_exp.json'));
    assert.deepEqual(new ClusterLog(logs, 'exp', WORKERS, true).records()[0].iteration.map((e) => e.round), [1, 2, 3]);
  });

  it('says a copy it cannot write; the journal keeps the records, and the next flush makes it', () => {
    const logs = tmp();
    const warnings: string[] = [];
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false, (message) => warnings.push(message));
    const copy = join(logs, 'cluster', 'exp', '127.0.9.1-5000_exp.json');
    mkdirSync(copy); // a folder where the copy goes: the rename fails
    cluster.receive(batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }] }));
    cluster.flush();
    assert.match(warnings.join(), /the copy of 127\.0\.9\.1:5000's round records could not be written \(its journal has them\)/);
    assert.equal(new ClusterLog(logs, 'exp', WORKERS, true).records()[0].iteration.length, 1, 'read back from the journal');
    rmSync(copy, { recursive: true });
    cluster.flush();
    assert.equal(JSON.parse(readFileSync(copy, 'utf8')).iteration.length, 1);
  });

  it('reads a journal whose last line was cut short (a crash as it was written), skipping only that line, and appends after it on a line of its own', () => {
    const logs = tmp();
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false);
    cluster.receive(batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }, { seq: 1, kind: 'iteration', entry: entry(2) }] }));
    const journal = join(logs, 'cluster', 'exp', '127.0.9.1-5000_exp.jsonl');
    appendFileSync(journal, '{"round": 3, "start_');
    const resumed = new ClusterLog(logs, 'exp', WORKERS, true);
    assert.deepEqual(resumed.records()[0].iteration.map((e) => e.round), [1, 2]);
    resumed.receive(batch({ boot: 'boot2', entries: [{ seq: 0, kind: 'iteration', entry: entry(3) }] }));
    assert.deepEqual(new ClusterLog(logs, 'exp', WORKERS, true).records()[0].iteration.map((e) => e.round), [1, 2, 3]);
  });

  it('knows a batch sent again to an aggregator resumed after a crash (each batch leaves its mark in the journal), and the runs counted', () => {
    const logs = tmp();
    const sent = batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }, { seq: 1, kind: 'log', level: 'warn', time: 'T', message: 'x' }] });
    new ClusterLog(logs, 'exp', WORKERS, false).receive(sent); // then a crash before the answer went out
    const resumed = new ClusterLog(logs, 'exp', WORKERS, true);
    assert.deepEqual(resumed.receive(sent), { taken: 0, duplicates: 2 });
    assert.deepEqual(resumed.receive(batch({ entries: [{ seq: 2, kind: 'iteration', entry: entry(2) }] })), { taken: 1, duplicates: 0 });
    assert.deepEqual(new ClusterLog(logs, 'exp', WORKERS, true).records()[0].iteration.map((e) => e.round), [1, 2]);
    // The runs it shipped from, read back too: 63 more are refused past the limit.
    const again = new ClusterLog(logs, 'exp', WORKERS, true);
    for (let boot = 1; boot < WORKER_LOG_LIMITS.boots; boot++) again.receive(batch({ boot: `b${boot}`, entries: [{ seq: 0, kind: 'iteration', entry: entry(3) }] }));
    assert.throws(() => again.receive(batch({ boot: 'one-too-many', entries: [{ seq: 0, kind: 'iteration', entry: entry(3) }] })), /has shipped from 64 runs already/);
  });

  it("mends a journal whose first line was cut short (a crash as it began), and reads none of a worker that is not the experiment's now", () => {
    const logs = tmp();
    const dir = join(logs, 'cluster', 'exp');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '127.0.9.1-5000_exp.jsonl'), '{"node":"127.0.9.1-5000","addr');
    const resumed = new ClusterLog(logs, 'exp', WORKERS, true);
    assert.deepEqual(resumed.records(), []);
    resumed.receive(batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }] }));
    assert.deepEqual(new ClusterLog(logs, 'exp', WORKERS, true).records().map((r) => [r.address, r.iteration.length]), [['127.0.9.1:5000', 1]]);
    // A stranger's journal (a worker of an earlier config): not read, not reported.
    writeFileSync(join(dir, '127.0.9.9-5000_exp.jsonl'), `${JSON.stringify({ node: '127.0.9.9-5000', address: '127.0.9.9:5000', role: 'client' })}\n${JSON.stringify(entry(1))}\n`);
    assert.deepEqual(new ClusterLog(logs, 'exp', WORKERS, true).records().map((r) => r.address), ['127.0.9.1:5000']);
  });

  it('once the records are settled, leaves a late batch (the aggregator kept serving) to the copy made as it stops, however many come and however long', async (t) => {
    const logs = tmp();
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false);
    const copy = join(logs, 'cluster', 'exp', '127.0.9.1-5000_exp.json');
    cluster.receive(batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }] }));
    await cluster.settle(1, ['127.0.9.1:5000'], 1000);
    const rounds = () => JSON.parse(readFileSync(copy, 'utf8')).iteration.length;
    assert.equal(rounds(), 1);
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
    for (let seq = 1; seq <= 100; seq++) {
      cluster.receive(batch({ entries: [{ seq, kind: 'iteration', entry: entry(seq + 1) }] }));
      t.mock.timers.tick(1000);
    }
    t.mock.timers.tick(3_600_000);
    assert.equal(rounds(), 1, 'no copy rewritten for a batch after the records settled');
    cluster.flush(); // as the aggregator stops
    assert.equal(rounds(), 101);
  });

  it("makes a worker's copy once more when the last round the records were settled without comes late, and only then, and no other's", async () => {
    const logs = tmp();
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false);
    const rounds = () => JSON.parse(readFileSync(join(logs, 'cluster', 'exp', '127.0.9.1-5000_exp.json'), 'utf8')).iteration.length;
    cluster.receive(batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }] }));
    // Settled for the last round and for one it missed, at once (as the run's report does): the last one is awaited.
    assert.deepEqual(await Promise.all([cluster.settle(3, ['127.0.9.1:5000'], 0), cluster.settle(2, ['127.0.9.1:5000'], 0)]), [['127.0.9.1:5000'], ['127.0.9.1:5000']]);
    assert.equal(rounds(), 1);
    const other = () => readFileSync(join(logs, 'cluster', 'exp', '127.0.9.3-5000_exp.json'), 'utf8');
    cluster.receive(batch({ address: '127.0.9.3:5000', role: 'switch', node: '127.0.9.3-5000', entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }] }));
    cluster.flush();
    cluster.receive(batch({ address: '127.0.9.3:5000', role: 'switch', node: '127.0.9.3-5000', entries: [{ seq: 1, kind: 'iteration', entry: entry(2) }] }));
    const otherBefore = other();
    cluster.receive(batch({ entries: [{ seq: 1, kind: 'iteration', entry: entry(2) }] }));
    assert.equal(rounds(), 1, 'not the round awaited');
    cluster.receive(batch({ entries: [{ seq: 2, kind: 'log', level: 'warn', time: 'T', message: 'not the round' }] }));
    assert.equal(rounds(), 1);
    cluster.receive(batch({ entries: [{ seq: 3, kind: 'iteration', entry: entry(3) }] }));
    assert.equal(rounds(), 3, 'the round it was settled without, in the copy as it comes');
    assert.equal(other(), otherBefore, "another worker's copy waits for the aggregator to stop");
    cluster.receive(batch({ entries: [{ seq: 4, kind: 'iteration', entry: entry(4) }] }));
    assert.equal(rounds(), 3, 'once');
  });

  it("resumes when a worker's .log cannot be read, saying so, with its records", () => {
    const logs = tmp();
    new ClusterLog(logs, 'exp', WORKERS, false).receive(batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }] }));
    mkdirSync(join(logs, 'cluster', 'exp', '127.0.9.1-5000.log')); // no lines came: a folder where they go
    const warnings: string[] = [];
    const resumed = new ClusterLog(logs, 'exp', WORKERS, true, (message) => warnings.push(message));
    assert.equal(resumed.records()[0].iteration.length, 1);
    assert.match(warnings.join(), /127\.0\.9\.1-5000\.log could not be read; its lines are not counted/);
  });

  it('reads its records back on resume, and drops an earlier run on a fresh start', () => {
    const logs = tmp();
    new ClusterLog(logs, 'exp', WORKERS, false).receive(batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }] }));
    assert.equal(new ClusterLog(logs, 'exp', WORKERS, true).records()[0].iteration.length, 1);
    assert.deepEqual(new ClusterLog(logs, 'exp', WORKERS, false).records(), []);
  });
});

