/**
 * Pushes configs from config.json to workers that are already running, and reports each answer.
 *   npm run push-config -- [--config config.local.json] [--only ADDR,ADDR] [--type client|switch|aggregator]
 * Without --only or --type it pushes every entry but the aggregator's.
 */
import { Command } from 'commander';
import { canonicalAddress } from '../src/config/address';
import { ConfigError, loadExperimentConfig, resolveNodeConfigs, usesTls } from '../src/config/load';
import { loadTlsFromDir } from '../src/net/tls';
import { resolveCredentials } from '../src/net/auth';
import { Peers } from '../src/net/peers';
import { WireMeter } from '../src/net/wire-meter';
import { formatOutcome, pushConfigs, summarize } from '../src/orchestrator/push';

interface Flags {
  config: string;
  only?: string;
  type?: string;
  tokenFile?: string;
  deadline: number;
}

async function main(flags: Flags): Promise<number> {
  const credentials = resolveCredentials({ tokenFile: flags.tokenFile });
  const config = loadExperimentConfig(flags.config);
  const nodes = [...resolveNodeConfigs(config).values()];
  const only = flags.only ? new Set(flags.only.split(',').map((a) => canonicalAddress(a.trim()))) : undefined;
  for (const address of only ?? []) {
    if (!nodes.some((n) => n.address === address)) throw new Error(`--only: ${address} is not in ${flags.config}`);
  }
  const chosen = nodes.filter((n) =>
    only ? only.has(n.address) : flags.type ? n.type === flags.type : n.type !== 'aggregator',
  );
  if (!chosen.length) throw new Error('nothing to push: no entry matches --only/--type');
  // It calls the workers as the aggregator does: with its token (derived from the cluster token) and, under mutual TLS, its certificate.
  const aggregator = nodes.find((n) => n.type === 'aggregator')!.address;
  if (!credentials.holdsSecret) throw new Error('--token-file: push-config acts as the aggregator, and needs the cluster token (not a token book)');
  credentials.bind(aggregator);
  const tls = usesTls(config) ? loadTlsFromDir(config.certs, aggregator) : undefined;
  const outcomes = await pushConfigs(new Peers(credentials, new WireMeter(), undefined, tls), chosen, {
    deadlineMs: flags.deadline,
    onOutcome: (o) => console.log(formatOutcome(o)),
  });
  console.log(summarize(outcomes));
  return outcomes.every((o) => o.result === 'configured') ? 0 : 1;
}

const program = new Command()
  .name('push-config')
  .description('push configs from config.json to running workers')
  .option('--config <file>', 'the experiment config', 'config.json')
  .option('--only <addresses>', 'comma-separated addresses to push to')
  .option('--type <type>', 'push to every entry of this type')
  .option('--token-file <file>', 'the cluster token (or $FL_TOKEN)')
  .option('--deadline <ms>', 'give up on a worker that has not answered by then', (v: string) => Number(v), 10_000)
  .action(async (flags: Flags) => {
    try {
      process.exitCode = await main(flags);
    } catch (err) {
      console.error(err instanceof ConfigError ? err.message : `push-config: ${(err as Error).message}`);
      process.exitCode = 2;
    }
  });

if (require.main === module) program.parseAsync();
