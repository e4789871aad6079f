/** The system calls the emulated testbed makes (ip, tc), and what they need of the machine. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

export class EmulateError extends Error {}

/** Runs a program to its end; a failure names the command and what it printed. */
export function run(program: string, args: string[], input?: string): string {
  try {
    return execFileSync(program, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new EmulateError(`${program} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

/** `ip netns exec <ns> <program> …`: the command sees only that namespace's network. */
export const inNamespace = (ns: string, program: string, args: string[], input?: string) => run('ip', ['netns', 'exec', ns, program, ...args], input);

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;

/**
 * What this process lacks to build namespaces (Linux, `ip` and `tc`, CAP_NET_ADMIN for links and
 * qdiscs, CAP_SYS_ADMIN for `ip netns add`'s mount); empty when nothing is missing.
 */
export function missingForEmulation(platform = process.platform, status = readStatus(), hasProgram = programExists): string[] {
  if (platform !== 'linux') return [`Linux network namespaces (this is ${platform})`];
  const missing: string[] = [];
  const effective = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? '0'}`);
  const has = (bit: number) => (effective >> BigInt(bit)) & 1n;
  if (!has(CAP_NET_ADMIN)) missing.push('CAP_NET_ADMIN');
  if (!has(CAP_SYS_ADMIN)) missing.push('CAP_SYS_ADMIN');
  if (missing.length) missing.splice(0, missing.length, `root, or ${missing.join(' and ')} (run it with sudo)`);
  for (const program of ['ip', 'tc']) if (!hasProgram(program)) missing.push(`the "${program}" command (Debian: apt-get install iproute2)`);
  return missing;
}

function readStatus(): string {
  try {
    return readFileSync('/proc/self/status', 'utf8');
  } catch {
    return '';
  }
}

function programExists(program: string): boolean {
  return ['/usr/sbin', '/sbin', '/usr/bin', '/bin'].some((dir) => existsSync(`${dir}/${program}`));
}

export function assertCanEmulate(): void {
  const missing = missingForEmulation();
  if (missing.length) {
    throw new EmulateError(`--emulate needs ${missing.join('; ')}. Without --emulate the testbed runs on loopback addresses and needs none of it.`);
  }
}
