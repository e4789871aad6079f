/**
 * The emulated lab testbed: `testbed up --emulate` builds a namespace per machine with shaped
 * links, starts sshd in each, and starts the workers over real ssh from the aggregator's machine,
 * as on the lab's own. `exec` runs a command on one machine; `down --emulate` removes everything.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { canonicalAddress, parseAddress } from '../config/address';
import { loadExperimentConfig, usesTls } from '../config/load';
import { ensureTestbedCerts } from '../net/certs';
import { DEFAULT_KEY_FILE, ensureClientKey } from '../he/keys';
import { describeRemoved, groupName, hasGroup, machineCommand, prepareGroups, removeGroups } from './cgroups';
import { EmulatedDriver } from './drivers';
import { readEmulatedState, stateFile, type EmulatedState } from './state';
import { describeLink, needsNetem } from './links';
import { readScheduleSnapshot, runSchedule, writeScheduleSnapshot, type StateSource } from './schedule-runner';
import { assertIsolated, buildNetwork, machineCounters, pidsIn, removeNetwork, testbedNamespaces } from './network';
import { planTestbed, testbedTag, type Machine, type TestbedPlan } from './plan';
import { measureLink, type MeasuredRate } from './rate';
import { sshFiles, startSshd, writeSshFiles } from './sshd';
import { assertCanEmulate, EmulateError } from './system';

const ROOT = resolve(__dirname, '..', '..', '..');
const SCRIPTS = join(ROOT, 'dist', 'scripts');

export interface UpFlags {
  /** Where the aggregator writes its outputs: the schedule records events.json there. */
  outputs?: string;
  config: string;
  state: string;
  /** The project folder the workers run in (main.js there), as `npm run ssh -- --dir` on the lab's machines. */
  dir: string;
  /** Makes the cluster token (once) in the state folder: only after the checks, so a refusal leaves nothing. */
  makeToken: () => string;
  timeout: number;
  measure: boolean;
  print: (line: string) => void;
}

export async function upEmulated(flags: UpFlags): Promise<number> {
  assertCanEmulate();
  const config = loadExperimentConfig(flags.config);
  const plan = planTestbed(config, flags.state);
  const left = testbedNamespaces(plan.tag);
  if (left.length) throw new EmulateError(`${left.length} namespaces of this testbed exist already (${left[0]} …): \`npm run testbed -- down --emulate\` first`);
  flags.makeToken();
  try {
    const { netem } = buildNetwork(plan);
    assertIsolated(plan);
    const ssh = writeSshFiles(plan, flags.state);
    // Every machine, so prepareGroups gives those `compute` does not name a group too.
    const groups = prepareGroups(plan.tag, plan.machines.map((m) => ({ name: m.host, compute: m.compute })), flags.print);
    startSshd(plan, ssh, groups);
    flags.print(`testbed: ${plan.machines.length} machines in namespaces fl-${plan.tag}-*, one bridge, sshd on port 22 of each`);
    const shaped = plan.machines.filter((m) => m.link);
    if (!netem && shaped.some((m) => needsNetem(m.link))) {
      flags.print('  this kernel has no netem: delay and loss in `links` are NOT applied; rates are (tbf)');
    }
    const state: EmulatedState = { config: resolve(flags.config), dir: resolve(flags.dir), plan, netem, measured: {} };
    writeFileSync(stateFile(flags.state), JSON.stringify(state, null, 1));
    if (flags.measure) {
      for (const machine of shaped) state.measured[machine.host] = await measureLink(plan, machine);
      writeFileSync(stateFile(flags.state), JSON.stringify(state, null, 1));
    }
    printLinks(state, flags.print);
    const keyFile = await clientKey(config, state.dir, flags.print);
    state.certs = await testbedCerts(config, flags.print);
    writeFileSync(stateFile(flags.state), JSON.stringify(state, null, 1)); // the schedule reads the aggregator's CA from it
    const started = await startWorkers(state, flags, keyFile);
    if (started !== 0) {
      flags.print('the testbed stays up for a look (`npm run testbed -- status --emulate`); `npm run testbed -- down --emulate` removes it');
      return started;
    }
    if (config.events?.length) {
      writeScheduleSnapshot(flags.state, config);
      startScheduleIn(flags, config.events.length);
    }
    flags.print(`run the experiment on the aggregator's machine:\n  npm run testbed -- exec ${aggregatorOf(plan).host} -- node main.js agg --config ${flags.config} --token-file ${join(flags.state, 'token')}`);
    return 0;
  } catch (err) {
    const cleanup = await removeNetwork(plan.tag, 1000).then(
      async () => ((await removeGroups(plan.tag)).left.length ? '\n(compute groups are left: `npm run testbed -- down --emulate` tries again)' : ''),
      (again: Error) => `\n(and removing what was built failed too: ${again.message}; \`npm run testbed -- down --emulate\` tries again)`,
    );
    throw new EmulateError(`${(err as Error).message}${cleanup}`);
  }
}

