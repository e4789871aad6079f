/**
 * Starting and stopping workers on a real testbed over ssh.
 *   npm run ssh -- start|stop|status|fetch-logs [--config config.json | --hosts FILE] [--dry-run]
 * Workers are started with setsid+nohup so they outlive the ssh session. Each worker's token book
 * (its own token and the others' digests, made from the cluster token: it can act only as itself)
 * travels on ssh's stdin into an owner-only file, never on a command line. So do the HE key (to
 * clients only) and, under mutual TLS, each machine's own certificate and key and the testbed's CA.
 * With a hosts file there is no config to make books from: the workers get the cluster token itself.
 * --dry-run prints every command it would run and contacts nothing.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, loadExperimentConfig, resolveNodeConfigs, usesTls } from '../src/config/load';
import type { ExperimentConfig } from '../src/config/schema';
import { certFiles } from '../src/net/certs';
import { parseAddress, type Address } from '../src/config/address';
import { resolveCredentials } from '../src/net/auth';
import { bookFileName, tokenBook } from '../src/net/identity';
import { launchReportFile, writeLaunchReport, type LaunchFailures } from '../src/orchestrator/launch-report';
import { nodesFlag, workerProcesses } from '../src/config/processes';
import { nodeIdFor } from '../src/log/logger';

/** A worker process to start on a machine (host:port: its first node's address). */
export interface Target extends Address {
  role: string;
  /** The nodes it serves: its own address alone, or several clients of the machine (config.json's clients_per_process). */
  nodes: string[];
}

interface Flags {
  config: string;
  hosts?: string;
  user?: string;
  dir: string;
  sshOption: string[];
  tokenFile?: string;
  into: string;
  dryRun?: boolean;
  parallel: number;
  heKey: string;
  sshConfig?: string;
  certs?: string;
}

/** A step to run: the program, its arguments, and what goes on its stdin. */
export interface Step {
  target: Target;
  argv: string[];
  /**
   * What goes on stdin: the worker's token book (the cluster token itself with a hosts file), one
   * node's book (a process of several), or a file's content (the HE key).
   */
  stdin?: 'TOKEN' | { book: string } | { file: string };
}

const REMOTE_KEY = 'keys/he-secret.json';
/**
 * Where a worker's TLS files go on its machine: a folder of its own, named by its address, as the
 * local testbed gives each worker (machines may share a project folder, as the emulated ones do: each
 * worker is started with its own folder, and down removes them one by one).
 */
const remoteTls = (target: Target) => `tls/${target.host}-${target.port}`;

/**
 * Under mutual TLS (config.json's `tls`, on by default off loopback), the certificates' folder; else
 * undefined. A hosts file says nothing of TLS: there `--certs` turns it on.
 */
function certsFolder(flags: Flags, config: ExperimentConfig | undefined): string | undefined {
  if (!config) return flags.certs;
  return usesTls(config) ? (flags.certs ?? config.certs) : undefined;
}

/**
 * Under mutual TLS each machine gets the CA and its own certificate and key, nothing of another
 * machine's: three owner-only files, each over ssh's stdin.
 */
export function tlsSteps(flags: Flags, targets: Target[], certs: string | undefined): Step[] {
  if (!certs) return [];
  return targets.flatMap((target) =>
    // The CA once, then each of its nodes' certificate and key.
    target.nodes.flatMap((address, i) => {
      const local = certFiles(certs, address);
      for (const file of Object.values(local)) {
        if (!flags.dryRun && !existsSync(file)) throw new Error(`mutual TLS: ${file} is missing; make the certificates first with \`node main.js certs --config <config.json>\`${flags.hosts ? ' and name their folder with --certs' : ''}`);
      }
      const remote = certFiles(remoteTls(target), address);
      return (i === 0 ? (['ca', 'cert', 'key'] as const) : (['cert', 'key'] as const)).map((part) => ({
        target,
        argv: sshArgs(flags, target, `cd ${quote(flags.dir)} && (umask 077 && mkdir -p ${remoteTls(target)}) && ${writeAtomically(remote[part])} && echo "TLS ${part} written to ${remote[part]}"`),
        stdin: { file: local[part] },
      }));
    }),
  );
}

