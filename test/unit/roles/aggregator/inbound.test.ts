/** POST /a/receive's reading: who may send a client's own update, and what a switch's sum must name. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalAddress } from '../../../../src/config/address';
import type { HttpError } from '../../../../src/net/errors';
import { readInbound } from '../../../../src/roles/aggregator/inbound';
import { Topology } from '../../../../src/topology/tree';
import { encode, Kind } from '../../../../src/wire/codec';

const AGG = 'agg:5000';
const topology = new Topology(AGG, { d1: AGG, c1: 's1:5000', 's1:5000': AGG });
const expect = { kinds: [Kind.WeightedSum, Kind.Update], update: Kind.Update, modelId: 7, parameters: 3 };
const message = (sender: string, kind: Kind, contributors = 1, meta: Record<string, unknown> = {}) =>
  encode({ kind, round: 2, modelId: 7, contributors, weight: 30, sender, meta: { attempt: 's:2.0', ...meta }, parameters: Float32Array.from([1, 2, 3]) });

describe('reading /a/receive', () => {
  it("takes a direct client's own update as its report, and a switch's sum as the report of the clients it names", () => {
    const direct = readInbound(message('d1', Kind.Update), expect, topology, { node: 'd1:5000' });
    assert.deepEqual(direct.report, { type: 'report', round: 2, attempt: 's:2.0', from: 'd1', clients: ['d1'], weight: 30 });
    assert.equal(direct.arrival.preScaled, false);
    const sum = readInbound(message('s1:5000', Kind.WeightedSum, 1, { clients: ['c1'], waited_ms: 120 }), expect, topology, { node: 's1:5000' });
    assert.deepEqual([sum.report.clients, sum.arrival.preScaled, sum.waitedMs], [['c1'], true, 120]);
  });

  it("refuses a client update from anyone but a client that reports to the aggregator itself: a switch, or a client beneath one (403)", () => {
    for (const sender of ['s1:5000', 'c1', 'stranger:1']) {
      assert.throws(() => readInbound(message(sender, Kind.Update), expect, topology, { node: canonicalAddress(sender) }), (err: HttpError) => err.status === 403 && err.reason === `${sender} does not report to the aggregator directly`, sender);
    }
  });
});
