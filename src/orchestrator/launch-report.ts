/**
 * What a launcher saw as it started the workers, kept beside the cluster token it started them with
 * (`launch.json`): a worker that exited at start, in its own words. The aggregator, run with the same
 * token file, names such a worker with them, rather than only "unreachable".
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { canonicalAddress } from '../config/address';
import { writeFileAtomic } from '../files/atomic';

export const LAUNCH_REPORT = 'launch.json';

/** Each worker a launcher could not start, by address: what it said (its last lines). */
export type LaunchFailures = Record<string, string>;

/** Where the report of a launcher that used `tokenFile` goes (or, the token given otherwise, .run/ of the project). */
export const launchReportFile = (tokenFile: string | undefined) => (tokenFile ? join(dirname(tokenFile), LAUNCH_REPORT) : join('.run', LAUNCH_REPORT));

export function writeLaunchReport(file: string, failures: LaunchFailures): void {
  writeFileAtomic(file, JSON.stringify({ written: new Date().toISOString(), failures }, null, 2) + '\n', { mode: 0o600 });
}

/** The failures a launcher recorded beside `tokenFile`; none when there is no report, or it cannot be read. */
export function readLaunchFailures(tokenFile: string | undefined): ReadonlyMap<string, string> {
  const file = launchReportFile(tokenFile);
  if (!existsSync(file)) return new Map();
  try {
    const { failures, written } = JSON.parse(readFileSync(file, 'utf8')) as { failures?: Record<string, unknown>; written?: unknown };
    // When, so that a report older than the workers running now is read for what it is.
    const when = typeof written === 'string' ? ` (${file}, ${written})` : ` (${file})`;
    return new Map(Object.entries(failures ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string').map(([address, said]) => [canonicalAddress(address), `${said.slice(0, 1000)}${when}`]));
  } catch {
    return new Map();
  }
}