const describeMeasured = (rate: MeasuredRate) => `measured ${rate.up_mbit.toFixed(1)} up, ${rate.down_mbit.toFixed(1)} down`;

function printLinks(state: EmulatedState, print: (line: string) => void): void {
  for (const machine of state.plan.machines) {
    const measured = state.measured[machine.host];
    const rate = measured ? `   ${describeMeasured(measured)} (Mbit/s of payload)` : '';
    print(`  ${machine.host.padEnd(15)} ${machine.nodes.map((n) => n.role).join('+').padEnd(10)} ${describeLink(machine.link)}${rate}`);
  }
}

/**
 * With the key at the clients, the launcher hands it to them over ssh, as on the lab's machines: the
 * project folder's own key (`node main.js keygen`'s; never replaced by another, or the models it
 * encrypted could not be read), made there when there is none.
 */
async function clientKey(config: ReturnType<typeof loadExperimentConfig>, dir: string, print: (line: string) => void): Promise<string | undefined> {
  if (!config.he.enabled || config.he.key_holder !== 'clients') return undefined;
  const { file, made } = await ensureClientKey(config.he, join(dir, DEFAULT_KEY_FILE));
  if (made) print(`testbed: made the clients' HE key ${file} (decrypt saved rounds with it)`);
  return file;
}

/** Under mutual TLS, config.json's certificates, made for the nodes that have none (as `main.js certs` would). */
async function testbedCerts(config: ReturnType<typeof loadExperimentConfig>, print: (line: string) => void): Promise<string | undefined> {
  if (!usesTls(config)) return undefined;
  const made = await ensureTestbedCerts(config.certs, Object.keys(config.others));
  if (made) print(`testbed: made TLS certificates for ${made} nodes in ${config.certs}`);
  return config.certs;
}

export const aggregatorOf = (plan: TestbedPlan): Machine => plan.machines.find((m) => m.nodes.some((n) => n.role === 'aggregator'))!;

/** `npm run ssh -- start` from the aggregator's machine, then a wait there until every worker answers. */
async function startWorkers(state: EmulatedState, flags: UpFlags, keyFile?: string): Promise<number> {
  const aggregator = aggregatorOf(state.plan);
  const launcher = [
    join(SCRIPTS, 'ssh-launcher.js'), 'start',
    '--config', state.config,
    '--ssh-config', sshFiles(flags.state).clientConfig,
    '--dir', state.dir,
    '--token-file', resolve(flags.state, 'token'),
    ...(keyFile ? ['--he-key', keyFile] : []),
    ...(state.certs ? ['--certs', state.certs] : []),
  ];
  const start = await runIn(aggregator.ns, [process.execPath, ...launcher]);
  flags.print(start.output.trimEnd());
  if (start.code !== 0) return start.code;
  const workers = state.plan.machines.flatMap((m) => m.nodes).filter((n) => n.role !== 'aggregator').map((n) => n.address);
  const ca = state.certs ? ['--ca', join(state.certs, 'ca.pem')] : [];
  const health = await runIn(aggregator.ns, [process.execPath, join(__dirname, 'health-probe.js'), ...ca, String(flags.timeout), ...workers]);
  flags.print(health.code === 0 ? `testbed: ${workers.length} of ${workers.length} workers up` : health.output.trimEnd());
  return health.code;
}

