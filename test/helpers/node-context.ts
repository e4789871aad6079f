import { join } from 'node:path';
import { createLogger } from '../../src/log/logger';
import { configProof, CONFIG_PROOF_HEADER, Credentials } from '../../src/net/identity';
import { createNodeMetrics } from '../../src/net/metrics';
import { Peers } from '../../src/net/peers';
import { WireMeter } from '../../src/net/wire-meter';
import type { NodeContext } from '../../src/roles/role';
import { tempDir } from './temp-dir';

/** The cluster token of the tests' in-process nodes (they hold it, as a node started by hand does). */
export const TOKEN = 'test-cluster-token-0123456789';

/** The headers of a call made as `address`: its own token (made from the cluster token) and its name. */
export const as = (address: string, token = TOKEN): Record<string, string> => Credentials.fromSecret(token, address).headers();

/** The headers of `config`'s push, as its aggregator makes it: the aggregator's identity and the worker's config proof. */
export function configPush(config: unknown, token = TOKEN): Record<string, string> {
  const { address, aggregator } = config as { address: string; aggregator: string };
  return { ...as(aggregator, token), [CONFIG_PROOF_HEADER]: configProof(token, address) };
}

/** The headers of the operator: the cluster token itself, naming no node (it may read status). */
export const operator = (token = TOKEN): Record<string, string> => ({ Authorization: `Bearer ${token}` });

/** `timeoutMs`: how long the node's calls wait for an answer. */
export function nodeContext(nodeId = 'test-node', timeoutMs = 2000): NodeContext {
  const dir = tempDir('fl-node-');
  const meter = new WireMeter();
  const credentials = Credentials.fromSecret(TOKEN);
  return {
    nodeId,
    credentials,
    logger: createLogger({ nodeId, logsDir: join(dir, 'logs'), console: false, secrets: () => credentials.secrets() }),
    meter,
    metrics: createNodeMetrics({ meter }),
    peers: new Peers(credentials, meter, timeoutMs),
    logsDir: join(dir, 'logs'),
    outputsDir: join(dir, 'outputs'),
  };
}
