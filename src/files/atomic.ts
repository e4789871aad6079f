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
  const temp = `${file}.${process.pid}.tmp`;
  const fd = openSync(temp, 'w', options.mode ?? 0o666);
  try {
    try {
      // A temp file left by a crash keeps the mode it was made with: a key must not inherit a looser one.
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
