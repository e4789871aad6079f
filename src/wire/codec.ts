/**
 * The binary wire format for models and updates: a small typed header, then the payload.
 *
 *   offset  size  field
 *   0       4     magic "FLW1"
 *   4       1     version (1)
 *   5       1     kind (see Kind)
 *   6       2     sender length in bytes (u16)
 *   8       4     round (u32)
 *   12      4     parameter count (u32)
 *   16      4     model id (u32): which architecture the parameters belong to
 *   20      4     contributors (u32): how many client updates this message sums (or, a bundle, carries)
 *   24      8     weight (f64): the samples behind it
 *   32      4     payload length in bytes (u32)
 *   36      4     metadata length in bytes (u32)
 *   40      n     sender address (UTF-8), zero-padded to a multiple of 4
 *   ...     m     metadata: a small JSON object (round instructions), zero-padded to a multiple of 4
 *   ...           payload: float32 little-endian parameters for the plaintext kinds; for a
 *                 quantized update, signed 8- or 16-bit integers (meta.quantized says which and
 *                 their units; see quantized.ts); contributors × parameter count float32 values for
 *                 an update bundle; none for a model reference; for the encrypted kinds a ciphertext list:
 *                 u32 count, count u32 lengths, then the bytes
 */
import { bytesPerValue, dequantizeValues, quantizedMetaProblem, quantizeValues, type QuantizedMeta } from './quantized';


export const MAGIC = 0x31574c46; // "FLW1" read as little-endian u32
export const VERSION = 1;
export const HEADER_BYTES = 40;
export const WIRE_CONTENT_TYPE = 'application/vnd.fl-testbed.wire';

export enum Kind {
  /** The global model, going down to a client. */
  Model = 1,
  /** One client's trained weights (plaintext). */
  Update = 2,
  /** A sample-weighted sum of updates (plaintext), from a switch. */
  WeightedSum = 3,
  /** One client's pre-scaled weights, CKKS-encrypted. */
  EncryptedUpdate = 4,
  /** A switch's sum of encrypted updates. */
  EncryptedSum = 5,
  /** The encrypted global model going down to the clients that hold the key. */
  EncryptedModel = 6,
  /** One client's update quantized to 8 or 16 bits (plaintext); decoded to floats on arrival. */
  QuantizedUpdate = 7,
  /**
   * The round's instructions without the model, for clients that hold it already: with the key at
   * the clients, each evaluated the encrypted model (meta.model_tag names it) and trains from it.
   */
  ModelReference = 8,
  /**
   * A switch's clients' updates, each as its client trained it (plaintext), for a strategy that
   * reads every update (a robust rule): `contributors` float32 vectors back to back, their clients
   * in meta.clients and their samples in meta.weights, in the same order.
   */
  UpdateBundle = 9,
}

export const ENCRYPTED_KINDS: ReadonlySet<Kind> = new Set([Kind.EncryptedUpdate, Kind.EncryptedSum, Kind.EncryptedModel]);

export interface Message {
  kind: Kind;
  round: number;
  modelId: number;
  contributors: number;
  weight: number;
  sender: string;
  /** Small settings that travel with the message (never the parameters). */
  meta?: Record<string, unknown>;
  /** The parameters themselves (plaintext kinds; empty for the encrypted ones). */
  parameters: Float32Array;
  /** The encrypted kinds' ciphertexts, packing `count` parameters. */
  ciphertexts?: Uint8Array[];
  /** How many model parameters the message carries (defaults to parameters.length). */
  count?: number;
}

/** The ciphertext list's table (count, lengths) and views of the ciphertexts themselves. */
function ciphertextPayload(list: Uint8Array[]): Buffer[] {
  const table = Buffer.alloc(4 + 4 * list.length);
  table.writeUInt32LE(list.length, 0);
  list.forEach((c, i) => table.writeUInt32LE(c.length, 4 + 4 * i));
  return [table, ...list.map(view)];
}

const view = (bytes: ArrayBufferView): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

function readCiphertexts(payload: Buffer): Uint8Array[] {
  if (payload.length < 4) throw new WireError('an encrypted payload starts with its ciphertext count');
  const count = payload.readUInt32LE(0);
  if (count === 0 || 4 + 4 * count > payload.length) throw new WireError(`a ciphertext count of ${count} does not fit a ${payload.length}-byte payload`);
  const out: Uint8Array[] = [];
  let at = 4 + 4 * count;
  for (let i = 0; i < count; i++) {
    const length = payload.readUInt32LE(4 + 4 * i);
    if (length === 0 || at + length > payload.length) throw new WireError(`ciphertext ${i} of ${length} bytes runs past the payload`);
    // Views, not copies: a copy per ciphertext is an allocation per ciphertext, and the collector's time with them.
    out.push(new Uint8Array(payload.buffer, payload.byteOffset + at, length));
    at += length;
  }
  if (at !== payload.length) throw new WireError(`${payload.length - at} bytes after the last ciphertext`);
  return out;
}

