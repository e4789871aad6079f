/** What the aggregator puts in a round's opening and models: each selected client's pass, made with the ticket it checked in with. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../../src/config/load';
import type { AggregatorNodeConfig } from '../../../../src/config/node-config';
import { testbedConfig } from '../../../../src/config/testbed';
import { Rounds, type RoundsIo } from '../../../../src/roles/aggregator/rounds';
import { decode, encode, Kind } from '../../../../src/wire/codec';
import { selectionPass } from '../../../../src/wire/control';

const config = (): AggregatorNodeConfig => {
  const raw = testbedConfig({ base: '127.0.9', nodes: 6, switches: 1, he: false }) as Record<string, any>;
  return [...resolveNodeConfigs(parseExperimentConfig(raw)).values()].find((n): n is AggregatorNodeConfig => n.type === 'aggregator')!;
};

/** Rounds with what configureFit, switchOpening and modelFor read: a strategy that tells one client more, and a model of two values. */
function rounds(tickets: Record<string, string>): Rounds {
  const prepared = {
    modelId: 7,
    strategy: { name: 'test', configureFit: (_round: number, selected: Record<string, number>) => ({ common: { epochs: 1 }, each: { [Object.keys(selected)[0]]: { epochs: 1 } } }) },
    global: { message: (header: { round: number; sender: string }, meta: Record<string, unknown>) => encode({ kind: Kind.Model, round: header.round, modelId: 7, contributors: 0, weight: 0, sender: header.sender, meta, parameters: Float32Array.of(1, 2) }) },
  };
  const io = { config: config(), parameters: 2, machine: { rules: { deadlineMs: 1000 }, retries: 0 }, prepared: () => prepared, ticketOf: (client: string) => tickets[client] } as unknown as RoundsIo;
  return new Rounds(io);
}

describe("the aggregator's round instructions", () => {
  it("gives each selected client its pass for the opening: a switch's opening carries its own clients' alone, a direct client's model its own", () => {
    const [a, b, c] = ['127.0.9.1:5000', '127.0.9.2:5000', '127.0.9.3:5000'];
    const tickets = { [a]: 'aa'.repeat(16), [b]: 'bb'.repeat(16), [c]: 'cc'.repeat(16) };
    const work = rounds(tickets);
    work.configureFit(3, 's:3.1', { [a]: 100, [b]: 300, [c]: 600 });
    const opening = work.switchOpening(3, 's:3.1', { [a]: 100, [b]: 300 });
    assert.deepEqual(opening.passes, { [a]: selectionPass(tickets[a], 's:3.1'), [b]: selectionPass(tickets[b], 's:3.1') });
    assert.deepEqual(opening.fit, { [a]: { epochs: 1 } });
    const direct = work.modelFor(3, 's:3.1', { [c]: 600 }, c) as Buffer[];
    const { meta } = decode(Buffer.concat(direct));
    assert.deepEqual(meta?.fit, { share: 0.6, pass: selectionPass(tickets[c], 's:3.1') });
    const common = decode(work.modelFor(3, 's:3.1', { [a]: 100, [b]: 300 }) as Buffer).meta;
    assert.ok(common && !('fit' in common) && !('passes' in common), "the model a switch relays names no client's pass");
  });

  it('refuses to select a client that brought no ticket: its model would carry no pass, and be refused', () => {
    const work = rounds({ '127.0.9.1:5000': 'aa'.repeat(16) });
    assert.throws(() => work.configureFit(1, 's:1.0', { '127.0.9.1:5000': 100, '127.0.9.2:5000': 100 }), /127\.0\.9\.2:5000 was selected, but no check-in of its brought a ticket/);
  });
});
