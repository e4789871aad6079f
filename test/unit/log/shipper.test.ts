/** A worker's log shipper: batches kept until taken, dropped on a 4xx, retried on a 5xx. */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, describe, it } from 'node:test';
import express from 'express';
import type { LogBatch } from '../../../src/log/central';
import { LogShipper } from '../../../src/log/shipper';
import { Peers } from '../../../src/net/peers';
import { WireMeter } from '../../../src/net/wire-meter';
import { as, TOKEN } from '../../helpers/node-context';
import { Credentials } from '../../../src/net/identity';

const entry = (round: number, extra: Record<string, unknown> = {}) => ({
  round, start_time: 't0', end_time: 't1', byte_received: 1000 * round, byte_send: 2000 * round, ...extra,
});

/** An aggregator's POST /a/logs on loopback that answers `answer` (settable) and records each batch's sequence numbers, with a shipper sending to it. */
async function logsAggregator(status: number, reason: string) {
  const state = { answer: status, requests: [] as number[][], warnings: [] as string[] };
  const app = express().use(express.json()).post('/a/logs', (req, res) => {
    state.requests.push((req.body as LogBatch).entries.map((e) => e.seq));
    if (state.answer === 200) res.json({ status: 'written' });
    else res.status(state.answer).json({ error: state.answer >= 500 ? 'internal error' : 'bad request', reason });
  });
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  after(() => (server.closeAllConnections(), server.close()));
  const address = `127.0.0.1:${(server.address() as { port: number }).port}`;
  const shipper = new LogShipper(
    new Peers(Credentials.fromSecret(TOKEN, '127.0.9.1:5000'), new WireMeter()),
    { node: 'n1', address: '127.0.9.1:5000', aggregator: address, experiment: 'exp', role: 'client' },
    (message) => state.warnings.push(message),
  );
  return Object.assign(state, { shipper });
}

describe("a worker's log shipper", () => {
  it('keeps what the aggregator did not take, and sends it with the next round', async () => {
    const received: LogBatch[] = [];
    let answer = 503;
    const app = express().use(express.json()).post('/a/logs', (req, res) => {
      if (req.headers.authorization !== as('127.0.9.1:5000').Authorization) return void res.sendStatus(401);
      if (answer === 200) received.push(req.body);
      res.status(answer).json({});
    });
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    after(() => server.close());
    const address = `127.0.0.1:${(server.address() as { port: number }).port}`;
    const meter = new WireMeter();
    const shipper = new LogShipper(new Peers(Credentials.fromSecret(TOKEN, '127.0.9.1:5000'), meter), { node: 'n1', address: '127.0.9.1:5000', aggregator: address, experiment: 'exp', role: 'client' });

    shipper.iteration(entry(1));
    await shipper.flush();
    assert.equal(shipper.pending, 1, 'a refused batch stays queued');
    answer = 200;
    shipper.iteration(entry(2));
    await shipper.flush();
    assert.equal(shipper.pending, 0);
    const sent = received.flatMap((b) => b.entries);
    assert.deepEqual(sent.map((e) => e.seq), [0, 1]);
    assert.deepEqual(meter.totals(), { received: 0, sent: 0 }, 'central logs are not counted as experiment traffic');
  });

  it('drops a batch the aggregator refuses with a 4xx, warns once, and goes on with later batches', async () => {
    const aggregator = await logsAggregator(400, 'entry 0 has no round');
    const { requests, warnings, shipper } = aggregator;

    shipper.iteration(entry(1));
    await shipper.flush();
    assert.equal(shipper.pending, 0, 'a refused batch is dropped, not kept for the next round');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /400/);
    assert.match(warnings[0], /entry 0 has no round/);
    shipper.iteration(entry(2));
    await shipper.flush();
    assert.equal(shipper.pending, 0);
    assert.equal(warnings.length, 1, 'warned once, not every round');
    aggregator.answer = 200;
    shipper.iteration(entry(3));
    await shipper.flush();
    assert.equal(shipper.pending, 0);
    assert.deepEqual(requests, [[0], [1], [2]], 'each refused batch went once; the later one still went');
  });

  it('keeps retrying a batch while the aggregator answers 5xx', async () => {
    const aggregator = await logsAggregator(500, 'see its log');
    const { requests, warnings, shipper } = aggregator;
    shipper.iteration(entry(1));
    await shipper.flush();
    assert.equal(shipper.pending, 1);
    aggregator.answer = 200;
    shipper.iteration(entry(2));
    await shipper.flush();
    assert.equal(shipper.pending, 0);
    assert.deepEqual(requests, [[0], [0, 1]]);
    assert.deepEqual(warnings, []);
  });
});

