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
import { writeFileAtomic } from './files/atomic';

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
  return Buffer.concat(checkpointParts(round, header, blobs));
}

/**
 * A checkpoint as the parts it is written in: its head, the blobs themselves (not copies), and the
 * digest of them all. Joined, a model's blob would be held twice more as the round ends.
 */
function checkpointParts(round: number, header: Record<string, unknown>, blobs: Record<string, Uint8Array>): Uint8Array[] {
  const table = Object.entries(blobs).map(([name, bytes]) => ({ name, bytes: bytes.byteLength }));
  const json = Buffer.from(JSON.stringify({ round, header, blobs: table }), 'utf8');
  const head = Buffer.alloc(12);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(VERSION, 4);
  head.writeUInt32LE(json.length, 8);
  const parts = [head, json, ...Object.values(blobs)];
  const digest = createHash('sha256');
  for (const part of parts) digest.update(part);
  return [...parts, digest.digest()];
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
    writeFileAtomic(file, checkpointParts(round, header, blobs), { durable: true });
    for (const old of this.files().slice(KEEP)) rmSync(old, { force: true });
    return file;
  }

  /** Checkpoint files, newest round first (by the round's number: past 999, names no longer sort as text). */
  files(): string[] {
    if (!existsSync(this.dir)) return [];
    const roundOf = (f: string) => Number(/^round-(\d+)\.ckpt$/.exec(f)![1]);
    return readdirSync(this.dir)
      .filter((f) => /^round-\d+\.ckpt$/.test(f))
      .sort((a, b) => roundOf(b) - roundOf(a))
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

/** Where the aggregator keeps its checkpoints, in outputs/<experiment>/. */
export const CHECKPOINTS_DIR = 'checkpoints';
/** The aggregator's HE key pair (key_holder "aggregator"), owner-only, beside its checkpoints. */
export const KEY_PAIR_FILE = 'he-keypair.json';

/** What an aggregator's checkpoint header holds besides the blobs. */
export interface CheckpointHeader {
  experiment: string;
  /** The settings it was made with (a resume refuses other ones). */
  settings: Record<string, unknown>;
  /** The metrics rows of the rounds done. */
  rows: unknown[];
  strategy_state: string[];
  saved_at: string;
  /** The last round each worker's update counted in (SCAFFOLD's clients keep their control variate by it). */
  counted?: Record<string, number>;
}

/** Everything a resumed aggregator needs: the global model (plain, or the encrypted model message) and the strategy's state. */
export interface AggregatorState {
  header: CheckpointHeader;
  global: { plain: Float32Array } | { encryptedMessage: Uint8Array };
  strategy: Record<string, Float32Array>;
}

/** The aggregator's state as a checkpoint's header and blobs. */
export function aggregatorCheckpoint(state: Omit<AggregatorState, 'header'> & { header: Omit<CheckpointHeader, 'strategy_state'> }) {
  const blobs: Record<string, Uint8Array> = 'plain' in state.global ? { global: float32Bytes(state.global.plain) } : { encrypted_model: state.global.encryptedMessage };
  for (const [name, values] of Object.entries(state.strategy)) blobs[`strategy.${name}`] = float32Bytes(values);
  const header: CheckpointHeader = { ...state.header, strategy_state: Object.keys(state.strategy) };
  return { header: header as unknown as Record<string, unknown>, blobs };
}

/** Reads back what `aggregatorCheckpoint` wrote; a blob the header names but the file lacks is an error. */
export function aggregatorState(checkpoint: Checkpoint): AggregatorState {
  const header = checkpoint.header as unknown as CheckpointHeader;
  const blob = (name: string) => {
    const bytes = checkpoint.blobs[name];
    if (!bytes) throw new CheckpointError(`${checkpoint.file}: no blob "${name}"`);
    return bytes;
  };
  const global = checkpoint.blobs.encrypted_model ? { encryptedMessage: checkpoint.blobs.encrypted_model } : { plain: Float32Array.from(asFloat32(blob('global'))) };
  const strategy = Object.fromEntries(header.strategy_state.map((name) => [name, Float32Array.from(asFloat32(blob(`strategy.${name}`)))]));
  return { header, global, strategy };
}