/** With he.key_holder "clients", the secret key goes to the client machines, and only to them. */
export function keySteps(flags: Flags, targets: Target[], config: ExperimentConfig | undefined): Step[] {
  if (!config) return [];
  if (!config.he.enabled || config.he.key_holder !== 'clients') return [];
  const remote = `cd ${quote(flags.dir)} && mkdir -p keys && ${writeAtomically(REMOTE_KEY)} && echo "HE secret key written to ${REMOTE_KEY}"`;
  return targets.filter((t) => t.role === 'client').map((target) => ({ target, argv: sshArgs(flags, target, remote), stdin: { file: flags.heKey } }));
}

/**
 * Writes stdin to `file` in one rename, owner-only: two machines sharing a folder (NFS, or the
 * emulated testbed's one disk) never read a half-written file.
 */
const writeAtomically = (file: string) => `(umask 077 && cat > ${file}.$$ && mv -f ${file}.$$ ${file})`;

const quote = (arg: string) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`);

/** Workers from config.json (every entry but the aggregator), or one `host[:port]` per line of a hosts file. */
export function targetsFrom(flags: Pick<Flags, 'hosts'>, config: ExperimentConfig | undefined, includeAggregator = false): Target[] {
  if (!config) {
    return readFileSync(flags.hosts!, 'utf8')
      .split('\n')
      .map((line) => line.replace(/#.*/, '').trim())
      .filter(Boolean)
      .map((line) => parseAddress(line))
      .map((address) => ({ ...address, role: 'worker', nodes: [`${address.host}:${address.port}`] }));
  }
  const aggregator = [...resolveNodeConfigs(config).values()].find((n) => n.type === 'aggregator')!.address;
  const workers = workerProcesses(config).map((proc) => ({ ...parseAddress(proc.addresses[0]), role: proc.type, nodes: proc.addresses }));
  return includeAggregator ? [...workers, { ...parseAddress(aggregator), role: 'aggregator', nodes: [aggregator] }] : workers;
}

/** Where a process of several nodes keeps their token books on its machine, one file each (<host>-<port>.json). */
const remoteBooks = (target: Target) => `.run/tokens-${target.host}-${target.port}`;

/** A process of several nodes gets each node's token book first, each over ssh's stdin into its own owner-only file. */
export function bookSteps(flags: Flags, targets: Target[]): Step[] {
  return targets
    .filter((target) => target.nodes.length > 1)
    .flatMap((target) =>
      target.nodes.map((address) => {
        const file = `${remoteBooks(target)}/${bookFileName(address)}`;
        const remote = `cd ${quote(flags.dir)} && (umask 077 && mkdir -p ${remoteBooks(target)}) && ${writeAtomically(file)} && echo "the token book of ${address} written"`;
        return { target, argv: sshArgs(flags, target, remote), stdin: { book: address } };
      }),
    );
}

function sshArgs(flags: Flags, target: Target, remote: string): string[] {
  const login = flags.user ? `${flags.user}@${target.host}` : target.host;
  return ['ssh', ...sshFlags(flags), login, remote];
}

/** What ssh and scp both take: a config file of the testbed's (`-F`), batch mode, extra `-o` options. */
function sshFlags(flags: Flags): string[] {
  return [...(flags.sshConfig ? ['-F', flags.sshConfig] : []), '-o', 'BatchMode=yes', ...flags.sshOption.flatMap((o) => ['-o', o])];
}

export function planSteps(action: string, flags: Flags, targets: Target[], tls = false): Step[] {
  const dir = quote(flags.dir);
  return targets.map((target) => {
    // Named by address too: machines that share a folder keep apart. A process of several nodes has
    // a pid file for each (the same pid), so stop finds them whatever clients_per_process says later.
    const pidFileOf = (address: string) => `.run/worker-${nodeIdFor(parseAddress(address).host, parseAddress(address).port)}.pid`;
    const pids = target.nodes.map(pidFileOf);
    const [pid] = pids;
    const out = `logs/worker-${target.host}-${target.port}.out`;
    switch (action) {
      case 'start': {
        const key = target.role === 'client' ? ` --he-key ${REMOTE_KEY}` : '';
        const certs = tls ? ` --tls-dir ${remoteTls(target)}` : '';
        // Named by address too: machines that share a folder must not read each other's books. A
        // process of several nodes has their books in a folder (bookSteps); one node's comes on stdin.
        const several = target.nodes.length > 1;
        const tokenFile = several ? remoteBooks(target) : `.run/token-${target.host}-${target.port}`;
        const where = several ? `--nodes ${nodesFlag({ addresses: target.nodes })}` : `--host ${target.host} --port ${target.port}`;
        const worker = `node main.js ${where} --token-file ${tokenFile} --logs logs${key}${certs}`;
        // Started, then watched until its last node listens (or for 10 s): one that exits at once (a
        // certificate of another machine, a key missing) is a failure, in the worker's own words.
        const last = target.nodes[target.nodes.length - 1];
        const copies = pids.slice(1).map((file) => `cp ${pid} ${file}; `).join('');
        const watch =
          `for i in $(seq 100); do grep -qF "listening on ${last}," ${out} && break; kill -0 "$(cat ${pid})" 2>/dev/null || break; sleep 0.1; done; ` +
          `if kill -0 "$(cat ${pid})" 2>/dev/null; then ${copies}echo "started pid $(cat ${pid})"; else echo "the worker exited at start: $(tail -n 3 ${out} | tr '\\n' ' ')"; rm -f ${pids.join(' ')}; exit 1; fi`;
        const remote =
          `cd ${dir} && mkdir -p logs .run && ${several ? '' : `${writeAtomically(tokenFile)} && `}` +
          `if [ -f ${pid} ] && kill -0 "$(cat ${pid})" 2>/dev/null; then echo "already running"; else ` +
          `setsid nohup ${worker} > ${out} 2>&1 < /dev/null & echo $! > ${pid}; ${watch}; fi`;
        return { target, argv: sshArgs(flags, target, remote), ...(several ? {} : { stdin: 'TOKEN' as const }) };
      }
      case 'stop':
        return {
          target,
          argv: sshArgs(
            flags,
            target,
            `cd ${dir} && stopped=; for f in ${pids.join(' ')}; do if [ -f $f ]; then kill "$(cat $f)" 2>/dev/null; rm -f $f; stopped=1; fi; done; if [ -n "$stopped" ]; then echo stopped; else echo "not running"; fi`,
          ),
        };
      case 'status':
        return {
          target,
          argv: sshArgs(flags, target, `cd ${dir} && if [ -f ${pid} ] && kill -0 "$(cat ${pid})" 2>/dev/null; then echo "running pid $(cat ${pid})"; else echo stopped; fi`),
        };
      case 'fetch-logs': {
        const login = flags.user ? `${flags.user}@${target.host}` : target.host;
        const local = join(flags.into, `${target.host}-${target.port}`);
        return { target, argv: ['scp', '-r', '-p', ...sshFlags(flags), `${login}:${flags.dir}/logs/.`, local] };
      }
      default:
        throw new Error(`unknown action "${action}" (start, stop, status or fetch-logs)`);
    }
  });
}

export function describeStep(step: Step, config?: ExperimentConfig): string {
  const line = step.argv.map(quote).join(' ');
  if (step.stdin === 'TOKEN') return `${line} <<< ${config ? `"<the token book of ${step.target.host}:${step.target.port}>"` : '"$FL_TOKEN"'}`;
  if (step.stdin && 'book' in step.stdin) return `${line} <<< "<the token book of ${step.stdin.book}>"`;
  return step.stdin ? `${line} < ${quote(step.stdin.file)}` : line;
}

/** What a worker's token file holds: its token book, made from the cluster token and config.json's nodes; the cluster token itself without a config. */
function tokenFor(address: string, secret: string, config: ExperimentConfig | undefined): string {
  if (!config) return secret;
  const nodes = [...resolveNodeConfigs(config).values()];
  const aggregator = nodes.find((n) => n.type === 'aggregator')!.address;
  return JSON.stringify(tokenBook(secret, address, nodes.map((n) => n.address), aggregator));
}

/** `token`: the book of the node at an address. */
function runStep(step: Step, token: (address: string) => string | undefined): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(step.argv[0], step.argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', (err) => resolve({ code: 127, output: err.message }));
    child.on('close', (code) => resolve({ code: code ?? 1, output: output.trim() }));
    const { stdin } = step;
    const input = stdin === 'TOKEN' ? token(`${step.target.host}:${step.target.port}`) + '\n' : !stdin ? undefined : 'book' in stdin ? token(stdin.book) + '\n' : readFileSync(stdin.file);
    child.stdin.end(input);
  });
}

async function main(action: string, flags: Flags): Promise<number> {
  // Read once: every step below is planned from the same config.
  const config = flags.hosts ? undefined : loadExperimentConfig(flags.config);
  const targets = targetsFrom(flags, config, action === 'fetch-logs');
  const certs = action === 'start' ? certsFolder(flags, config) : undefined;
  const handOver = action === 'start' ? [...keySteps(flags, targets, config), ...tlsSteps(flags, targets, certs), ...bookSteps(flags, targets)] : [];
  const steps = [...handOver, ...planSteps(action, flags, targets, Boolean(certs))];
  if (flags.dryRun) {
    console.log(`# dry run: ${steps.length} ${action} commands, nothing is contacted`);
    for (const step of steps) console.log(describeStep(step, config));
    return 0;
  }
  const secret = action === 'start' ? resolveCredentials({ tokenFile: flags.tokenFile }).operatorToken() : undefined;
  if (action === 'start' && secret === undefined) throw new Error('--token-file: the launcher makes each worker its token book from the cluster token, not from a token book');
  const token = (address: string) => secret && tokenFor(address, secret, config);
  if (action === 'fetch-logs') for (const s of steps) mkdirSync(s.argv[s.argv.length - 1], { recursive: true });
  let failures = 0;
  const withoutFiles = new Set<Target>();
  /** What each worker that did not start said, by address: the aggregator names it with this. */
  const notStarted: LaunchFailures = {};
  const runAll = async (batch: Step[]) => {
    const queue = [...batch];
    const workers = Array.from({ length: Math.max(1, flags.parallel) }, async () => {
      for (let step = queue.shift(); step; step = queue.shift()) {
        const { code, output } = await runStep(step, token);
        const said = output.split('\n').slice(-2).join(' | ');
        if (code !== 0) failures++;
        if (code !== 0 && handOver.includes(step)) withoutFiles.add(step.target);
        else if (code !== 0 && action === 'start') for (const address of step.target.nodes) notStarted[address] = said;
        console.log(`  ${code === 0 ? 'ok' : 'FAILED'}  ${step.target.host}:${step.target.port}  ${said}`);
      }
    });
    await Promise.all(workers);
  };
  // The keys and certificates are on every machine before any worker starts (a worker reads its
  // certificate at start); a machine that did not get them all is not started.
  await runAll(handOver);
  const starts = steps.slice(handOver.length);
  for (const target of withoutFiles) {
    console.log(`  skipped ${target.nodes.join(' ')}: its key or certificates did not arrive`);
    for (const address of target.nodes) notStarted[address] = 'not started: its key or certificates did not arrive';
  }
  failures += starts.filter((s) => withoutFiles.has(s.target)).length;
  await runAll(starts.filter((s) => !withoutFiles.has(s.target)));
  if (action === 'start') writeLaunchReport(launchReportFile(flags.tokenFile), notStarted);
  console.log(`${action}: ${steps.length - failures} of ${steps.length} succeeded`);
  return failures ? 1 : 0;
}

