/**
 * Debian's sshd in every machine's namespace, on port 22 of its own address, with a host key of
 * its own and one authorised key made for the testbed. The ssh client config written beside them
 * (`ssh_config`) trusts exactly those host keys, so `npm run ssh -- --ssh-config <it>` runs as it
 * would against the lab's machines.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestbedPlan } from './plan';
import { machineCommand } from './cgroups';
import { EmulateError, run } from './system';

const SSHD = '/usr/sbin/sshd';
const SFTP_SERVER = '/usr/lib/openssh/sftp-server';

export interface SshFiles {
  dir: string;
  /** `ssh -F` this, or `npm run ssh -- --ssh-config` it. */
  clientConfig: string;
}

export const sshFiles = (stateDir: string): SshFiles => {
  const dir = resolve(stateDir, 'ssh');
  return { dir, clientConfig: join(dir, 'ssh_config') };
};

function keygen(file: string): string {
  if (!existsSync(file)) run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fl-testbed', '-f', file]);
  return readFileSync(`${file}.pub`, 'utf8').trim();
}

/** Host keys, the testbed's key pair, authorized_keys, known_hosts and both configs. */
export function writeSshFiles(plan: TestbedPlan, stateDir: string): SshFiles {
  if (!existsSync(SSHD)) throw new EmulateError(`${SSHD} is missing: the emulated testbed runs Debian's sshd (apt-get install openssh-server; npm test installs it)`);
  const files = sshFiles(stateDir);
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  const identity = join(files.dir, 'id_ed25519');
  writeFileSync(join(files.dir, 'authorized_keys'), keygen(identity) + '\n', { mode: 0o600 });
  const known = plan.machines.map((m) => `${m.host} ${keygen(hostKey(files, m.host)).split(' ').slice(0, 2).join(' ')}`);
  writeFileSync(join(files.dir, 'known_hosts'), known.join('\n') + '\n');
  const client = [
    'Host *',
    `  User ${userInfo().username}`,
    `  IdentityFile ${identity}`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile ${join(files.dir, 'known_hosts')}`,
    '  GlobalKnownHostsFile /dev/null',
    '  StrictHostKeyChecking yes',
    '  ConnectTimeout 10',
  ];
  writeFileSync(files.clientConfig, client.join('\n') + '\n');
  const server = [
    'Port 22',
    `AuthorizedKeysFile ${join(files.dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // The state folder may sit under /tmp; the keys in it are the testbed's own.
    'StrictModes no',
    'PrintMotd no',
    `Subsystem sftp ${SFTP_SERVER}`,
  ];
  writeFileSync(join(files.dir, 'sshd_config'), server.join('\n') + '\n');
  return files;
}

const hostKey = (files: SshFiles, host: string) => join(files.dir, `host-${host}`);

/** Starts sshd in each machine's namespace; it listens before it detaches, so ssh can connect at once. */
export function startSshd(plan: TestbedPlan, files: SshFiles, groups: ReadonlyMap<string, string> = new Map()): void {
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege-separation folder
  for (const machine of plan.machines) {
    const log = join(files.dir, `sshd-${machine.host}.log`);
    rmSync(log, { force: true });
    const sshd = [
      SSHD,
      '-f', join(files.dir, 'sshd_config'),
      '-h', hostKey(files, machine.host),
      '-o', `ListenAddress=${machine.host}`,
      '-o', `PidFile=${join(files.dir, `sshd-${machine.host}.pid`)}`,
      '-E', log,
    ];
    // In the machine's compute group, so is everything started over ssh: the workers, their HE threads.
    const [program, ...args] = machineCommand(machine.ns, sshd, groups.get(machine.host));
    run(program, args);
  }
}
