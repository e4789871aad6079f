/** Reads a live process's memory (Linux /proc/<pid>/mem, as a parent may) to look for secrets in it. */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

const CHUNK = 16 * 1024 * 1024;

/** How many of `needles` occur anywhere in the readable memory of process `pid`. */
export function needlesInMemory(pid: number, needles: Buffer[]): { found: number; scannedBytes: number } {
  const longest = Math.max(...needles.map((n) => n.length));
  const found = new Set<number>();
  let scannedBytes = 0;
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  const buffer = Buffer.alloc(CHUNK + longest);
  try {
    for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n')) {
      const [range, perms] = line.split(' ');
      if (perms[0] !== 'r') continue;
      const [start, end] = range.split('-').map((h) => Number.parseInt(h, 16));
      // Overlapping reads so a needle across two chunks is still seen.
      for (let at = start; at < end; at += CHUNK) {
        const length = Math.min(CHUNK + longest, end - at);
        let read = 0;
        try {
          read = readSync(fd, buffer, 0, length, at);
        } catch {
          break; // a mapping that cannot be read (a device, a guard page)
        }
        scannedBytes += Math.min(read, CHUNK);
        const view = buffer.subarray(0, read);
        needles.forEach((needle, i) => view.includes(needle) && found.add(i));
      }
    }
  } finally {
    closeSync(fd);
  }
  return { found: found.size, scannedBytes };
}
