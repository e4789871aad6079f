/**
 * One program for every testbed machine.
 *   node main.js [--host H] [--port P]       a worker: waits for its config at POST /config
 *                [--nodes H:P,H:P,…]         … several, in one process (clients sharing its backend and HE threads)
 *   node main.js agg [--config config.json]  the aggregator: pushes configs, runs the experiment
 *                    [--resume]              … going on from its last checkpoint
 *   node main.js report <outputs/experiment> report.html and PNG charts, made again from disk
 *   node main.js compare <dir> <dir> …       runs side by side: compare.html and PNG charts (--out DIR)
 *   node main.js eval <model-dir>            a saved model scored on the held-out digits
 *                    [--he-key F]            … an encrypted one (only model.he) decrypted in memory
 *   node main.js decrypt <round-dir>         a round's model.he (clients held the key) to model.json + weights.bin
 *                    --he-key F [--out DIR]  … with the clients' secret key
 *   node main.js keygen [--config F]         the HE secret key, when clients hold it
 *   node main.js certs [--config F]          the testbed's CA and a certificate per node (mutual TLS)
 * A command's heavy modules (the aggregator's run, the report's charts) are loaded as it runs: a
 * worker, which most processes are, does not load them.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadExperimentConfig, resolveNodeConfigs, topologyOf, usesTls } from './src/config/load';
import { addressProblem, baseUrl, canonicalAddress, DEFAULT_PORT, parseAddress } from './src/config/address';
import { shareReads } from './src/data/source';
import { readScrapeToken, resolveCredentials } from './src/net/auth';
import { bookFileName } from './src/net/identity';
import { DEFAULT_VALID_DAYS, makeTestbedCerts } from './src/net/certs';
import { loadTlsFromDir, TlsSetupError } from './src/net/tls';
import { DEFAULT_KEY_FILE, writeSecretKey } from './src/he/keys';
import { closeOnSignals, startNode } from './src/node/start';
import { readLaunchFailures } from './src/orchestrator/launch-report';
import { ExperimentNotReady } from './src/orchestrator/push';
import { ResumeError } from './src/orchestrator/resume';
import { formatSummary } from './src/orchestrator/summary';
import { describeBudget } from './src/privacy/dp';

function nodeId(text: string): string {
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(text)) throw new InvalidArgumentError('expected up to 100 letters, digits, ".", "_" or "-" (it names log files)');
  return text;
}

function nodeList(text: string): string[] {
  const addresses = text.split(',').map((a) => a.trim());
  const problem = addresses.map(addressProblem).find(Boolean);
  if (problem) throw new InvalidArgumentError(problem);
  if (addresses.some((a) => !a.includes(':'))) throw new InvalidArgumentError('each node as host:port');
  const canonical = addresses.map((a) => canonicalAddress(a));
  if (new Set(canonical).size !== canonical.length) throw new InvalidArgumentError('a node is named twice');
  return canonical;
}

function portNumber(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('expected a port number 0-65535');
  return port;
}

interface AggFlags {
  config: string;
  check?: boolean;
  resume?: boolean;
  quiet?: boolean;
  keepServing?: boolean;
  host?: string;
  port?: number;
}

interface CommonFlags {
  token?: string;
  tokenFile?: string;
  metricsTokenFile?: string;
  id?: string;
  logs: string;
  outputs: string;
  logLevel: string;
  debug?: boolean;
}

const withCommonFlags = (command: Command) =>
  command
    .option('--token-file <file>', "this node's token book (a launcher makes one per node) or the cluster token (or set $FL_TOKEN)")
    .addOption(new Option('--token <token>', 'the cluster token itself (visible to ps; prefer --token-file)'))
    .addOption(new Option('--metrics-token-file <file>', 'a token that may read GET /metrics and nothing else, for Prometheus').env('FL_METRICS_TOKEN_FILE'))
    .option('--id <id>', 'node id used in log file names (default: host-port)', nodeId)
    .option('--logs <dir>', 'where logs go', 'logs')
    .option('--outputs <dir>', 'where models and metrics go', 'outputs')
    .addOption(new Option('--log-level <level>', 'how much the log says').choices(['error', 'warn', 'info', 'debug']).default('info'))
    .option('--debug', 'same as --log-level debug');

/**
 * `of`: one node among several in this process (--nodes): a --token-file folder gives it its own
 * book, <host>-<port>.json; a file (the cluster token) serves them all.
 */