/**
 * The schedule of config.json's `events` runs in this namespace, where every machine's namespace
 * and the cgroups are in reach (`ip netns exec` hides the cgroups), and follows the rounds through a
 * relay on the aggregator's machine, the only place the aggregator's address can be reached from.
 * `down --emulate` stops it.
 */
function startScheduleIn(flags: UpFlags, count: number): void {
  const log = join(flags.state, 'schedule.out');
  const out = openSync(log, 'a');
  const args = [join(SCRIPTS, 'testbed.js'), 'schedule', '--emulate', '--state', resolve(flags.state), '--outputs', resolve(flags.outputs ?? 'outputs')];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  writeFileSync(schedulePidFile(flags.state), String(child.pid));
  child.unref();
  flags.print(`testbed: the schedule's ${count} events are carried out as the rounds go (its log: ${log})`);
}

const schedulePidFile = (state: string) => join(state, 'schedule.pid');

/** The schedule's view of the aggregator: the latest line of a relay in the aggregator's namespace. */
function relayedState(plan: TestbedPlan, aggregator: string, ca: string | undefined): { source: StateSource; stop: () => void } {
  const relay = spawn('ip', ['netns', 'exec', aggregatorOf(plan).ns, process.execPath, join(__dirname, 'state-relay.js'), ...(ca ? ['--ca', ca] : []), '200', aggregator], { stdio: ['pipe', 'pipe', 'inherit'] });
  let latest: unknown;
  let buffered = '';
  relay.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (buffered + chunk).split('\n');
    buffered = lines.pop()!;
    if (lines.length) {
      try {
        latest = JSON.parse(lines[lines.length - 1]) ?? undefined;
      } catch {
        latest = undefined;
      }
    }
  });
  // A relay that ended says nothing more: the schedule then sees no aggregator, and gives up in time.
  relay.on('exit', () => (latest = undefined));
  return { source: async () => latest, stop: () => relay.stdin.end() };
}

/** `testbed schedule --emulate`: the events carried out on the emulated machines. */
export async function scheduleEmulated(flags: { state: string; outputs: string; timeout: number }, print: (line: string) => void): Promise<number> {
  const state = readEmulatedState(flags.state);
  const config = loadExperimentConfig(state.config);
  const { experiment, events, nodes, aggregator } = readScheduleSnapshot(flags.state);
  const upFlags: UpFlags = { config: state.config, state: flags.state, dir: state.dir, makeToken: () => '', timeout: flags.timeout, measure: false, print };
  const start = async () => {
    const keyFile = await clientKey(config, state.dir, print);
    if ((await startWorkers(state, upFlags, keyFile)) !== 0) throw new Error('the launcher could not start it');
    return 'started again over ssh';
  };
  const relay = relayedState(state.plan, aggregator, state.certs && join(state.certs, 'ca.pem'));
  try {
    await runSchedule({ experiment, events, nodes, driver: new EmulatedDriver(state, start, () => writeFileSync(stateFile(flags.state), JSON.stringify(state, null, 1))), state: relay.source, outputs: flags.outputs, print });
  } finally {
    relay.stop();
    rmSync(schedulePidFile(flags.state), { force: true });
  }
  return 0;
}

function runIn(ns: string, command: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.on('error', (err) => resolvePromise({ code: 127, output: `${command[0]} in ${ns}: ${err.message}` }));
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (code) => resolvePromise({ code: code ?? 1, output }));
  });
}

