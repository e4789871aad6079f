/**
 * Run by `npm test` before the suite: makes sure what the tests need of the system is there.
 * Debian's Chromium (the dashboard test drives it through playwright-core) and Debian's
 * openssh-server (the emulated testbed runs its sshd in every machine's namespace). Missing, as
 * root on Debian, they are installed with apt; otherwise it says how to, and the tests that need
 * them skip themselves, naming why.
 *   node dist/scripts/ensure-system.js
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, rmSync, writeFileSync } from 'node:fs';

export const DEFAULT_CHROMIUM = '/usr/bin/chromium';
export const SSHD = '/usr/sbin/sshd';

/** Where the dashboard test looks for the browser: $CHROMIUM_PATH, else Debian's Chromium. */
export function chromiumPath(): string {
  return process.env.CHROMIUM_PATH || DEFAULT_CHROMIUM;
}

export function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Why the dashboard test cannot run here, or undefined when the browser is there. */
export function missingBrowser(): string | undefined {
  const path = chromiumPath();
  if (isExecutable(path)) return undefined;
  return process.env.CHROMIUM_PATH
    ? `no browser at CHROMIUM_PATH=${path}`
    : `no browser at ${path}: \`apt-get install chromium\` (\`npm test\` does so itself, run as root on Debian), or set CHROMIUM_PATH`;
}

interface Need {
  pkg: string;
  binary: string;
  /** Which tests skip without it. */
  for: string;
}

function needs(): Need[] {
  const all: Need[] = [{ pkg: 'openssh-server', binary: SSHD, for: 'the emulated testbed test' }];
  if (process.env.CHROMIUM_PATH) {
    if (!isExecutable(chromiumPath())) console.log(`ensure-system: CHROMIUM_PATH=${chromiumPath()} is not an executable; the dashboard test will be skipped`);
  } else all.push({ pkg: 'chromium', binary: DEFAULT_CHROMIUM, for: 'the dashboard test' });
  return all.filter((need) => !isExecutable(need.binary));
}

/**
 * apt-get with services kept from starting: installing openssh-server must not start an sshd on
 * the machine itself (policy-rc.d answering 101, unless the machine has one of its own).
 */
function aptInstall(packages: string[]): { ok: boolean; why: string } {
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = existsSync(policy);
  if (!ownPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    const install = spawnSync('sh', ['-c', `apt-get update -qq && apt-get install -y -qq ${packages.join(' ')}`], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
    });
    return { ok: install.status === 0, why: (install.stderr || install.error?.message || `exit ${install.status}`).trim().split('\n').slice(-3).join(' | ') };
  } finally {
    if (!ownPolicy) rmSync(policy, { force: true });
  }
}

function main(): number {
  const missing = needs();
  if (!missing.length) return 0;
  const names = missing.map((n) => n.pkg).join(' ');
  const root = process.getuid?.() === 0;
  const debian = existsSync('/etc/debian_version') && spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!root || !debian) {
    for (const need of missing) {
      console.log(`ensure-system: no ${need.binary}; ${need.for} will be skipped (${debian ? `sudo apt-get install ${need.pkg}` : `install ${need.pkg}`})`);
    }
    return 0;
  }
  console.log(`ensure-system: installing Debian's ${names} for ${missing.map((n) => n.for).join(' and ')} (apt-get install ${names})`);
  const { ok, why } = aptInstall(missing.map((n) => n.pkg));
  // Debian's ssh service leaves the machine alone, at boot too; the testbed starts its sshds itself.
  if (missing.some((n) => n.pkg === 'openssh-server') && existsSync('/etc/ssh')) writeFileSync('/etc/ssh/sshd_not_to_be_run', 'fl-testbed: sshd runs only in the emulated testbed\'s namespaces\n');
  const still = missing.filter((need) => !isExecutable(need.binary));
  if (ok && !still.length) return 0;
  // CI must run every test; elsewhere the rest of the suite is still worth running.
  if (process.env.CI) {
    console.error(`ensure-system: installing ${names} failed: ${why}`);
    return 1;
  }
  console.log(`ensure-system: installing ${names} failed (${why}); ${still.map((n) => n.for).join(' and ')} will be skipped`);
  return 0;
}

if (require.main === module) process.exitCode = main();
