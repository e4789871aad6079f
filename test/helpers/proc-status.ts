/** What Linux says of a process's memory in /proc/<pid>/status: the benches and the memory tests read it alike. */
import { readFileSync } from 'node:fs';

/** Resident memory now (VmRSS) or at its peak so far (VmHWM), in MiB; undefined once the process is gone, or not yet there. */
export function memoryMb(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1];
  return kb === undefined ? undefined : Number(kb) / 1024;
}
