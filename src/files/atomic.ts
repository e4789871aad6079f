import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Write then rename, so a crash leaves the old file or the new one, never half of one.
 * `durable` also flushes the data to disk before the rename, so a power cut cannot either.
 * `data` may come in parts (a list, or made one at a time), written in turn, never joined; a write
 * that fails (a part that cannot be made, a full disk) leaves the old file and no temp file.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array | Iterable<Uint8Array>, options: { durable?: boolean; mode?: number } = {}): void {
  mkdirSync(dirname(file), { recursive: true });
  // A name no one can guess, made anew ('wx'): a file or link planted at it beforehand is refused, never written through.
  const temp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(temp, 'wx', options.mode ?? 0o666);
  try {
    try {
      // The mode asked for, whatever the umask makes of open's: a key's file is owner-only from its first byte.
      if (options.mode !== undefined) fchmodSync(fd, options.mode);
      const parts = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
      for (const bytes of parts) for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
      if (options.durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}
