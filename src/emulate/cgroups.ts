/**
 * A machine's compute on a testbed: a cgroup v1 group of its own in the `cpu` and `memory`
 * controllers (`fl-<tag>-<machine>`), its CFS quota the share of a core `compute.cpu` gives, its
 * memory limit `compute.memory_mb`. A process started in the group (joinCommand) keeps it, and so
 * does everything it starts: the worker, its HE threads, what it spawns.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ComputeShare } from '../config/schema';

const CGROUP_ROOT = '/sys/fs/cgroup';
const CONTROLLERS = ['cpu', 'memory'] as const;
const PERIOD_US = 100_000;
/**
 * Each group weighs as eight busy processes of the host's: a quota caps a machine at its share, and
 * this keeps the host's own work (an editor, a build) from taking much of that share away.
 */
const MACHINE_WEIGHT = 8 * 1024;

const dirOf = (controller: string, group: string) => join(CGROUP_ROOT, controller, group);

/** Why compute cannot be applied here (no cgroup v1 cpu and memory controllers, or not root); undefined: it can. */
export function computeProblem(): string | undefined {
  if (process.platform !== 'linux') return `cgroups are Linux's (this is ${process.platform})`;
  const missing = CONTROLLERS.filter((c) => !existsSync(join(CGROUP_ROOT, c, 'cgroup.procs')));
  if (missing.length) return `no cgroup v1 ${missing.join(' and ')} controller at ${CGROUP_ROOT}`;
  if (process.getuid?.() !== 0) return 'making cgroups needs root (run it with sudo)';
  return undefined;
}

/** A group's name: the testbed's tag and the machine (an IP, or a worker's id on loopback). */
export const groupName = (tag: string, machine: string) => `fl-${tag}-${machine.replace(/[^0-9A-Za-z.-]/g, '-')}`;

/** Makes (or remakes) a group with this compute. */
export function makeGroup(group: string, compute: ComputeShare): void {
  for (const controller of CONTROLLERS) mkdirSync(dirOf(controller, group), { recursive: true });
  writeFileSync(join(dirOf('cpu', group), 'cpu.shares'), String(MACHINE_WEIGHT));
  setCpu(group, compute.cpu);
  const limit = compute.memory_mb === undefined ? '-1' : String(compute.memory_mb * 1024 * 1024);
  writeFileSync(join(dirOf('memory', group), 'memory.limit_in_bytes'), limit);
}

/** A group's share of a core, from now on (undefined: no cap). */
export function setCpu(group: string, cores: number | undefined): void {
  writeFileSync(join(dirOf('cpu', group), 'cpu.cfs_period_us'), String(PERIOD_US));
  writeFileSync(join(dirOf('cpu', group), 'cpu.cfs_quota_us'), cores === undefined ? '-1' : String(Math.round(cores * PERIOD_US)));
}

/**
 * `command` run inside the group: a shell puts itself in it, then becomes the command (exec), so
 * the command's pid is the shell's and nothing of it ever ran outside.
 */
export function joinCommand(group: string, command: string[]): string[] {
  const enter = CONTROLLERS.map((c) => `echo $$ > ${dirOf(c, group)}/cgroup.procs`).join(' && ');
  return ['/bin/sh', '-c', `${enter} && exec "$@"`, 'sh', ...command];
}

/**
 * `command` on an emulated machine: in its namespace, and in its compute group when it has one. The
 * group first: inside `ip netns exec` the cgroups are out of sight (it mounts a /sys of its own).
 */
export function machineCommand(ns: string, command: string[], group?: string): string[] {
  const inNs = ['ip', 'netns', 'exec', ns, ...command];
  return group ? joinCommand(group, inNs) : inNs;
}

/** Whether a group exists (a machine made one at `up`, or a `cpu` event since). */
export const hasGroup = (group: string) => existsSync(dirOf('cpu', group));

/** The groups of a testbed's tag that exist, by controller/name. */
export function groupsOf(tag: string): string[] {
  return CONTROLLERS.flatMap((c) => (existsSync(join(CGROUP_ROOT, c)) ? readdirSync(join(CGROUP_ROOT, c)) : []).filter((name) => name.startsWith(`fl-${tag}-`)).map((name) => `${c}/${name}`));
}

/**
 * Removes a testbed's groups (`removed`: how many machines' groups went); their processes must be gone (a group with a process in it cannot be
 * removed: tried again for a few seconds while the last ones exit). What could not be removed is returned.
 */
