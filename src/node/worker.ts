/** The program every testbed machine runs: an express server that takes its role at POST /config. */
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { describeIssues } from '../config/issues';
import { modelProblem } from '../config/load';
import { nodeConfigSchema, type NodeConfig } from '../config/node-config';
import { tokensMatch } from '../net/auth';
import { callerName, CONFIG_PROOF_HEADER } from '../net/identity';
import { callerOf, identifyCallers, only, refusalLogger } from '../net/callers';
import { HttpError, jsonErrorHandler, requireContentType } from '../net/errors';
import { clientCertProblem, serverOptions } from '../net/tls';
import { acknowledgeArrivals } from '../net/progress-deadline';
import { ROLE_PREFIX, type NodeContext } from '../roles/role';
import { RoleHost } from './role-host';
import { longestStepMs } from '../model/stall';

export const CONFIG_BODY_LIMIT = 1024 * 1024;
/** How long a request may take to arrive whole: 40 MB at 0.4 Mbit/s (Node's default, 5 minutes, is 7.5 MB). */
const REQUEST_WHOLE_MS = 15 * 60_000;

/** Paths whose traffic is monitoring, not the experiment's: health checks, central logs, the dashboard, scrapes. */
export const isMonitoring = (path: string): boolean =>
  path === '/health' || path === '/a/logs' || path === '/' || path.startsWith('/dashboard/') || path === '/metrics';

export interface WorkerApp {
  app: Express;
  roles: RoleHost;
}