/** Runs a command on one machine of the testbed (by address or IP), its output and exit code passed through. */
export function execOn(state: string, node: string, command: string[]): number {
  assertCanEmulate();
  const { plan } = readEmulatedState(state);
  const host = node.includes(':') ? canonicalAddress(node).split(':')[0] : node;
  const machine = plan.machines.find((m) => m.host === host);
  if (!machine) throw new EmulateError(`${node} is not a machine of this testbed (${plan.machines.map((m) => m.host).join(', ')})`);
  if (!command.length) throw new EmulateError('exec: name a command after --, e.g. exec 10.10.1.15 -- node main.js agg');
  // In the machine's compute group, when it has one: the aggregator started here computes as its machine does.
  const group = groupName(plan.tag, machine.host);
  const [program, ...args] = machineCommand(machine.ns, command, hasGroup(group) ? group : undefined);
  const result = spawnSync(program, args, { stdio: 'inherit' });
  if (result.error) throw new EmulateError(`exec: ${result.error.message}`);
  return result.status ?? 1;
}

export async function downEmulated(state: string, print: (line: string) => void): Promise<number> {
  assertCanEmulate();
  const tag = testbedTag(state);
  stopSchedule(state);
  const { namespaces, killed } = await removeNetwork(tag);
  print(`testbed: removed ${namespaces} namespaces of fl-${tag}-*${killed ? ` (${killed} processes killed after the grace period)` : ''}`);
  for (const line of describeRemoved(await removeGroups(tag))) print(line);
  if (existsSync(stateFile(state))) print(removeHandedOver(readEmulatedState(state)));
  return 0;
}

/**
 * What the launcher handed the machines in their shared project folder, removed: each worker's TLS
 * folder (its certificate and key) and its token book, and tls/ itself once empty. Nothing secret of
 * the testbed outlives it there, and nothing else there is touched.
 */
function removeHandedOver({ dir, plan }: EmulatedState): string {
  const workers = plan.machines.flatMap((m) => m.nodes.filter((n) => n.role !== 'aggregator').map((n) => `${m.host}-${parseAddress(n.address).port}`));
  let books = 0;
  let folders = 0;
  for (const id of workers) {
    const book = join(dir, '.run', `token-${id}`);
    // A process of several clients keeps their books in a folder, named by its first (the ssh launcher's bookSteps).
    const bookFolder = join(dir, '.run', `tokens-${id}`);
    const tls = join(dir, 'tls', id);
    if (existsSync(book)) books++;
    if (existsSync(bookFolder)) books += readdirSync(bookFolder).length;
    if (existsSync(tls)) folders++;
    rmSync(book, { force: true });
    rmSync(bookFolder, { recursive: true, force: true });
    rmSync(tls, { recursive: true, force: true });
  }
  if (existsSync(join(dir, 'tls')) && !readdirSync(join(dir, 'tls')).length) rmSync(join(dir, 'tls'), { recursive: true });
  return `testbed: removed the machines' copies in ${dir}: ${books} token books, ${folders} TLS folders (their certificates and keys)`;
}

/** The schedule, when one runs: stopped first, so it starts nothing again while the machines go. */
function stopSchedule(state: string): void {
  const file = schedulePidFile(state);
  if (!existsSync(file)) return;
  try {
    process.kill(Number(readFileSync(file, 'utf8')), 'SIGTERM');
  } catch {
    // it had ended
  }
  rmSync(file, { force: true });
}

export function statusEmulated(state: string, print: (line: string) => void): number {
  assertCanEmulate();
  const emulated = readEmulatedState(state);
  const present = new Set(testbedNamespaces(emulated.plan.tag));
  for (const machine of emulated.plan.machines) {
    if (!present.has(machine.ns)) {
      print(`  ${machine.host.padEnd(15)} namespace gone`);
      continue;
    }
    const { rx_bytes, tx_bytes } = machineCounters(machine);
    const measured = emulated.measured[machine.host];
    const rate = measured ? ` (${describeMeasured(measured)})` : '';
    print(`  ${machine.host.padEnd(15)} ${String(pidsIn(machine.ns).length).padStart(2)} processes   ${describeLink(machine.link)}${rate}   rx ${rx_bytes} B  tx ${tx_bytes} B`);
  }
  print(`testbed: ${present.size} namespaces of fl-${emulated.plan.tag}-*`);
  return 0;
}
