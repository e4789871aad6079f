/**
 * Run by `npm test` before the suite: makes sure the browser the dashboard test drives (Debian's
 * Chromium, through playwright-core) is there. Missing, as root on Debian, it installs it with apt;
 * otherwise it says how to, and the dashboard test skips itself, naming why.
 *   node dist/scripts/ensure-browser.js
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';

export const DEFAULT_CHROMIUM = '/usr/bin/chromium';

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

function main(): number {
  const path = chromiumPath();
  if (isExecutable(path)) return 0;
  if (process.env.CHROMIUM_PATH) {
    console.log(`ensure-browser: CHROMIUM_PATH=${path} is not an executable; the dashboard test will be skipped`);
    return 0;
  }
  const root = process.getuid?.() === 0;
  const debian = existsSync('/etc/debian_version') && spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!root || !debian) {
    const how = debian ? 'sudo apt-get install chromium' : 'install Chromium';
    console.log(`ensure-browser: no Chromium at ${path}; the dashboard test will be skipped (${how}, or set CHROMIUM_PATH to a Chromium)`);
    return 0;
  }
  console.log(`ensure-browser: installing Debian's chromium for the dashboard test (apt-get install chromium)`);
  const install = spawnSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq chromium'], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  if (install.status === 0 && isExecutable(path)) return 0;
  const why = (install.stderr || install.error?.message || `exit ${install.status}`).trim().split('\n').slice(-3).join(' | ');
  // CI must drive the browser; elsewhere the rest of the suite is still worth running.
  if (process.env.CI) {
    console.error(`ensure-browser: installing chromium failed: ${why}`);
    return 1;
  }
  console.log(`ensure-browser: installing chromium failed (${why}); the dashboard test will be skipped`);
  return 0;
}

if (require.main === module) process.exitCode = main();
