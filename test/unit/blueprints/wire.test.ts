/** Body limits of /receive: room for a bundle from a switch (robust rules), for the caller's own update from anyone else. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import express from 'express';
import request from 'supertest';
import { receiveBody } from '../../../src/blueprints/wire';
import type { Settings } from '../../../src/config/schema';
import { Topology } from '../../../src/topology/tree';
import { decode, encode, Kind, maxMetaBytes, WIRE_CONTENT_TYPE, WireError } from '../../../src/wire/codec';

const PARAMETERS = 100_000;
// c1 reports to the aggregator directly; c2, c3 and c4 through s1.
const topology = new Topology('agg', { c1: 'agg', c2: 's1', c3: 's1', c4: 's1', s1: 'agg' });

function app(strategy: string) {
  const settings = { he: { enabled: false }, training: { strategy } } as unknown as Settings;
  const server = express();
  server.use((req, res, next) => ((res.locals.caller = { node: req.get('x-node') }), next()));
  server.post('/receive', ...receiveBody({ parameters: PARAMETERS, encrypted: false, config: { settings }, topology }), (req, res) => res.json({ bytes: (req.body as Buffer).length }));
  return server;
}

const post = (server: express.Express, from: string, bytes: number) => request(server).post('/receive').set('x-node', from).set('Content-Type', WIRE_CONTENT_TYPE).send(Buffer.alloc(bytes));

describe('/receive body limits', () => {
  const threeUpdates = 3 * PARAMETERS * 4 + 1000;

  it('gives a switch room for a bundle of an update for each client beneath it, under a robust rule', async () => {
    await post(app('fedmedian'), 's1', threeUpdates).expect(200);
    await post(app('fedmedian'), 's1', 3 * PARAMETERS * 4 + maxMetaBytes(3) + 100).expect(413);
  });

  it("gives a client room for its own update only, whatever the tree holds; and without a robust rule, a switch room for one sum", async () => {
    await post(app('fedmedian'), 'c1', threeUpdates).expect(413);
    await post(app('fedmedian'), 'c1', PARAMETERS * 4 + 1000).expect(200);
    await post(app('fedavg'), 's1', threeUpdates).expect(413);
  });
});

describe('wire metadata', () => {
  it('is bounded before it is parsed: more than a message of its updates carries is refused', () => {
    const message = (meta: Record<string, unknown>) => encode({ kind: Kind.Update, round: 1, modelId: 1, contributors: 1, weight: 1, sender: 'c1', meta, parameters: new Float32Array(2) });
    assert.doesNotThrow(() => decode(message({ x: 'a'.repeat(60_000) })));
    assert.throws(() => decode(message({ x: [...Array(40_000)].map(() => []) })), (e: Error) => e instanceof WireError && /bytes of metadata; a message of 1 updates carries at most 65792/.test(e.message));
  });
});
