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
    // Only a switch waits for others: a client's own word on it is not read; a switch's is bounded to a day.
    assert.equal(readInbound(message('d1', Kind.Update, 1, { waited_ms: 5000 }), expect, topology, { node: 'd1:5000' }).waitedMs, 0);
    for (const [said, read] of [[-5, 0], ['soon', 0], [1e12, 86_400_000]] as const) {
      assert.equal(readInbound(message('s1:5000', Kind.WeightedSum, 1, { clients: ['c1'], waited_ms: said }), expect, topology, { node: 's1:5000' }).waitedMs, read, String(said));
    }
  });

  it("reads when a switch's clients' updates reached it (meta.ages_ms, one for each client named); any other list is a 400", () => {
    const sum = (ages: unknown) => readInbound(message('s1:5000', Kind.WeightedSum, 1, { clients: ['c1'], ages_ms: ages }), expect, topology, { node: 's1:5000' });
    assert.deepEqual(sum([250]).agesMs, [250]);
    assert.equal(sum(undefined).agesMs, undefined, 'none said: its clients count from the sum');
    for (const ages of [[], [1, 2], [-1], ['5'], [null], [86_400_001], 'soon']) {
      assert.throws(() => sum(ages), (err: HttpError) => err.status === 400 && /meta\.ages_ms must be one number of milliseconds \(0 to a day\) for each of the 1 clients/.test(err.message), JSON.stringify(ages));
    }
  });

  it("reads a switch's bundle (robust rules) as each client's update and weight; a bundle whose weights do not add up to its header is a 400", () => {
    const bundleExpect = { ...expect, kinds: [Kind.UpdateBundle, Kind.Update] };
    const values = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const bundle = (weights: unknown) => encode({ kind: Kind.UpdateBundle, round: 2, modelId: 7, contributors: 2, weight: 30, sender: 's1:5000', meta: { attempt: 's:2.0', clients: ['c1', 'c2'], weights }, parameters: values, count: 3 });
    const read = readInbound(bundle([10, 20]), bundleExpect, topology, { node: 's1:5000' });
    assert.deepEqual(read.report, { type: 'report', round: 2, attempt: 's:2.0', from: 's1:5000', clients: ['c1', 'c2'], weight: 30, updateWeights: { c1: 10, c2: 20 } });
    assert.deepEqual(read.arrival.bundle!.map((u) => [u.client, u.weight, [...u.values]]), [['c1', 10, [1, 2, 3]], ['c2', 20, [4, 5, 6]]]);
    for (const [weights, reason] of [[[10, 10], /weigh 20 together; its header says 30/], [[30], /a positive sample count in meta\.weights/], [[-10, 40], /a positive sample count/], [undefined, /meta\.weights/]] as const) {
      assert.throws(() => readInbound(bundle(weights), bundleExpect, topology, { node: 's1:5000' }), (err: HttpError) => err.status === 400 && reason.test(err.message), JSON.stringify(weights));
    }
  });

  it("refuses a client update from anyone but a client that reports to the aggregator itself: a switch, or a client beneath one (403)", () => {
    for (const sender of ['s1:5000', 'c1', 'stranger:1']) {
      assert.throws(() => readInbound(message(sender, Kind.Update), expect, topology, { node: canonicalAddress(sender) }), (err: HttpError) => err.status === 403 && err.reason === `${sender} does not report to the aggregator directly`, sender);
    }
  });
});
