/** `main.js agg`: load config.json, become the aggregator, push every worker its config. */
import { describeBudget, plannedRounds } from '../privacy/dp';
import { carriesControl, modelParameters } from '../model/layout';
import { resolve } from 'node:path';
import { resolveNodeConfigs, usesTls } from '../config/load';
import { baseUrl, parseAddress } from '../config/address';
import type { ExperimentConfig } from '../config/schema';
import type { AggregatorNodeConfig, NodeConfig } from '../config/node-config';
import { Credentials, tokenBook } from '../net/identity';
import { loadTlsFromDir, transportName, transportOf } from '../net/tls';
import { startNode, type NodeOptions, type StartedNode } from '../node/start';
import { CLIENTS_FILE, writeReport } from '../report/report';
import { pathsOf, roundFloors, type Paths, type RoundFloor } from '../report/floor';
import type { AggregatorRole, ExperimentSummary } from '../roles/aggregator';
import { ExperimentNotReady, formatOutcome, goingOnWithout, missingForExperiment, pushConfigs, summarize } from './push';
import { findCheckpoint } from './resume';
import { WorkerWatch } from './watch';

export interface AggregatorOptions extends Omit<NodeOptions, 'host' | 'port'> {
  config: ExperimentConfig;
  host?: string;
  port?: number;
  /** Where the push report goes (stdout by default). */
  print?: (line: string) => void;
  /** Go on from the experiment's newest checkpoint. */
  resume?: boolean;
  /** Workers a launcher could not start, in their words (launch-report.ts): an unreachable one is named with them. */
  launchFailures?: ReadonlyMap<string, string>;
}

export interface RunningExperiment {
  node: StartedNode;
  role: AggregatorRole;
  /** Resolves when the last round is checkpointed and the report written. */
  finished: Promise<ExperimentSummary & { report?: string; floors?: Map<number, RoundFloor> }>;
}

export async function runAggregator(options: AggregatorOptions): Promise<RunningExperiment> {
  const print = options.print ?? ((line: string) => console.log(line));
  const config = options.config;
  const nodes = [...resolveNodeConfigs(config).values()];
  const own = nodes.find((n): n is AggregatorNodeConfig => n.type === 'aggregator')!;
  const workers = nodes.filter((n) => n !== own);
  const bind = parseAddress(own.address);
  const resume = options.resume ? findCheckpoint(config, resolve(options.outputsDir ?? 'outputs'), print) : undefined;

  const tls = usesTls(config) ? loadTlsFromDir(config.certs, own.address) : undefined;
  const node = await startNode({
    ...options,
    credentials: aggregatorCredentials(options.credentials, own, workers),
    tls,
    host: options.host ?? bind.host,
    port: options.port ?? bind.port,
    requestTimeoutMs: options.requestTimeoutMs ?? config.timeouts.request_ms,
    print,
  });
  await node.roles.apply(own, { resume });
  const role = node.roles.role as AggregatorRole;
  // With the transport as it was, not as a default would guess it again (`main.js report` reads it).
  role.outputs.writeJson('config.json', { ...config, tls: Boolean(tls) });

  print(`transport: ${transportOf(tls)}${tls ? '' : config.tls === false ? ', as config.json says ("tls": false)' : ', the default when every node is on loopback'}`);
  print(`experiment ${config.experiment}: pushing configs to ${workers.length} workers (deadline ${config.timeouts.push_ms / 1000} s)`);
  const outcomes = await pushConfigs(node.context.peers, workers, {
    deadlineMs: config.timeouts.push_ms,
    requestMs: config.timeouts.request_ms,
    onOutcome: (o) => {
      const said = o.result === 'unreachable' ? options.launchFailures?.get(o.address) : undefined;
      if (said) o.detail += `; the launcher saw it ${said}`;
      print(formatOutcome(o));
      // At once, not after the slowest push: a round may already be under way.
      if (o.result === 'configured') role.health.configured(o.address, o.detail);
      else role.health.down(o.address, `${o.result} at the push: ${o.detail}`);
    },
    // The round may start while the push retries: it must not select clients behind a worker not there, and a round
    // that goes on with fewer clients says why.
    onUnreachable: (address, reason) => {
      const line = `worker ${address} is not answering yet (${reason}): the push retries, and a round that starts meanwhile goes on without it`;
      node.logger.warn(line);
      print(line);
      role.health.down(address, `not answering the push yet (${reason})`);
    },
  });
  print(summarize(outcomes));
  node.logger.info(`config push: ${summarize(outcomes)}`);

  const missing = missingForExperiment(role.topology, own.settings, outcomes);
  if (missing.length) {
    await node.close();
    throw new ExperimentNotReady(`the experiment cannot start:\n${missing.map((m) => `  - ${m}`).join('\n')}`);
  }
  const without = goingOnWithout(outcomes);
  const absent = outcomes.filter((o) => o.result !== 'configured').length;
  if (without.length) print(`going on without ${absent} workers (the quorum holds):\n${without.map((w) => `  - ${w}`).join('\n')}`);
  for (const o of outcomes) if (o.result === 'failed') role.health.failed(o.address, o.detail, false); // the quorum was checked above, and said
  const watch = new WorkerWatch(node.context.peers, workers, {
    intervalMs: config.timeouts.heartbeat_ms,
    requestMs: config.timeouts.request_ms,
    roundMs: config.timeouts.round_ms,
    onDown: (address, reason) => {
      const line = `worker ${address} is down (${reason})`;
      node.logger.warn(line);
      print(line);
      role.health.down(address, reason);
    },
    onFailed: (address, reason) => {
      const line = `worker ${address} failed: ${reason}`;
      node.logger.error(line);
      print(line);
      role.health.failed(address, reason);
    },
    onUp: (address, how, resumed) => {
      const line = `worker ${address} is ${how}`;
      node.logger.info(line);
      print(line);
      role.health.up(address, how, resumed);
    },
  });
  // The push reported these already: the watch takes it from there.
  for (const o of outcomes) watch.seed(o.address, o.result === 'configured' ? 'up' : o.result === 'failed' ? 'failed' : 'down');
  watch.start();
  void role.finished.finally(() => watch.stop()).catch(() => undefined);
  const first = (resume?.round ?? 0) + 1;
  const trust = tls ? `; the browser should trust the testbed's CA, ${tls.files.ca}` : '';
  print(`dashboard: ${baseUrl(own.address, Boolean(tls))}/ (open in a browser; it updates as rounds finish${trust})`);
  // Rounds run while the push waits for slow workers: a short experiment may be over by now.
  const rounds = plannedRounds(config);
  const privacy = describeBudget(config);
  if (!role.isFinished) print(`running ${first > 1 ? `rounds ${first} to ${rounds}` : `${rounds} rounds`} of ${config.training.strategy} on ${config.model.architecture} (${describeVector(config)})${privacy ? `; differential privacy: ${privacy}` : ''}`);
  const paths = pathsOf(config);
  const finished = role.finished.then(async (summary) => ({ ...summary, ...(await reportOn(role, node, print, paths)) }));
  return { node: { ...node, close: () => (watch.stop(), node.close()) }, role, finished };
}

