/** Bringing a node up: logger, byte meter, peers, server. Shared by workers and the aggregator. */
import { resolve } from 'node:path';
import { createLogger, nodeIdFor, type Logger } from '../log/logger';
import { createNodeMetrics } from '../net/metrics';
import type { Credentials } from '../net/identity';
import { Peers } from '../net/peers';
import { transportOf, type TlsMaterial } from '../net/tls';
import { WireMeter } from '../net/wire-meter';
import type { NodeContext } from '../roles/role';
import { createWorkerApp, listen, type RunningNode } from './worker';

export interface NodeOptions {
  host: string;
  port: number;
  /** This node's token book, or the cluster token (see net/identity.ts). */
  credentials: Credentials;
  /** May read GET /metrics besides the cluster token, and nothing else (--metrics-token-file). */
  scrapeToken?: string;
  id?: string;
  logsDir?: string;
  outputsDir?: string;
  logLevel?: string;
  console?: boolean;
  requestTimeoutMs?: number;
  print?: (line: string) => void;
  heKeyFile?: string;
  /** Mutual TLS: serve HTTPS and call peers with this certificate; absent, plain HTTP. */
  tls?: TlsMaterial;
}

export interface StartedNode extends RunningNode {
  context: NodeContext;
  logger: Logger;
}

export async function startNode(options: NodeOptions): Promise<StartedNode> {
  const nodeId = options.id ?? nodeIdFor(options.host, options.port);
  const logsDir = resolve(options.logsDir ?? 'logs');
  const logger = createLogger({
    nodeId,
    logsDir,
    level: options.logLevel,
    secrets: () => [...options.credentials.secrets(), ...(options.scrapeToken ? [options.scrapeToken] : [])],
    console: options.console,
  });
  const meter = new WireMeter();
  const context: NodeContext = {
    nodeId,
    credentials: options.credentials,
    logger,
    meter,
    metrics: createNodeMetrics({ meter, scrapeToken: options.scrapeToken }),
    peers: new Peers(options.credentials, meter, options.requestTimeoutMs, options.tls, options.host),
    logsDir,
    outputsDir: resolve(options.outputsDir ?? 'outputs'),
    print: options.print,
    heKeyFile: options.heKeyFile,
    tls: options.tls,
  };
  const running = await listen(createWorkerApp(context), context, options.host, options.port);
  logger.info(`listening on ${options.host}:${running.address.port}, ${transportOf(options.tls)}`);
  if (options.credentials.holdsSecret) {
    logger.warn('this node holds the cluster token itself: its callers are checked, but it could act as any node (the launchers give each worker a token book of its own)');
  }
  logger.debug(`node ${nodeId}: logs in ${logsDir}, outputs in ${context.outputsDir}, requests time out after ${options.requestTimeoutMs ?? 'the default'} ms`);
  return { ...running, context, logger };
}

/** Ends the process cleanly on SIGINT/SIGTERM: each node's role stopped, server closed, logs flushed. */
export function closeOnSignals(running: StartedNode | StartedNode[]): void {
  const nodes = [running].flat();
  let closing = false;
  const closeOne = async (node: StartedNode) => {
    await node.close().catch((err) => node.logger.error(`shutdown failed: ${String(err)}`));
    await new Promise((flushed) => node.logger.on('finish', flushed).end());
  };
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    for (const node of nodes) node.logger.info(`${signal}: shutting down`);
    const forced = setTimeout(() => process.exit(1), 5000);
    forced.unref();
    void Promise.all(nodes.map(closeOne)).finally(() => process.exit(0));
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}