const program = new Command()
  .name('ssh-launcher')
  .description('start, stop and inspect workers on testbed machines over ssh')
  .argument('<action>', 'start, stop, status or fetch-logs')
  .option('--config <file>', 'read the hosts from this config', 'config.json')
  .option('--hosts <file>', 'read the hosts from this file instead (host[:port] per line)')
  .option('--user <user>', 'ssh user')
  .option('--dir <dir>', 'the project folder on every machine (where npm install ran)', 'fl-testbed')
  .option('--ssh-config <file>', 'an ssh client config for ssh and scp (-F); `testbed up --emulate` writes one')
  .option('--ssh-option <opt>', 'extra ssh -o option (repeatable)', (v: string, all: string[]) => all.concat(v), [] as string[])
  .option('--token-file <file>', 'the cluster token, from which each worker gets its token book (or $FL_TOKEN)')
  .option('--into <dir>', 'fetch-logs: where the logs go, one folder per machine', 'logs/testbed')
  .option('--parallel <n>', 'machines handled at once', (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number, 1 or more');
    return n;
  }, 8)
  .option('--he-key <file>', 'start: the HE secret key to give the client machines when clients hold it', 'keys/he-secret.json')
  .option('--certs <dir>', 'start: the certificates `main.js certs` made, for mutual TLS (default: config.json\'s "certs"; with --hosts, TLS is on only with --certs)')
  .option('--dry-run', 'print the commands, contact nothing')
  .action(async (action: string, flags: Flags) => {
    try {
      process.exitCode = await main(action, flags);
    } catch (err) {
      console.error(err instanceof ConfigError ? err.message : `ssh-launcher: ${(err as Error).message}`);
      process.exitCode = 2;
    }
  });

if (require.main === module) program.parseAsync();