/**
 * The aggregator's own token and the workers' digests. Given the cluster token, it makes itself the
 * book a launcher would and keeps no more than that: it knows every node of config.json, and no one else.
 */
function aggregatorCredentials(credentials: Credentials, own: AggregatorNodeConfig, workers: NodeConfig[]): Credentials {
  const secret = credentials.operatorToken();
  if (secret === undefined) {
    credentials.bind(own.address);
    return credentials;
  }
  return Credentials.fromBook(tokenBook(secret, own.address, [own.address, ...workers.map((w) => w.address)], own.address));
}

/** How long the report waits for the workers' records of the last round. */
const LAST_LOGS_WAIT_MS = 5000;

/** outputs/<experiment>/report.html and its PNG charts; a report that fails costs the experiment nothing. */
/** The report, and each round's floor for the summary (both once the workers' records of the last round are in). */
async function reportOn(role: AggregatorRole, node: StartedNode, print: (line: string) => void, paths: Paths): Promise<{ report?: string; floors?: Map<number, RoundFloor> }> {
  const { config, outputs, cluster } = role;
  let floors: Map<number, RoundFloor> | undefined;
  try {
    const last = outputs.rows[outputs.rows.length - 1];
    const workers = role.participants.filter((a) => a !== config.address);
    // And clients that were up but too late for a round's sum (the straggler policy): each may still be
    // training that round, and its record, with the work it wasted, is for the report too.
    const tooLate = new Map<string, number>();
    for (const row of outputs.rows) for (const c of row.missing) if (role.machine.members.healthOf(c)?.state === 'up') tooLate.set(c, row.round);
    const [late] = await Promise.all([
      last ? cluster.settle(last.round, workers, LAST_LOGS_WAIT_MS) : [],
      ...[...tooLate].map(([client, round]) => cluster.settle(round, [client], LAST_LOGS_WAIT_MS)),
    ]);
    if (late.length) node.logger.warn(`the report goes without round ${last!.round} of ${late.join(', ')}: their records did not arrive`);
    floors = roundFloors(outputs.rows, cluster.records(), paths);
    const histograms = Object.fromEntries(role.histograms);
    outputs.writeJson(CLIENTS_FILE, histograms);
    const { html, pngs } = await writeReport(outputs.dir, {
      experiment: config.experiment,
      aggregator: config.address,
      transport: transportName(Boolean(node.context.tls)),
      settings: config.settings,
      attackers: config.attackers,
      workers: role.workers,
      rows: outputs.rows,
      records: cluster.records(),
      histograms,
      events: outputs.events(),
      floors,
    });
    print(`report: ${html} (charts as PNG: ${pngs.length} in ${outputs.dir}/charts)`);
    return { report: html, floors };
  } catch (err) {
    node.logger.warn(`the report could not be written: ${(err as Error).stack ?? err}`);
    return { floors };
  }
}

/** The model's size, and under SCAFFOLD the control variates that double what each update and model carry. */
function describeVector(config: ExperimentConfig): string {
  const parameters = modelParameters(config);
  return carriesControl(config) ? `${parameters} parameters, and as many control variates in every update and model` : `${parameters} parameters`;
}
