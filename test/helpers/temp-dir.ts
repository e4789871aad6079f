/**
 * A folder of a test's own in the OS's temp folder, removed as the test's process ends when all its
 * tests passed: a failed one's folders stay, to read (FL_KEEP_TEST_DIRS=1 keeps them all). Kept
 * always, a run of the suite left gigabytes there (a testbed's logs and outputs are about 20 MB).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];

process.on('exit', (code) => {
  if (code !== 0 || process.env.FL_KEEP_TEST_DIRS === '1') return;
  for (const dir of made) {
    try {
      // A worker told to stop a moment ago may still be writing its last lines.
      rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
    } catch {
      // Still in use (a namespace's mount, say): left, as a failed test's are.
    }
  }
});

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
