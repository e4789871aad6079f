/**
 * POST /a/receive read: a switch's sum or bundle (naming the clients in it) or a direct client's own update,
 * as the round machine's report and the accumulator's arrival. Every check of the message itself is
 * here; whether the round takes it is the machine's to say.
 */
import type { Arrival } from '../../aggregation/accumulator';
import { actingAsItself } from '../../net/callers';
import { badRequest, HttpError } from '../../net/errors';
import type { Caller } from '../../net/identity';
import type { Event } from '../../protocol/aggregator/events';
import type { Topology } from '../../topology/tree';
import { agesOf, attemptOf, forwardedUpdates, readMessage, waitedOf, type Expectation } from '../../wire/receive';

export interface Inbound {
  report: Extract<Event, { type: 'report' }>;
  arrival: Arrival;
  /** How long its switch waited after its last update before forwarding. */
  waitedMs: number;
  /** How long before the sum went up each of its clients' updates reached its switch (wire/receive.ts agesOf); none for a direct client's own. */
  agesMs?: number[];
}

export function readInbound(body: unknown, expect: Expectation & { update: Expectation['kinds'][number] }, topology: Topology, caller: Caller): Inbound {
  const message = readMessage(body, expect);
  actingAsItself(caller, "the message's sender", message.sender);
  const direct = message.kind === expect.update;
  if (direct && !(topology.isClient(message.sender) && topology.reportsToRoot(message.sender))) {
    throw new HttpError(403, 'forbidden', `${message.sender} does not report to the aggregator directly`);
  }
  // A sum is a switch's: a client sending one would escape the checks on one update (its quantized clip).
  if (!direct && !topology.isSwitchBelowRoot(message.sender)) throw new HttpError(403, 'forbidden', `${message.sender} is no switch under the aggregator: it sends its own update, not a sum`);
  if (!(message.weight > 0)) throw badRequest('an update needs a positive sample count');
  if (direct && message.contributors !== 1) throw badRequest(`the sum claims ${message.contributors} updates but names 1 clients`);
  const { clients, bundle, updateWeights } = direct ? { clients: [message.sender] } : forwardedUpdates(message);
  const { round, sender, weight, contributors } = message;
  return {
    report: { type: 'report', round, attempt: attemptOf(message), from: sender, clients, weight, ...(updateWeights ? { updateWeights } : {}) },
    arrival: { round, sender, weight, contributors, preScaled: !direct, values: message.parameters, ciphertexts: message.ciphertexts, bundle },
    waitedMs: direct ? 0 : waitedOf(message),
    agesMs: direct ? undefined : agesOf(message, clients),
  };
}
