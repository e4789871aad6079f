/**
 * Federated evaluation's transport: the clients decrypt the model and score it on their share of the
 * held-out digits. The model goes down the reporting tree: once to each switch on the way, which
 * asks the clients beneath it (and the switches below) and answers for all of them.
 */
import { describeFailure } from '../net/peers';
import type { EvaluateResult } from '../strategy/strategy';
import { WIRE_CONTENT_TYPE } from '../wire/codec';
import { evaluationQuery, evaluationsSchema, scoreSchema, UNUSABLE_MODEL } from '../wire/control';
import type { NodeContext } from './role';

export interface Evaluations {
  results: EvaluateResult[];
  failures: string[];
  /** Clients that said the model is unusable (it decrypts to values no round could make): the round's sum went wrong. */
  unusable: { client: string; reason: string }[];
}

/** A switch's answer for the clients it was asked about: anyone else's is not its to give, nor twice. */
function fromSwitch(answer: unknown, asked: string[]): Evaluations {
  const parsed = evaluationsSchema.safeParse(answer);
  if (!parsed.success) throw new Error(`its answer is not {results, failures, unusable}: ${parsed.error.issues[0]?.message}`);
  const once = <T extends { client: string }>(list: T[]) => list.filter((r, i, all) => asked.includes(r.client) && all.findIndex((o) => o.client === r.client) === i);
  const results = once(parsed.data.results);
  const unusable = once(parsed.data.unusable).filter((u) => !results.some((r) => r.client === u.client));
  return { results, unusable, failures: asked.filter((c) => !results.some((r) => r.client === c)) };
}

/**
 * The share of its own wait a level gives the level below: a switch must answer, with the answers it
 * has, before the one above gives up on it (and on every client beneath it).
 */
const BELOW_SHARE = 0.8;

/**
 * Every client's answer, in a fixed order (the same sums whatever the timing), and the clients that
 * gave none within `withinMs`. `hopOf` says where a client is asked: itself, or the switch it is beneath.
 */
export async function askToEvaluate(
  node: Pick<NodeContext, 'peers' | 'logger'>,
  signal: AbortSignal,
  round: number,
  message: Buffer,
  clients: string[],
  hopOf: (client: string) => string,
  withinMs: number,
): Promise<Evaluations> {
  const groups = new Map<string, string[]>();
  for (const client of clients) {
    const hop = hopOf(client);
    groups.set(hop, [...(groups.get(hop) ?? []), client]);
  }
  const options = { headers: { 'Content-Type': WIRE_CONTENT_TYPE }, signal, timeout: withinMs };
  const answers = await Promise.all(
    [...groups].map(async ([hop, asked]): Promise<Evaluations> => {
      const viaSwitch = !(asked.length === 1 && asked[0] === hop);
      try {
        if (viaSwitch) return fromSwitch(await node.peers.post(hop, `/s/evaluate?${evaluationQuery(asked, withinMs * BELOW_SHARE)}`, message, options), asked);
        const answer = scoreSchema.parse(await node.peers.post(hop, '/c/evaluate', message, options));
        return { results: [{ client: hop, ...answer }], failures: [], unusable: [] };
      } catch (err) {
        const failure = describeFailure(err);
        if (!viaSwitch && failure.status === 422 && failure.error === UNUSABLE_MODEL) return { results: [], failures: asked, unusable: [{ client: hop, reason: failure.reason }] };
        node.logger.warn(`round ${round}: no evaluation from ${viaSwitch ? `the ${asked.length} clients beneath ${hop}` : hop}: ${failure.reason}`);
        return { results: [], failures: asked, unusable: [] };
      }
    }),
  );
  const results = answers.flatMap((a) => a.results).sort((a, b) => a.client.localeCompare(b.client));
  const unusable = answers.flatMap((a) => a.unusable).sort((a, b) => a.client.localeCompare(b.client));
  return { results, failures: answers.flatMap((a) => a.failures), unusable };
}