export class WireError extends Error {}

/**
 * The most metadata a message of `updates` updates carries: round instructions (under SCAFFOLD the
 * round each worker last counted in), or a bundle's names and samples, a few hundred bytes an update.
 * Read before anything else, so it is bounded before it is parsed.
 */
export const maxMetaBytes = (updates: number): number => 64 * 1024 + 256 * updates;

const pad4 = (n: number) => (n + 3) & ~3;

export function encode(message: Message): Buffer {
  const parts = encodeParts(message);
  // A buffer of its own (Buffer.concat takes small ones from the shared pool).
  const out = Buffer.alloc(byteLength(parts));
  let at = 0;
  for (const part of parts) at += part.copy(out, at);
  return out;
}

/**
 * The message as the parts it is sent in (peers.post sends them as one body): a head (header,
 * sender, metadata) and the payload as views of the message's own arrays, not copies. Joined, a
 * sum of tens of megabytes would be held three times as it goes up (the ciphertexts, their list,
 * the message); in parts, once. The arrays must not change until the parts are sent.
 */
export function encodeParts(message: Message): Buffer[] {
  const sender = Buffer.from(message.sender, 'utf8');
  if (sender.length > 0xffff) throw new WireError('sender is too long');
  const meta = message.meta ? Buffer.from(JSON.stringify(message.meta), 'utf8') : Buffer.alloc(0);
  const encrypted = ENCRYPTED_KINDS.has(message.kind);
  if (encrypted !== (message.ciphertexts !== undefined)) throw new WireError(`kind ${message.kind} ${encrypted ? 'needs' : 'takes no'} ciphertexts`);
  if (message.kind === Kind.UpdateBundle && message.parameters.length !== (message.count ?? 0) * message.contributors) {
    throw new WireError(`a bundle of ${message.contributors} updates of ${message.count} parameters holds ${(message.count ?? 0) * message.contributors} values, not ${message.parameters.length}`);
  }
  const payload = encrypted ? ciphertextPayload(message.ciphertexts!) : [plainPayload(message)];
  const payloadBytes = byteLength(payload);
  const metaAt = HEADER_BYTES + pad4(sender.length);
  const start = metaAt + pad4(meta.length);
  const out = Buffer.alloc(start);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt8(VERSION, 4);
  out.writeUInt8(message.kind, 5);
  out.writeUInt16LE(sender.length, 6);
  out.writeUInt32LE(message.round, 8);
  out.writeUInt32LE(message.count ?? message.parameters.length, 12);
  out.writeUInt32LE(message.modelId >>> 0, 16);
  out.writeUInt32LE(message.contributors, 20);
  out.writeDoubleLE(message.weight, 24);
  out.writeUInt32LE(payloadBytes, 32);
  out.writeUInt32LE(meta.length, 36);
  sender.copy(out, HEADER_BYTES);
  meta.copy(out, metaAt);
  return [out, ...payload];
}

/** The bytes of a message in parts. */
export const byteLength = (parts: readonly Buffer[]): number => parts.reduce((n, part) => n + part.length, 0);

function plainPayload(message: Message): Buffer {
  if (message.kind === Kind.QuantizedUpdate) {
    const problem = quantizedMetaProblem(message.meta?.quantized, message.parameters.length);
    if (problem) throw new WireError(problem);
  }
  const values = message.kind === Kind.QuantizedUpdate ? quantizeValues(message.parameters, message.meta!.quantized as QuantizedMeta) : message.parameters;
  return view(values);
}

/**
 * The same message with `extra` merged into its metadata, as the two parts it is sent in: a head of
 * its own (header, sender, metadata) and the payload, a view of `body`'s, not a copy. A switch adds
 * each client's part of a round's instructions to that client's copy of the model; a hundred copies
 * of a model then cost a hundred heads, not a hundred models. `body` must be one `decode` took.
 */