function common(flags: CommonFlags, of?: string) {
  const folder = of && flags.tokenFile && statSync(flags.tokenFile, { throwIfNoEntry: false })?.isDirectory();
  const tokenFile = folder ? join(flags.tokenFile!, bookFileName(of)) : flags.tokenFile;
  return {
    credentials: resolveCredentials({ ...flags, tokenFile }),
    scrapeToken: readScrapeToken(flags.metricsTokenFile),
    id: flags.id,
    logsDir: flags.logs,
    outputsDir: flags.outputs,
    logLevel: flags.debug ? 'debug' : flags.logLevel,
  };
}

function fail(err: unknown): never {
  if (err instanceof ConfigError || err instanceof ResumeError) {
    console.error(err.message);
    process.exit(2);
  }
  if (err instanceof ExperimentNotReady || err instanceof TlsSetupError) {
    console.error(err.message);
    process.exit(1);
  }
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL' || code === 'EACCES') {
    console.error(`cannot listen: ${(err as Error).message}`);
    process.exit(1);
  }
  console.error((err as Error)?.message ?? String(err));
  process.exit(1);
}

function printTopology(file: string, config: ReturnType<typeof loadExperimentConfig>): void {
  const topology = topologyOf(config);
  const privacy = describeBudget(config);
  console.log(`${file}: valid. experiment ${config.experiment}, ${config.rounds} rounds, strategy ${config.training.strategy}${privacy ? `; differential privacy: ${privacy}` : ''}`);
  for (const node of resolveNodeConfigs(config).values()) {
    const below = topology.childrenOf(node.address);
    const clients = below.filter((n) => topology.isClient(n)).length;
    const switches = below.filter((n) => topology.isSwitch(n)).map((sw) => `switch ${sw} (${topology.clientsBeneath(sw).length} clients beneath)`);
    const detail =
      node.type === 'client'
        ? `slice ${node.index} of ${node.client_number}, reports to ${node.upstream}`
        : node.type === 'switch'
          ? `${[clients && `${clients} clients`, ...switches].filter(Boolean).join(', ')}, reports to ${node.upstream}`
          : `${topology.switches.length} switches, ${topology.clients.length} clients`;
    console.log(`  ${node.address.padEnd(21)} ${node.type.padEnd(10)} ${detail}`);
  }
}

const program = new Command()
  .name('main.js')
  .description('Federated learning across testbed machines, with homomorphically encrypted updates.');

withCommonFlags(
  program
    .command('worker', { isDefault: true })
    .description('start a worker that waits for its config (the default)')
    .option('--host <host>', 'address to listen on', '0.0.0.0')
    .option('--port <port>', 'port to listen on', portNumber, DEFAULT_PORT)
    .option('--he-key <file>', 'the HE secret key, for a client when clients hold it (made by `main.js keygen`)', DEFAULT_KEY_FILE)
    .option('--tls-dir <dir>', "mutual TLS: the folder with the testbed's ca.pem and this node's <host>-<port>.pem and -key.pem (made by `main.js certs`)")
    .option('--nodes <addresses>', 'several nodes in this one process (host:port,host:port,…), each its own on the wire; clients among them share the TensorFlow.js backend, data and HE threads. --token-file is then a folder of their token books, <host>-<port>.json', nodeList),
).action(async (flags: CommonFlags & { host: string; port: number; heKey: string; tlsDir?: string; nodes?: string[] }, command: Command) => {
  try {
    if (flags.nodes && flags.id) throw new InvalidArgumentError('--id names one node: with --nodes each is named <host>-<port>');
    const given = ['host', 'port'].filter((option) => command.getOptionValueSource(option) === 'cli');
    if (flags.nodes && given.length) throw new InvalidArgumentError(`--nodes names each node's address: drop --${given.join(' and --')}`);
    const listening = flags.nodes?.map((address) => parseAddress(address)) ?? [{ host: flags.host, port: flags.port }];
    if (flags.tlsDir && flags.host === '0.0.0.0' && !flags.nodes) throw new TlsSetupError('--tls-dir: name this node\'s address with --host, so its certificate can be found (and checked against it)');
    if (listening.length > 1) shareReads();
    const nodes = [];
    for (const { host, port } of listening) {
      const tls = flags.tlsDir ? loadTlsFromDir(flags.tlsDir, `${host}:${port}`) : undefined;
      nodes.push(await startNode({ host, port, heKeyFile: flags.heKey, tls, ...common(flags, flags.nodes && `${host}:${port}`) }));
    }
    closeOnSignals(nodes);
  } catch (err) {
    fail(err);
  }
});