export function createWorkerApp(node: NodeContext): WorkerApp {
  const roles = new RoleHost(node);
  node.metrics.readRoleFrom(() => roles.role);
  const startedAt = Date.now();
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // A connection that has only ever carried monitoring (health, central logs, the dashboard) is left out of the byte counts.
  const experimentTraffic = new WeakSet<object>();
  app.use((req, _res, next) => {
    if (isMonitoring(req.path)) {
      if (!experimentTraffic.has(req.socket)) node.meter.exclude(req.socket);
    } else experimentTraffic.add(req.socket);
    next();
  });

  // Liveness stays open so launchers and monitors can probe without the secret; it shows no settings.
  app.get('/health', (req, res) => {
    const failure = roles.failure;
    res.json({
      // "failed": the config is taken but its role cannot work; `error` says why.
      status: failure ? 'failed' : 'ok',
      ...(failure ? { error: failure } : {}),
      node: node.nodeId,
      role: roles.role?.type ?? null,
      experiment: roles.role?.config.experiment ?? null,
      // Which config it runs (a hash): the aggregator re-configures a worker that lost or lacks its own.
      config: roles.fingerprint ?? null,
      uptime_s: Math.round((Date.now() - startedAt) / 1000),
      // How long a training step holds this process silent: the aggregator waits that long before it counts it down.
      step_ms: longestStepMs(),
    });
  });

  const identify = identifyCallers(node.credentials, Boolean(node.tls));
  // Before the callers' gate: a scraper may hold only its own token, which opens nothing else; the
  // operator may read them too. Not the other nodes: what a node is doing is not theirs to watch.
  const scraper: RequestHandler = (req, res, next) => {
    const bearer = /^Bearer (.+)$/.exec(req.get('authorization') ?? '')?.[1];
    if (bearer && node.metrics.scrapeTokens.some((token) => tokensMatch(bearer, token))) return next();
    identify(req, res, (err?: unknown) => (err ? next(err) : only(() => false, 'the operator or a scraper', true)(req, res, next)));
  };
  app.get('/metrics', scraper, node.metrics.serve);

  app.use(roles.dispatchPublic);
  app.get('/', (_req, res) => {
    const role = roles.role;
    const where = role ? `this node is a ${role.type}; the aggregator at ${role.config.aggregator} serves the dashboard` : 'this node has no config yet';
    res.status(404).json({ error: 'no dashboard here', reason: where });
  });

  // Under mutual TLS everything past /health, /metrics and the dashboard is for the testbed's nodes only.
  if (node.tls) {
    app.use((req, _res, next) => {
      const problem = clientCertProblem(req);
      next(problem ? new HttpError(403, 'forbidden', problem) : undefined);
    });
  }
  app.use(identify);
  // A large body's sender (a node of the testbed: past the checks above) hears it arriving, so its deadline moves while the bytes do.
  app.use(acknowledgeArrivals);

  app.post('/config', requireContentType('application/json'), express.json({ limit: CONFIG_BODY_LIMIT }), async (req, res) => {
    const invalid = (details: string[]) => new HttpError(400, 'invalid config', 'the config failed validation; nothing was changed', details);
    const parsed = nodeConfigSchema.safeParse(req.body);
    if (!parsed.success) throw invalid(describeIssues(parsed.error.issues));
    const config = parsed.data;
    if (!node.credentials.mayConfigure(callerOf(res), config, roles.role?.config.aggregator, req.get(CONFIG_PROOF_HEADER))) {
      throw new HttpError(403, 'forbidden', `only this node's aggregator pushes its config; the call comes from ${callerName(callerOf(res))}`);
    }
    // Its aggregator's word, checked before anything is built: a model the data cannot take, or too large to build.
    const model = modelProblem(config.settings);
    if (model) throw invalid([model]);
    try {
      node.credentials.bind(config.address);
    } catch (err) {
      throw new HttpError(403, 'forbidden', (err as Error).message);
    }
    const result = await roles.apply(config);
    res.status(result.status === 'unchanged' ? 200 : 201).json(result);
  });

  // What a node runs is for the operator and its aggregator to read.
  app.get('/config', only((caller) => caller === roles.role?.config.aggregator, 'its aggregator or the operator', true), (_req, res) => {
    const role = roles.role;
    if (!role) throw new HttpError(404, 'no config', 'this node has not been configured yet');
    res.json(role.config satisfies NodeConfig);
  });

  app.use(roles.dispatch);

  app.use((req, _res, next) => {
    const role = roles.role;
    const hint = role
      ? `this node is a ${role.type}; its routes are under ${ROLE_PREFIX[role.type]}`
      : 'this node has no role yet (POST /config first)';
    next(new HttpError(404, 'not found', `no route ${req.method} ${req.path}: ${hint}`));
  });
  const logRefusal = refusalLogger(node.logger);
  app.use(((err, req, res, next) => {
    if (err instanceof HttpError) logRefusal(req, res, err);
    // A stranger refused before its body was read: the connection goes with the answer, rather than
    // wait up to requestTimeout for the rest of it. A node's own is drained, so it hears the refusal.
    if (!req.complete && !res.locals.caller && (Number(req.get('content-length')) > 0 || req.get('transfer-encoding'))) res.set('Connection', 'close');
    next(err);
  }) as ErrorRequestHandler);
  app.use(jsonErrorHandler((err) => node.logger.error(`request failed: ${(err as Error)?.stack ?? String(err)}`)));
  return { app, roles };
}

export interface RunningNode extends WorkerApp {
  server: http.Server | https.Server;
  address: AddressInfo;
  close(): Promise<void>;
}

/** Listens on host:port; close() stops the role, then the server. */
export async function listen(worker: WorkerApp, node: NodeContext, host: string, port: number): Promise<RunningNode> {
  // Node ends a request not whole in 5 minutes: tens of megabytes on a shaped link may take longer
  // (callers give up on a stalled one themselves, net/progress-deadline.ts). A stranger's refused
  // body is not read to its end: its connection closes with the answer (below).
  const limits = { keepAliveTimeout: 65_000, requestTimeout: REQUEST_WHOLE_MS };
  const server = node.tls ? https.createServer({ ...serverOptions(node.tls), ...limits }, worker.app) : http.createServer(limits, worker.app);
  node.meter.attachServer(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const close = async () => {
    await worker.roles.unmount();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Peers retrying on keep-alive sockets would hold a graceful close open indefinitely.
    server.closeAllConnections();
    await closed;
  };
  return { ...worker, server, address: server.address() as AddressInfo, close };
}