export function withMeta(body: Buffer, extra: Record<string, unknown>): Buffer[] {
  const metaAt = HEADER_BYTES + pad4(body.readUInt16LE(6));
  const metaLength = body.readUInt32LE(36);
  const meta = metaLength ? JSON.parse(body.toString('utf8', metaAt, metaAt + metaLength)) : {};
  const merged = Buffer.from(JSON.stringify({ ...meta, ...extra }), 'utf8');
  const head = Buffer.alloc(metaAt + pad4(merged.length));
  body.copy(head, 0, 0, metaAt);
  head.writeUInt32LE(merged.length, 36);
  merged.copy(head, metaAt);
  return [head, body.subarray(metaAt + pad4(metaLength))];
}

/** Reads a message, checking every length against the bytes that arrived. */
export function decode(body: Buffer): Message {
  if (!Buffer.isBuffer(body) || body.length < HEADER_BYTES) {
    throw new WireError(`a wire message has a ${HEADER_BYTES}-byte header; got ${body?.length ?? 0} bytes`);
  }
  if (body.readUInt32LE(0) !== MAGIC) throw new WireError('not a wire message (bad magic)');
  const version = body.readUInt8(4);
  if (version !== VERSION) throw new WireError(`wire version ${version}; this node speaks ${VERSION}`);
  const kind = body.readUInt8(5);
  if (!(kind in Kind)) throw new WireError(`unknown message kind ${kind}`);
  const senderLength = body.readUInt16LE(6);
  const count = body.readUInt32LE(12);
  const payloadBytes = body.readUInt32LE(32);
  const metaLength = body.readUInt32LE(36);
  const metaAt = HEADER_BYTES + pad4(senderLength);
  const start = metaAt + pad4(metaLength);
  const encrypted = ENCRYPTED_KINDS.has(kind);
  if (body.length !== start + payloadBytes) {
    throw new WireError(`the header announces ${start + payloadBytes} bytes, the body has ${body.length}`);
  }
  const contributors = body.readUInt32LE(20);
  if (metaLength > maxMetaBytes(Math.max(1, contributors))) throw new WireError(`${metaLength} bytes of metadata; a message of ${contributors} updates carries at most ${maxMetaBytes(Math.max(1, contributors))}`);
  const weight = body.readDoubleLE(24);
  if (!Number.isFinite(weight) || weight < 0) throw new WireError(`weight must be a finite number >= 0, got ${weight}`);
  let meta: Record<string, unknown> | undefined;
  if (metaLength) {
    try {
      meta = JSON.parse(body.toString('utf8', metaAt, metaAt + metaLength));
    } catch {
      throw new WireError('the metadata block is not valid JSON');
    }
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new WireError('the metadata block must be a JSON object');
  }
  // A bundle carries one vector per update in it.
  const values = kind === Kind.UpdateBundle ? count * contributors : count;
  const parameters = encrypted ? new Float32Array(0) : readParameters(kind, meta, values, body.subarray(start, start + payloadBytes));
  return {
    kind,
    round: body.readUInt32LE(8),
    modelId: body.readUInt32LE(16),
    contributors,
    weight,
    sender: body.toString('utf8', HEADER_BYTES, HEADER_BYTES + senderLength),
    meta,
    parameters,
    ...(encrypted ? { ciphertexts: readCiphertexts(body.subarray(start, start + payloadBytes)) } : {}),
    count,
  };
}

/** Float32 parameters, from float32 or (a quantized update) from its integers. */
function readParameters(kind: Kind, meta: Record<string, unknown> | undefined, count: number, payload: Buffer): Float32Array {
  if (kind === Kind.ModelReference) {
    if (payload.length) throw new WireError(`a model reference carries no parameters; it has ${payload.length} bytes of payload`);
    return new Float32Array(0);
  }
  if (kind !== Kind.QuantizedUpdate) {
    if (payload.length !== count * 4) throw new WireError(`payload of ${payload.length} bytes cannot hold ${count} float32 parameters`);
    // Copy: the body's offset in Node's buffer pool need not be 4-byte aligned.
    const parameters = new Float32Array(count);
    Buffer.from(parameters.buffer).set(payload);
    return parameters;
  }
  const problem = quantizedMetaProblem(meta?.quantized, count);
  if (problem) throw new WireError(problem);
  const quantized = meta!.quantized as QuantizedMeta;
  const width = bytesPerValue(quantized.bits);
  if (payload.length !== count * width) throw new WireError(`payload of ${payload.length} bytes cannot hold ${count} ${quantized.bits}-bit values`);
  const integers = width === 1 ? new Int8Array(count) : new Int16Array(count);
  Buffer.from(integers.buffer).set(payload);
  return dequantizeValues(integers, quantized);
}

/** The index of the first NaN or infinite parameter, or -1. */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}