export async function removeGroups(tag: string, patienceMs = 5000): Promise<{ removed: number; left: string[] }> {
  const deadline = Date.now() + patienceMs;
  const before = new Set(groupsOf(tag).map((g) => g.split('/')[1]));
  let left = groupsOf(tag);
  while (left.length) {
    for (const group of left) {
      try {
        rmdirSync(join(CGROUP_ROOT, group));
      } catch {
        // busy: a process is still in it
      }
    }
    left = groupsOf(tag);
    if (!left.length || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const stayed = new Set(left.map((g) => g.split('/')[1]));
  return { removed: [...before].filter((name) => !stayed.has(name)).length, left };
}

/** A busy loop of `ms` wall time; prints the CPU it got as a fraction of one core. */
const PROBE = (ms: number) =>
  `const t=Date.now(),c=process.cpuUsage();while(Date.now()-t<${ms});const u=process.cpuUsage(c);console.log((u.user+u.system)/1000/(Date.now()-t))`;

/** The share of a core a process in the group gets, measured with a busy loop inside it; and its memory limit (MB; undefined: none). */
export function measureGroup(group: string, ms = 600): { cores: number; memory_mb?: number } {
  const probe = joinCommand(group, [process.execPath, '-e', PROBE(ms)]);
  const result = spawnSync(probe[0], probe.slice(1), { encoding: 'utf8', timeout: ms * 20 });
  const cores = Number(result.stdout.trim());
  if (result.status !== 0 || !Number.isFinite(cores)) throw new Error(`measuring ${group}: ${(result.stderr || result.error?.message || 'no answer').trim()}`);
  const limit = Number(readFileSync(join(dirOf('memory', group), 'memory.limit_in_bytes'), 'utf8'));
  // An unlimited group reads back the largest page-aligned 64-bit value.
  return { cores, ...(limit < 2 ** 50 ? { memory_mb: Math.round(limit / 2 ** 20) } : {}) };
}

export function describeCompute(compute: ComputeShare | undefined, measured?: { cores: number; memory_mb?: number }): string {
  const cpu = compute?.cpu === undefined ? 'any CPU' : `${compute.cpu} of a core`;
  const memory = compute?.memory_mb === undefined ? '' : `, ${compute.memory_mb} MB`;
  // What the group says back: the share a busy loop got in it, and the memory limit the kernel holds.
  const got = measured ? `   measured ${measured.cores.toFixed(2)} of a core${measured.memory_mb !== undefined ? `, limit ${measured.memory_mb} MB` : ''}` : '';
  return `${cpu}${memory}${got}`;
}

/**
 * The groups of a testbed's machines, made and measured, a line printed for each; the group of each
 * machine, by its name. Once `compute` names any machine, every machine gets a group (those it does
 * not name with the host's CPU and memory), so all weigh alike against the host's own processes.
 * `reuse`: a machine started again keeps the group it has (a `cpu` event's share stays). Without
 * cgroups here, says so: the machines run unshaped.
 */
export function prepareGroups(tag: string, machines: { name: string; compute?: ComputeShare }[], print: (line: string) => void, reuse = false): Map<string, string> {
  const groups = new Map<string, string>();
  if (!machines.some((m) => m.compute)) return groups;
  const problem = computeProblem();
  if (problem) {
    print(`testbed: compute NOT applied (${problem}): every machine runs with the host's CPU and memory`);
    return groups;
  }
  const kept = (name: string) => reuse && hasGroup(groupName(tag, name));
  for (const machine of machines.filter((m) => kept(m.name))) groups.set(machine.name, groupName(tag, machine.name));
  const made = machines.filter((m) => !kept(m.name));
  if (made.length) print(`testbed: compute of ${made.length} machines (cgroups fl-${tag}-*)`);
  for (const machine of made) {
    const group = groupName(tag, machine.name);
    groups.set(machine.name, group);
    makeGroup(group, machine.compute ?? {});
    print(`  ${machine.name.padEnd(22)} ${describeCompute(machine.compute, measureGroup(group))}`);
  }
  return groups;
}

/** `down`'s line on the groups it removed, and any it could not. */
export function describeRemoved({ removed, left }: { removed: number; left: string[] }): string[] {
  return [
    ...(removed ? [`testbed: removed the compute groups of ${removed} machines`] : []),
    ...(left.length ? [`testbed: could not remove compute groups ${left.join(', ')} (a process is still in them)`] : []),
  ];
}

/**
 * A running machine's share of a core changed: its group's quota, or a new group its processes move
 * into (each with all its threads). What was done, in words.
 */
export function changeCpu(tag: string, machine: string, cores: number, pids: () => number[]): string {
  const problem = computeProblem();
  if (problem) throw new Error(problem);
  const group = groupName(tag, machine);
  if (hasGroup(group)) {
    setCpu(group, cores);
    return `${cores} of a core (group ${group})`;
  }
  makeGroup(group, { cpu: cores });
  const moved = pids();
  for (const pid of moved) for (const controller of CONTROLLERS) writeFileSync(join(dirOf(controller, group), 'cgroup.procs'), String(pid));
  return `${cores} of a core (group ${group}, ${moved.length} processes moved in)`;
}
