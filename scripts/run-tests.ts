/**
 * Runs the test files of the groups named, one group after the other, with Node's test runner (one
 * process per file): `unit` (test/unit: each file one module, in the test's own process) and `cluster`
 * (test/cluster: real processes, browsers and namespaces). Node 20 takes folders and Node 24 glob
 * patterns, so the files are listed here.
 *   node dist/scripts/run-tests.js unit [cluster] [-- <node --test flags>]
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const TEST_GROUPS = ['unit', 'cluster'] as const;
type TestGroup = (typeof TEST_GROUPS)[number];
/**
 * Two files at a time in both groups, on two cores. Unit files are mostly waiting or short: the
 * group takes half as long (62 s for 112 s). A cluster file waits too (process starts, round
 * deadlines, a browser): the group took 833 s for 1,013 s one at a time, the cores busy 76-99% of
 * it (vmstat, every 30 s). Each file must pass on a loaded machine: two that did not at first (a 4 s push
 * deadline, a 4 s stop that others' training hid) were given room.
 */
const CONCURRENCY: Record<TestGroup, string[]> = { unit: ['--test-concurrency=2'], cluster: ['--test-concurrency=2'] };
const TESTS = resolve(__dirname, '..', 'test');

/** Every compiled test file under `dir`, in a stable order. */
export function testFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.test.js'))
    .sort()
    .map((file) => join(dir, file));
}

function main(args: string[]): number {
  const split = args.indexOf('--');
  const groups = split < 0 ? args : args.slice(0, split);
  const flags = split < 0 ? [] : args.slice(split + 1);
  const unknown = groups.filter((g) => !(TEST_GROUPS as readonly string[]).includes(g));
  if (!groups.length || unknown.length) {
    console.error(`usage: run-tests ${TEST_GROUPS.join('|')} [...] [-- node --test flags]${unknown.length ? `; unknown: ${unknown.join(', ')}` : ''}`);
    return 2;
  }
  // Every group runs, even after one failed: a red run names all that failed.
  const statuses = groups.map((group) => {
    const run = spawnSync(process.execPath, ['--test', ...CONCURRENCY[group as TestGroup], ...flags, ...testFiles(join(TESTS, group))], { stdio: 'inherit' });
    return run.status ?? 1;
  });
  return statuses.find((status) => status !== 0) ?? 0;
}

if (require.main === module) process.exit(main(process.argv.slice(2)));
