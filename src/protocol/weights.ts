/**
 * Weights fixed by the aggregator: each selected client weighs what it said it holds at check-in,
 * and every update or sum that reaches a level above must weigh what the aggregator assigned its
 * clients, to the sample. One client claiming more would otherwise outweigh the whole round.
 */
import type { Refusal } from './refusal';

/** Each selected client's weight in the round (the samples it said it holds at check-in), by client. */
export type Weights = Record<string, number>;

/** The weight a message naming `weights`' clients must carry: theirs added up (integers: exact). */
export const weightOf = (weights: Weights): number => Object.values(weights).reduce((sum, w) => sum + w, 0);

/**
 * The refusal of `what` (one client's update, or a switch's sum) from `from` weighing `claimed` for
 * clients assigned `weights`, or undefined when it weighs what they do.
 */
export function weightRefusal(from: string, claimed: number, weights: Weights, what: 'update' | 'sum' = 'update'): Refusal | undefined {
  const expected = weightOf(weights);
  if (claimed === expected) return undefined;
  const clients = Object.keys(weights);
  const assigned = what === 'update' ? `${expected} the aggregator assigned it` : `${expected} the aggregator assigned ${clients.join(', ')}`;
  return { type: 'refuse', status: 400, reason: `the ${what} from ${from} weighs ${claimed}, not the ${assigned} (the samples said at check-in)` };
}

/**
 * The refusal of a bundle from `from` whose updates do not each weigh what the aggregator assigned
 * their client (`weights`): right in total, a switch could still move samples from one to another.
 */
export function bundleRefusal(from: string, each: Weights | undefined, weights: Weights): Refusal | undefined {
  if (!each) return undefined;
  const wrong = Object.keys(weights).filter((client) => each[client] !== weights[client]);
  if (!wrong.length && Object.keys(each).length === Object.keys(weights).length) return undefined;
  const said = wrong.map((client) => `${client} ${each[client]}, not ${weights[client]}`).join('; ');
  return { type: 'refuse', status: 400, reason: `the bundle from ${from} weighs its updates otherwise than the aggregator assigned them (${said || 'other clients'})` };
}