withCommonFlags(
  program
    .command('agg')
    .description('start the aggregator: validate config.json, push every worker its config, run the experiment')
    .option('--config <file>', 'the experiment config', 'config.json')
    .option('--check', 'only validate the config and print the topology, then exit')
    .option('--resume', "go on from the experiment's last checkpoint in --outputs (after a crash, or to run more rounds)")
    .option('--quiet', 'print only errors and the summary table at the end (for scripts)')
    .option('--keep-serving', 'after the last round, keep serving the dashboard until Ctrl-C')
    .option('--host <host>', "address to listen on (default: the aggregator's address in config.json)")
    .option('--port <port>', "port to listen on (default: the aggregator's port in config.json)", portNumber),
).action(async (flags: CommonFlags & AggFlags) => {
  try {
    const config = loadExperimentConfig(flags.config);
    if (flags.check) return printTopology(flags.config, config);
    const { createProgress, progressMode } = require('./src/orchestrator/progress') as typeof import('./src/orchestrator/progress');
    const mode = progressMode(Boolean(flags.quiet));
    const progress = createProgress(mode);
    const { runAggregator } = require('./src/orchestrator/run-aggregator') as typeof import('./src/orchestrator/run-aggregator');
    const { node, role, finished } = await runAggregator({
      config,
      host: flags.host,
      port: flags.port,
      resume: flags.resume,
      launchFailures: readLaunchFailures(flags.tokenFile),
      ...common(flags),
      print: progress.print,
      console: mode === 'lines', // log lines would tear the bars; the log file has them all
    });
    closeOnSignals(node);
    progress.follow(role);
    // The bars go before any last line, the summary or why the experiment stopped.
    const summary = await finished.finally(() => progress.stop());
    console.log(formatSummary(summary.rounds, summary.outputs, summary.floors));
    if (flags.keepServing) return console.log(`still serving the dashboard at ${baseUrl(role.config.address, Boolean(node.context.tls))}/ (Ctrl-C to stop)`);
    await node.close();
    process.exit(0);
  } catch (err) {
    fail(err);
  }
});

