/** Federated evaluation's transport: the clients decrypt the model and score it on their share of the held-out digits. */
import { describeFailure } from '../../net/peers';
import type { EvaluateResult } from '../../strategy/strategy';
import { WIRE_CONTENT_TYPE } from '../../wire/codec';
import type { NodeContext } from '../role';

/** Every client's answer, in a fixed order (the same sums whatever the timing), and the clients that gave none. */
export async function askToEvaluate(
  node: Pick<NodeContext, 'peers' | 'logger'>,
  signal: AbortSignal,
  round: number,
  message: Buffer,
  clients: string[],
): Promise<{ results: EvaluateResult[]; failures: string[] }> {
  const results: EvaluateResult[] = [];
  const failures: string[] = [];
  await Promise.all(
    clients.map(async (client) => {
      try {
        const answer = await node.peers.post<Omit<EvaluateResult, 'client'>>(client, '/c/evaluate', message, { headers: { 'Content-Type': WIRE_CONTENT_TYPE }, signal });
        results.push({ client, accuracy: answer.accuracy, loss: answer.loss, samples: answer.samples });
      } catch (err) {
        node.logger.warn(`round ${round}: no evaluation from ${client}: ${describeFailure(err).reason}`);
        failures.push(client);
      }
    }),
  );
  results.sort((a, b) => a.client.localeCompare(b.client));
  return { results, failures };
}
