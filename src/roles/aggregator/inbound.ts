/**
 * POST /a/receive read: a switch's sum (naming the clients in it) or a direct client's own update,
 * as the round machine's report and the accumulator's arrival. Every check of the message itself is
 * here; whether the round takes it is the machine's to say.
 */
import type { Arrival } from '../../aggregation/accumulator';
import { badRequest, HttpError } from '../../net/errors';
import type { Event } from '../../protocol/aggregator/events';
import type { Topology } from '../../topology/tree';
import { attemptOf, namedClients, readMessage, type Expectation } from '../../wire/receive';

export interface Inbound {
  report: Extract<Event, { type: 'report' }>;
  arrival: Arrival;
  /** How long its switch waited after its last update before forwarding. */
  waitedMs: number;
}

export function readInbound(body: unknown, expect: Expectation & { update: Expectation['kinds'][number] }, topology: Topology): Inbound {
  const message = readMessage(body, expect);
  const direct = message.kind === expect.update;
  if (direct && !(topology.isClient(message.sender) && topology.reportsToRoot(message.sender))) {
    throw new HttpError(403, 'forbidden', `${message.sender} does not report to the aggregator directly`);
  }
  if (!(message.weight > 0)) throw badRequest('an update needs a positive sample count');
  if (direct && message.contributors !== 1) throw badRequest(`the sum claims ${message.contributors} updates but names 1 clients`);
  const clients = direct ? [message.sender] : namedClients(message);
  const { round, sender, weight, contributors } = message;
  return {
    report: { type: 'report', round, attempt: attemptOf(message), from: sender, clients, weight },
    arrival: { round, sender, weight, contributors, preScaled: !direct, values: message.parameters, ciphertexts: message.ciphertexts },
    waitedMs: Number(message.meta?.waited_ms) || 0,
  };
}