program
  .command('report')
  .description("write an experiment's report.html and PNG charts again, from its outputs and the aggregator's logs")
  .argument('<experiment-dir>', 'an experiment\'s outputs folder, like outputs/mnist-mlp')
  .option('--logs <dir>', "the aggregator's logs folder (its cluster/ subfolder holds the workers' records)", 'logs')
  .action(async (dir: string, flags: { logs: string }) => {
    try {
      const { reportFromDisk } = require('./src/report/report') as typeof import('./src/report/report');
      const { html, pngs } = await reportFromDisk(dir, flags.logs);
      console.log(`wrote ${html}\n${pngs.map((p) => `wrote ${p}`).join('\n')}`);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('compare')
  .description('put runs side by side: accuracy against round and wall time, bytes, phase times, ε, and the settings that differ')
  .argument('<experiment-dirs...>', "two experiments' outputs folders or more, like outputs/fedavg outputs/fedprox")
  .option('--out <dir>', 'where compare.html and charts/ go', 'outputs/compare')
  .action(async (dirs: string[], flags: { out: string }) => {
    try {
      const { writeComparison } = require('./src/report/compare') as typeof import('./src/report/compare');
      const { html, pngs } = await writeComparison(dirs, flags.out);
      console.log(`wrote ${html}\n${pngs.map((p) => `wrote ${p}`).join('\n')}`);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('keygen')
  .description('make the HE secret key for an experiment whose clients hold it; hand it to client machines only')
  .option('--config <file>', 'the experiment config (its he parameters)', 'config.json')
  .option('--out <file>', 'where to write the key (owner-only)', DEFAULT_KEY_FILE)
  .action(async (flags: { config: string; out: string }) => {
    try {
      const config = loadExperimentConfig(flags.config);
      const id = await writeSecretKey(config.he, flags.out);
      console.log(`wrote ${flags.out} (HE parameters ${id}); copy it to the client machines only, and start their workers with --he-key`);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('certs')
  .description("make the testbed's CA (once) and a certificate for every node of config.json, named by address, for mutual TLS")
  .option('--config <file>', 'the experiment config (its node addresses)', 'config.json')
  .option('--out <dir>', "where the files go (default: config.json's \"certs\", certs/ beside it)")
  .option('--days <n>', 'how long the node certificates are valid', (v: string) => Number(v), DEFAULT_VALID_DAYS)
  .action(async (flags: { config: string; out?: string; days: number }) => {
    try {
      const config = loadExperimentConfig(flags.config);
      const made = await makeTestbedCerts(flags.out ?? config.certs, Object.keys(config.others), { days: flags.days });
      console.log(`${made.newCa ? 'made the testbed CA' : 'signed with the existing CA'} ${made.ca} (ca-key.pem beside it: keep it here, hand it to no node)`);
      for (const n of made.nodes) console.log(`  ${n.address.padEnd(21)} ${n.files.cert}, ${n.files.key}`);
      const mode = usesTls(config) ? 'config.json runs with mutual TLS' : 'config.json runs plain HTTP ("tls" is false, or every node is on loopback): set "tls": true to use them';
      console.log(`${made.nodes.length} node certificates, valid ${flags.days} days; ${mode}.`);
      console.log(`start each worker with --tls-dir <folder holding ca.pem and its own two files>; the ssh launcher hands each machine its own.`);
      console.log(`for the dashboard in a browser, trust ${made.ca} (or accept the warning once).`);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('eval')
  .description("score a saved global model on its experiment's held-out digits")
  .argument('<model-dir>', 'a folder holding model.json (or only model.he, with --he-key), like outputs/<experiment>/models/round-020')
  .option('--config <file>', "the experiment's config (default: outputs/<experiment>/config.json)")
  .option('--he-key <file>', "the clients' HE secret key, to decrypt in memory a folder holding only model.he")
  .action(async (modelDir: string, flags: { config?: string; heKey?: string }) => {
    try {
      const { evaluateSaved } = require('./src/orchestrator/evaluate-saved') as typeof import('./src/orchestrator/evaluate-saved');
      console.log(await evaluateSaved(modelDir, flags));
    } catch (err) {
      fail(err);
    }
  });

program
  .command('decrypt')
  .description("turn a round's encrypted global model (model.he, kept when clients hold the HE key) into model.json + weights.bin")
  .argument('<round-dir>', 'a folder holding model.he, like outputs/<experiment>/models/round-020')
  .option('--he-key <file>', "the clients' HE secret key (what `main.js keygen` and `testbed up` make)", DEFAULT_KEY_FILE)
  .option('--out <dir>', 'where to write model.json and weights.bin (default: the round folder itself)')
  .option('--config <file>', "the experiment's config (default: outputs/<experiment>/config.json)")
  .action(async (roundDir: string, flags: { heKey: string; out?: string; config?: string }) => {
    try {
      const { decryptSaved } = require('./src/orchestrator/decrypt-saved') as typeof import('./src/orchestrator/decrypt-saved');
      console.log(await decryptSaved(roundDir, flags.heKey, flags));
    } catch (err) {
      fail(err);
    }
  });

program.parseAsync().catch(fail);
