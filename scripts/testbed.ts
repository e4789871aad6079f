/**
 * The local testbed: every worker of a config on its own loopback address, in the background.
 *   npm run testbed -- init [--nodes 15 --switches 2 --spines 0 --base 127.0.1] [--out config.local.json] [--no-tls] [--bits 8 | --no-quantize]
 *   npm run testbed -- init --clients 200 --per-process 10 [--switches 4 --spines 1 …]   many clients to a process
 *   npm run testbed -- up [--config config.local.json]     start the workers, wait until healthy
 *   npm run testbed -- status | down
 * Or emulated (root): a network namespace per machine, shaped links, sshd; workers started over ssh.
 *   npm run testbed -- up --emulate [--config config.json]
 *   npm run testbed -- exec <node> -- <command …>          run a command on that machine
 *   npm run testbed -- status --emulate | down --emulate
 * State (token, pid files, worker output) lives in --state (default .testbed/).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { ConfigError, loadExperimentConfig, resolveNodeConfigs, usesTls } from '../src/config/load';
import { certFiles, copyNodeFiles, ensureTestbedCerts, makeTestbedCerts } from '../src/net/certs';
import { answersHealth } from '../src/net/health-check';
import { parseAddress } from '../src/config/address';
import { formatConfig, INIT_BITS, testbedConfig } from '../src/config/testbed';
import { nodesFlag, workerProcesses } from '../src/config/processes';
import { nodeIdFor } from '../src/log/logger';
import { DEFAULT_KEY_FILE, ensureClientKey } from '../src/he/keys';
import { launchReportFile, writeLaunchReport, type LaunchFailures } from '../src/orchestrator/launch-report';
import { writeFileAtomic } from '../src/files/atomic';
import { bookFileName, tokenBook } from '../src/net/identity';
import { downEmulated, execOn, scheduleEmulated, statusEmulated, upEmulated } from '../src/emulate/testbed';
import { EmulateError } from '../src/emulate/system';
import { computeOf, testbedTag } from '../src/emulate/plan';
import { describeRemoved, joinCommand, prepareGroups, removeGroups } from '../src/emulate/cgroups';
import { LoopbackDriver, runsWorker } from '../src/emulate/drivers';
import { readScheduleSnapshot, runSchedule, writeScheduleSnapshot } from '../src/emulate/schedule-runner';
import { fetchPublicJson } from '../src/net/health-check';

const ROOT = resolve(__dirname, '..', '..');
const MAIN = join(ROOT, 'main.js');

interface StateFlags {
  state: string;
}

const paths = (state: string) => ({
  token: join(state, 'token'),
  pids: join(state, 'pids'),
  out: join(state, 'out'),
  logs: join(state, 'logs'),
  tls: join(state, 'tls'),
  tokens: join(state, 'tokens'),
});

/**
 * The testbed's cluster token, made once (owner-only) and kept by the operator: the aggregator runs
 * with it, and each worker gets a token book of its own made from it (writeTokenBook).
 */
export function ensureToken(state: string): string {
  const file = paths(state).token;
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(state, { recursive: true, mode: 0o700 });
  const token = randomBytes(24).toString('hex');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  return token;
}

/**
 * A worker's token book (its own token, the others' digests), owner-only in the state folder; its
 * path. `process`: a process of several nodes, whose books go in a folder of its own.
 */
function writeTokenBook(state: string, secret: string, worker: string, nodes: string[], aggregator: string, process?: string): string {
  const dir = process ? join(paths(state).tokens, process) : paths(state).tokens;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, bookFileName(worker));
  writeFileAtomic(file, JSON.stringify(tokenBook(secret, worker, nodes, aggregator)) + '\n', { mode: 0o600 });
  return file;
}

/** Whether a worker still runs; a zombie (killed, not reaped yet) does not. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A killed worker nobody has reaped yet (PID 1 in a container often does not) is a zombie: dead.
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return true; // no /proc (macOS): the signal check is all there is
  }
}

/** A worker's id (its state files' names) from its address. */
const idOf = (address: string) => nodeIdFor(parseAddress(address).host, parseAddress(address).port);

