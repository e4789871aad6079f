/**
 * Checkpoints: what the aggregator needs to go on after a crash, one file per finished round in
 * outputs/<experiment>/checkpoints/. Each is written then renamed, and ends with a SHA-256 of
 * everything before it, so a torn or corrupted file is detected and the one before it used.
 *
 *   "FLCK" | u32 version | u32 header length | header JSON | blobs… | SHA-256 (32 bytes)
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './log/atomic';

const MAGIC = 'FLCK';
const VERSION = 1;
const DIGEST_BYTES = 32;
/** Older checkpoints are pruned; a few stay so a damaged newest one has fallbacks. */
const KEEP = 3;

export interface Checkpoint<H = Record<string, unknown>> {
  round: number;
  header: H;
  blobs: Record<string, Uint8Array>;
  file: string;
}

export interface Skipped {
  file: string;
  reason: string;
}

export class CheckpointError extends Error {}

const fileFor = (dir: string, round: number) => join(dir, `round-${String(round).padStart(3, '0')}.ckpt`);

export function encodeCheckpoint(round: number, header: Record<string, unknown>, blobs: Record<string, Uint8Array>): Buffer {
  const table = Object.entries(blobs).map(([name, bytes]) => ({ name, bytes: bytes.byteLength }));
  const json = Buffer.from(JSON.stringify({ round, header, blobs: table }), 'utf8');
  const head = Buffer.alloc(12);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(VERSION, 4);
  head.writeUInt32LE(json.length, 8);
  const body = Buffer.concat([head, json, ...Object.values(blobs).map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength))]);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

export function decodeCheckpoint(bytes: Buffer, file = '(memory)'): Checkpoint {
  const fail = (why: string): never => {
    throw new CheckpointError(`${file}: ${why}`);
  };
  if (bytes.length < 12 + DIGEST_BYTES) fail(`${bytes.length} bytes is too short to be a checkpoint`);
  if (bytes.toString('latin1', 0, 4) !== MAGIC) fail('not a checkpoint (bad magic)');
  const body = bytes.subarray(0, bytes.length - DIGEST_BYTES);
  if (!createHash('sha256').update(body).digest().equals(bytes.subarray(bytes.length - DIGEST_BYTES))) {
    fail('checksum mismatch: the file is torn or corrupted');
  }
  if (bytes.readUInt32LE(4) !== VERSION) fail(`version ${bytes.readUInt32LE(4)}; this program reads version ${VERSION}`);
  const jsonLength = bytes.readUInt32LE(8);
  const parsed = JSON.parse(body.toString('utf8', 12, 12 + jsonLength)) as { round: number; header: Record<string, unknown>; blobs: { name: string; bytes: number }[] };
  const blobs: Record<string, Uint8Array> = {};
  let at = 12 + jsonLength;
  for (const { name, bytes: length } of parsed.blobs) {
    if (at + length > body.length) fail(`blob ${name} runs past the end`);
    blobs[name] = new Uint8Array(body.subarray(at, at + length)); // a copy: aligned, and free of the file's buffer
    at += length;
  }
  return { round: parsed.round, header: parsed.header, blobs, file };
}

export class CheckpointStore {
  constructor(readonly dir: string) {}

  /** Writes round's checkpoint durably, then prunes all but the last few. */
  save(round: number, header: Record<string, unknown>, blobs: Record<string, Uint8Array>): string {
    mkdirSync(this.dir, { recursive: true });
    const file = fileFor(this.dir, round);
    writeFileAtomic(file, encodeCheckpoint(round, header, blobs), { durable: true });
    for (const old of this.files().slice(KEEP)) rmSync(old, { force: true });
    return file;
  }

  /** Checkpoint files, newest round first. */
  files(): string[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((f) => /^round-\d+\.ckpt$/.test(f))
      .sort()
      .reverse()
      .map((f) => join(this.dir, f));
  }

  /** The newest checkpoint that reads back whole, and the newer ones that did not (and why). */
  latest(): { checkpoint?: Checkpoint; skipped: Skipped[] } {
    const skipped: Skipped[] = [];
    for (const file of this.files()) {
      try {
        return { checkpoint: decodeCheckpoint(readFileSync(file), file), skipped };
      } catch (err) {
        skipped.push({ file, reason: (err as Error).message });
      }
    }
    return { skipped };
  }

  clear(): void {
    for (const file of this.files()) rmSync(file, { force: true });
  }
}

export const asFloat32 = (bytes: Uint8Array): Float32Array => new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
export const float32Bytes = (values: Float32Array): Uint8Array => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