interface Running {
  id: string;
  pid: number;
  pidFile: string;
}

/** The workers this testbed started (and its schedule, when it has one), by their pid files. */
function runningWorkers(state: string, withSchedule = false): Running[] {
  const dir = paths(state).pids;
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.pid') && (withSchedule || f !== `${SCHEDULE}.pid`))
    .map((f) => ({ id: f.slice(0, -4), pid: Number(readFileSync(join(dir, f), 'utf8')), pidFile: join(dir, f) }));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function up(flags: StateFlags & { config: string; timeout: number; logs?: string; quiet?: boolean; heKey?: string; only?: string[]; outputs?: string }): Promise<number> {
  const config = loadExperimentConfig(flags.config);
  const nodeConfigs = [...resolveNodeConfigs(config).values()];
  const workers = nodeConfigs.filter((n) => n.type !== 'aggregator');
  const nodes = nodeConfigs.map((n) => n.address);
  const aggregator = nodeConfigs.find((n) => n.type === 'aggregator')!.address;
  // This testbed's health checks go out from this machine: to anything but loopback they would leave it.
  const outside = workers.map((w) => parseAddress(w.address).host).filter((host) => !host.startsWith('127.') && host !== 'localhost');
  if (outside.length) {
    throw new Error(`${flags.config} names machines that are not loopback addresses (${outside[0]} …): the local testbed runs on 127.x; for the lab's addresses use --emulate (root), or the ssh launcher on the lab itself`);
  }
  const p = paths(flags.state);
  const token = ensureToken(flags.state);
  mkdirSync(p.pids, { recursive: true });
  mkdirSync(p.out, { recursive: true });
  const logs = resolve(flags.logs ?? p.logs);
  // Clients holding the HE key get it from the launcher; switches and the aggregator never do.
  // The key keygen makes, and decrypt reads: one file, so the models it encrypts can be opened with it.
  const clientsHoldKey = config.he.enabled && config.he.key_holder === 'clients';
  const key = clientsHoldKey ? await ensureClientKey(config.he, flags.heKey ?? DEFAULT_KEY_FILE) : undefined;
  if (key?.made) console.log(`testbed: made the clients' HE key ${key.file} (decrypt saved rounds with it)`);
  const keyFile = key?.file;
  const alreadyUp = new Set(runningWorkers(flags.state).filter((w) => isAlive(w.pid)).map((w) => w.id));
  // Under mutual TLS each worker serves with its own certificate; made here for nodes that have none.
  const tls = usesTls(config);
  if (tls && (await ensureTestbedCerts(config.certs, Object.keys(config.others)))) console.log(`testbed: made TLS certificates in ${config.certs}`);
  const ca = tls ? readFileSync(join(config.certs, 'ca.pem')) : undefined;

  // On loopback each worker process is a machine of its own: `compute` by its addresses or its role.
  // A process started again alone gets a group (its old one, or one with the host's CPU) when any machine has one.
  const starting = workerProcesses(config).filter((proc) => !proc.addresses.some((a) => alreadyUp.has(idOf(a))) && (!flags.only || proc.addresses.some((a) => flags.only!.includes(a))));
  const anyCompute = Object.keys(config.compute ?? {}).length > 0;
  const machines = starting.map((proc) => ({ name: idOf(proc.addresses[0]), compute: computeOf(config, proc.addresses.map((address) => ({ address, role: proc.type }))) ?? (anyCompute ? {} : undefined) }));
  // A worker started again (the schedule's `start`) keeps its group: a `cpu` event's share stays.
  const groups = prepareGroups(testbedTag(flags.state), machines, console.log, Boolean(flags.only));

  const started: { id: string; host: string; port: number; pid: number; out: string }[] = [];
  for (const proc of starting) {
    const id = idOf(proc.addresses[0]);
    const outFile = join(p.out, `${id}.out`);
    const out = openSync(outFile, 'a');
    const keyArgs = keyFile && proc.type === 'client' ? ['--he-key', keyFile] : [];
    // Each process gets its own nodes' files only, as on a lab machine (not the folder with the CA's key).
    const tlsDir = resolve(p.tls, id);
    if (tls) for (const address of proc.addresses) copyNodeFiles(config.certs, address, tlsDir);
    const tlsArgs = tls ? ['--tls-dir', tlsDir] : [];
    // Its own token and the others' digests, not the cluster token: each node can act only as itself.
    const books = proc.addresses.map((address) => writeTokenBook(flags.state, token, address, nodes, aggregator, proc.addresses.length > 1 ? id : undefined));
    const { host, port } = parseAddress(proc.addresses[0]);
    const where = proc.addresses.length > 1 ? ['--nodes', nodesFlag(proc), '--token-file', dirname(books[0])] : ['--host', host, '--port', String(port), '--id', id, '--token-file', books[0]];
    const command = [process.execPath, MAIN, ...where, '--logs', logs, ...keyArgs, ...tlsArgs];
    const group = groups.get(id);
    const [program, ...args] = group ? joinCommand(group, command) : command;
    const child = spawn(program, args, {
      detached: true,
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    // A pid file per node: the schedule's events name nodes (a kill takes the whole process, as on a machine).
    for (const address of proc.addresses) {
      writeFileSync(join(p.pids, `${idOf(address)}.pid`), String(child.pid));
      started.push({ id: idOf(address), ...parseAddress(address), pid: child.pid!, out: outFile });
    }
    child.unref();
  }

  // Until each answers /health, or exits (a certificate of another machine, a key missing): no use waiting for that one.
  const deadline = Date.now() + flags.timeout;
  let waiting = started;
  while (waiting.length && Date.now() < deadline) {
    const answers = await Promise.all(waiting.map((w) => answersHealth(`${w.host}:${w.port}`, 1000, ca)));
    waiting = waiting.filter((w, i) => !answers[i]);
    if (waiting.every((w) => !isAlive(w.pid))) break;
    await sleep(100);
  }
  const processes = new Set(started.map((w) => w.pid)).size;
  const shared = processes < started.length ? ` (${started.length} started in ${processes} processes)` : '';
  console.log(`testbed: ${workers.length - waiting.length} of ${workers.length} workers up${shared} (${alreadyUp.size} were already running)`);
  const failures: LaunchFailures = {};
  for (const w of waiting) {
    const tail = readFileSync(w.out, 'utf8').trim().split('\n').slice(-3);
    const how = isAlive(w.pid) ? 'not answering' : 'exited at start';
    console.log(`  ${how}: ${w.host}:${w.port}\n      ${tail.join('\n      ')}`);
    failures[`${w.host}:${w.port}`] = `${how}: ${tail.join(' ').trim() || 'it said nothing'}`;
  }
  // Beside the token the aggregator is started with: it names these workers in the launcher's words.
  writeLaunchReport(launchReportFile(p.token), failures);
  if (!flags.only && config.events?.length && !waiting.length) {
    writeScheduleSnapshot(flags.state, config);
    startSchedule(flags, config.events.length);
  }
  if (!waiting.length && !flags.quiet) {
    console.log(`start the aggregator with:\n  node main.js agg --config ${flags.config} --token-file ${p.token} --logs ${logs}`);
  }
  return waiting.length ? 1 : 0;
}

/**
 * The schedule of config.json's `events`, in the background until the experiment's rounds have
 * carried it out: `down` stops it with the workers.
 */
function startSchedule(flags: StateFlags & { config: string; logs?: string; heKey?: string; outputs?: string }, count: number): void {
  const p = paths(flags.state);
  // `up` run again on a testbed that is up: one schedule, not two carrying out every event twice.
  const running = runningWorkers(flags.state, true).find((w) => w.id === SCHEDULE && isAlive(w.pid));
  if (running) return void console.log(`testbed: the schedule runs already (pid ${running.pid}); \`down\` stops it`);
  const out = openSync(join(p.out, 'schedule.out'), 'a');
  const args = ['schedule', '--config', flags.config, '--state', flags.state, '--outputs', flags.outputs ?? 'outputs', '--timeout', '30000'];
  if (flags.logs) args.push('--logs', flags.logs);
  if (flags.heKey) args.push('--he-key', flags.heKey);
  const child = spawn(process.execPath, [__filename, ...args], { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  writeFileSync(join(p.pids, `${SCHEDULE}.pid`), String(child.pid));
  child.unref();
  console.log(`testbed: the schedule's ${count} events are carried out as the rounds go (its log: ${join(p.out, 'schedule.out')}; the record: events.json beside the aggregator's outputs)`);
}

/** The pid file of the schedule, among the workers' so `down` stops it too. */
const SCHEDULE = 'schedule';

/** `testbed schedule`: config.json's events carried out on the loopback testbed as the aggregator's rounds go. */
async function schedule(flags: StateFlags & { config: string; outputs: string; timeout: number; logs?: string; heKey?: string }): Promise<number> {
  const { experiment, events, nodes, aggregator } = readScheduleSnapshot(flags.state);
  const config = loadExperimentConfig(flags.config);
  const ca = usesTls(config) ? readFileSync(join(config.certs, 'ca.pem')) : undefined;
  // A node's machine on loopback is its process, named by the process's first node (its cgroup, its output file).
  const processOf = new Map(workerProcesses(config).flatMap((proc) => proc.addresses.map((address) => [address, idOf(proc.addresses[0])] as const)));
  const machineOf = (address: string) => processOf.get(address) ?? idOf(address);
  // A pid file outlives its worker (killed): the pid is taken only while it still runs that worker.
  const pidOf = (address: string) => {
    const pid = runningWorkers(flags.state).find((w) => w.id === idOf(address))?.pid;
    return pid !== undefined && isAlive(pid) && runsWorker(pid, address) ? pid : undefined;
  };
  const start = async (address: string) => {
    const running = pidOf(address);
    if (running !== undefined) throw new Error(`it is running already (pid ${running})`);
    const code = await up({ ...flags, quiet: true, only: [address] });
    if (code !== 0) throw new Error(`it did not come up (${join(paths(flags.state).out, `${machineOf(address)}.out`)})`);
    return `started again, pid ${pidOf(address)}`;
  };
  await runSchedule({
    experiment,
    events,
    nodes,
    driver: new LoopbackDriver(testbedTag(flags.state), pidOf, machineOf, start),
    state: () => fetchPublicJson(aggregator, '/dashboard/round', 2000, ca),
    outputs: resolve(flags.outputs),
    print: console.log,
  });
  rmSync(join(paths(flags.state).pids, `${SCHEDULE}.pid`), { force: true });
  return 0;
}

export async function down(flags: StateFlags & { timeout: number }): Promise<number> {
  // The schedule too; and a worker it stopped is let go, or it would hold its TERM until the KILL.
  const workers = runningWorkers(flags.state, true);
  // The nodes of one process share its pid: each process is signalled once.
  for (const pid of new Set(workers.map((w) => w.pid))) if (isAlive(pid)) ['SIGTERM', 'SIGCONT'].forEach((sig) => process.kill(pid, sig));
  const deadline = Date.now() + flags.timeout;
  while (workers.some((w) => isAlive(w.pid)) && Date.now() < deadline) await sleep(50);
  const stubborn = workers.filter((w) => isAlive(w.pid));
  for (const pid of new Set(stubborn.map((w) => w.pid))) process.kill(pid, 'SIGKILL');
  for (const w of workers) rmSync(w.pidFile, { force: true });
  rmSync(paths(flags.state).tls, { recursive: true, force: true }); // the workers' copies of their keys
  rmSync(paths(flags.state).tokens, { recursive: true, force: true }); // and their token books
  console.log(`testbed: stopped ${workers.filter((w) => w.id !== SCHEDULE).length} workers${workers.some((w) => w.id === SCHEDULE) ? ' and the schedule' : ''}${stubborn.length ? ` (${stubborn.length} killed after ${flags.timeout} ms)` : ''}`);
  for (const line of describeRemoved(await removeGroups(testbedTag(flags.state)))) console.log(line);
  return 0;
}

function status(flags: StateFlags): number {
  const workers = runningWorkers(flags.state, true);
  const alive = workers.filter((w) => isAlive(w.pid));
  for (const w of workers) console.log(`  ${w.id.padEnd(22)} pid ${String(w.pid).padEnd(8)} ${isAlive(w.pid) ? 'running' : 'gone'}`);
  console.log(`testbed: ${alive.length} of ${workers.length} workers running`);
  return 0;
}

interface InitFlags { nodes: number; clients?: number; perProcess?: number; switches: number; spines: number; base: string; port: number; out?: string; tls: boolean; bits?: number; quantize: boolean }

async function init(flags: InitFlags): Promise<number> {
  if (!flags.quantize && flags.bits !== undefined) throw new Error('--bits with --no-quantize: give one or the other');
  const shape = { ...flags, bits: flags.quantize ? (flags.bits ?? INIT_BITS) : undefined };
  const config: Record<string, unknown> = { ...testbedConfig(shape), ...(flags.tls && flags.out ? { tls: true } : {}) };
  const machines = new Set(Object.keys(config.others as object).map((a) => a.split(':')[0])).size;
  const text = formatConfig(config);
  if (!flags.out) {
    process.stdout.write(text);
    return 0;
  }
  writeFileSync(flags.out, text);
  const spines = flags.spines ? ` (${flags.spines} of them spines over the rest)` : '';
  const clients = flags.clients === undefined ? '' : `, ${flags.clients} clients (${flags.perProcess ?? 1} to a machine and a process)`;
  console.log(`wrote ${flags.out}: ${machines} machines, ${flags.switches} switches${spines}${clients}, aggregator ${flags.base}.${machines}${flags.tls ? ', mutual TLS' : ', plain HTTP'}`);
  if (flags.tls) {
    const made = await makeTestbedCerts(loadExperimentConfig(flags.out).certs, Object.keys(config.others as object));
    console.log(`  ${made.nodes.length} certificates from the CA ${made.ca} (${made.newCa ? 'made now' : 'kept'}), e.g. ${certFiles(made.dir, made.nodes[0].address).cert}`);
  }
  return 0;
}

const int = (text: string) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`expected a whole number, got "${text}"`);
  return n;
};

const run = <F>(action: (flags: F) => number | Promise<number>) => async (flags: F) => {
  try {
    process.exitCode = await action(flags);
  } catch (err) {
    console.error(err instanceof ConfigError || err instanceof EmulateError ? err.message : `testbed: ${(err as Error).message}`);
    process.exitCode = err instanceof ConfigError ? 2 : 1;
  }
};

const program = new Command().name('testbed').description('start and stop a testbed of workers, on loopback addresses or emulated').enablePositionalOptions();
const withState = (c: Command) => c.option('--state <dir>', 'where the token, pid files and worker output live', '.testbed');

program
  .command('init')
  .description('write a config for N nodes on <base>.1 … <base>.N, the last the aggregator')
  .option('--nodes <n>', 'machines, the aggregator included', int, 15)
  .option('--clients <n>', 'clients in all, in place of --nodes (machines then follow from --per-process)', int)
  .option('--per-process <k>', 'with --clients: clients to a machine, on ports --port, --port+1, …, served by one worker process', int)
  .option('--switches <n>', 'how many of them are switches', int, 2)
  .option('--spines <n>', 'how many of the switches are spines, with the other (rack) switches reporting to them', int, 0)
  .option('--base <a.b.c>', 'the first three octets', '127.0.1')
  .option('--port <port>', 'port on every node', int, 5000)
  .option('--out <file>', 'write here instead of stdout')
  .option('--no-tls', 'plain HTTP between the nodes (with --out, mutual TLS is on and the certificates are made beside the file)')
  .option('--bits <n>', `quantized HE: bits a value (2 to 24), several values to a ciphertext coefficient (default ${INIT_BITS})`, int)
  .option('--no-quantize', 'CKKS on the float values, a value to a coefficient (about 4x the bytes of 8 bits)')
  .action(run(init));
withState(program.command('up').description('start every worker of the config and wait until each answers /health'))
  .option('--config <file>', 'the experiment config (default: config.local.json; with --emulate, config.json)')
  .option('--logs <dir>', 'where the workers write logs/ (default: <state>/logs)')
  .option('--timeout <ms>', 'how long to wait for the workers', int, 30_000)
  .option('--he-key <file>', `with the key at the clients, the key they are handed (made there if missing; what keygen writes and decrypt reads)`, DEFAULT_KEY_FILE)
  .option('--emulate', 'a network namespace per machine with the config\'s own addresses, shaped links, sshd (needs root)')
  .option('--dir <dir>', '--emulate: the project folder the workers run in over ssh', ROOT)
  .option('--no-measure', '--emulate: skip measuring the rate each shaped link reaches')
  .option('--outputs <dir>', 'where the aggregator writes its outputs (its own default too): the schedule records events.json there', 'outputs')
  .action(run((flags: StateFlags & { config?: string; timeout: number; logs?: string; emulate?: boolean; dir: string; measure: boolean }) =>
    flags.emulate
      ? upEmulated({ ...flags, config: flags.config ?? 'config.json', makeToken: () => ensureToken(flags.state), print: console.log })
      : up({ ...flags, config: flags.config ?? 'config.local.json' }),
  ));
withState(program.command('schedule').description('carry out config.json\'s events as the aggregator\'s rounds go (`up` starts it when there are any)'))
  .option('--config <file>', 'the experiment config', 'config.local.json')
  .option('--outputs <dir>', 'where the aggregator writes its outputs', 'outputs')
  .option('--logs <dir>', 'where workers started again write logs/')
  .option('--timeout <ms>', 'how long to wait for a worker started again', int, 30_000)
  .option('--he-key <file>', 'with the key at the clients, the key a worker started again is handed', DEFAULT_KEY_FILE)
  .option('--emulate', 'on the emulated testbed (`up --emulate` starts it; it follows the rounds through a relay on the aggregator\'s machine)')
  .action(run((flags: StateFlags & { config: string; outputs: string; timeout: number; logs?: string; heKey?: string; emulate?: boolean }) =>
    flags.emulate ? scheduleEmulated(flags, console.log) : schedule(flags),
  ));
withState(program.command('down').description('stop every worker this testbed started'))
  .option('--timeout <ms>', 'grace period before SIGKILL', int, 5000)
  .option('--emulate', 'remove the emulated testbed: every process in its namespaces, and the namespaces')
  .action(run((flags: StateFlags & { timeout: number; emulate?: boolean }) => (flags.emulate ? downEmulated(flags.state, console.log) : down(flags))));
withState(program.command('status').description('list the workers and whether they run'))
  .option('--emulate', 'the emulated testbed: each machine\'s processes and link counters')
  .action(run((flags: StateFlags & { emulate?: boolean }) => (flags.emulate ? statusEmulated(flags.state, console.log) : status(flags))));
withState(program.command('exec').description('run a command on one machine of the emulated testbed: exec <node> -- <command …>'))
  .argument('<node>', 'the machine, by address or IP')
  .argument('<command...>', 'the command and its arguments, after --')
  .passThroughOptions()
  // Options pass through to the command once the node is named; the `--` before it is only a separator.
  .action((node: string, command: string[], flags: StateFlags) => run(() => execOn(flags.state, node, command[0] === '--' ? command.slice(1) : command))(flags));

if (require.main === module) program.parseAsync();
