/** Reading a wire message off a request: every check a role needs, each failure a 400 with a reason. */
import type { Settings } from '../config/schema';
import { firstBeyond, valueLimits, widestClip } from '../he/bounds';
import { badRequest, HttpError } from '../net/errors';
import { attemptProblem } from './attempt';
import { decode, ENCRYPTED_KINDS, firstNonFinite, Kind, WireError, type Message } from './codec';

export interface Expectation {
  kinds: Kind[];
  modelId: number;
  parameters: number;
  /** For the encrypted kinds: the HE parameter id and how many ciphertexts pack the model. */
  he?: { id: string; chunks: number };
  /** How large a plaintext value may be (he/bounds.ts); without it, only finite. */
  limits?: PlainLimits;
}

/** The largest |value| of a plaintext model or update, of a quantized one (its clip), and why. */
export interface PlainLimits {
  model: number;
  quantized?: number;
  /** he.quantize.bits, which a quantized update must be quantized to. */
  quantizedBits?: number;
  why: string;
}

/** An experiment's limits on plaintext values (see he/bounds.ts). */
export function plainLimits(he: Settings['he']): PlainLimits {
  const { model, why } = valueLimits(he);
  const clip = he.quantize?.clip;
  const quantized = clip !== undefined ? { quantized: widestClip(clip), quantizedBits: he.quantize!.bits } : {};
  return { model, why, ...quantized };
}

export function readMessage(body: unknown, expect: Expectation): Message {
  if (!Buffer.isBuffer(body)) throw new HttpError(415, 'unsupported media type', 'expected a binary wire message');
  let message: Message;
  try {
    message = decode(body);
  } catch (err) {
    if (err instanceof WireError) throw new HttpError(400, 'bad message', err.message);
    throw err;
  }
  if (!expect.kinds.includes(message.kind)) {
    const names = expect.kinds.map((k) => `${Kind[k]} (${k})`).join(' or ');
    throw new HttpError(400, 'bad message', `expected ${names}, got kind ${message.kind}`);
  }
  if (message.modelId !== expect.modelId) {
    throw new HttpError(400, 'wrong model', `model id ${message.modelId} is not this experiment's (${expect.modelId})`);
  }
  if (message.count !== expect.parameters) {
    throw new HttpError(400, 'wrong size', `this experiment's model has ${expect.parameters} parameters; the message has ${message.count}`);
  }
  if (ENCRYPTED_KINDS.has(message.kind)) {
    const he = expect.he;
    if (!he) throw new HttpError(400, 'bad message', 'this experiment does not encrypt its updates');
    if (message.meta?.he !== he.id) {
      throw new HttpError(400, 'wrong HE parameters', `ciphertexts made under HE parameters ${String(message.meta?.he)}; this experiment uses ${he.id}`);
    }
    if (message.ciphertexts!.length !== he.chunks) {
      throw new HttpError(400, 'wrong size', `${expect.parameters} parameters pack into ${he.chunks} ciphertexts; the message has ${message.ciphertexts!.length}`);
    }
    return message;
  }
  const bad = firstNonFinite(message.parameters);
  if (bad >= 0) throw new HttpError(400, 'bad values', `parameter ${bad} is ${message.parameters[bad]}; updates must be finite`);
  if (expect.limits) checkRange(message, expect.limits);
  return message;
}

/** Refuses a value beyond the experiment's limit (a switch's sum weighs its samples: its values are that many times larger). */
function checkRange(message: Message, limits: PlainLimits): void {
  const quantized = message.kind === Kind.QuantizedUpdate;
  if (quantized && message.meta) {
    // A quantized value is at most its top integer times its unit: units beyond the clip are what to refuse.
    const bits = (message.meta.quantized as { bits?: unknown } | undefined)?.bits;
    if (bits !== limits.quantizedBits && limits.quantizedBits !== undefined) throw new HttpError(400, 'bad values', `the update is quantized to ${String(bits)} bits; this experiment quantizes to ${limits.quantizedBits}`);
  }
  const limit = (quantized ? (limits.quantized ?? limits.model) : limits.model) * (message.kind === Kind.WeightedSum ? Math.max(1, message.weight) : 1);
  const beyond = firstBeyond(message.parameters, limit * (1 + 1e-6));
  if (beyond >= 0) {
    const what = message.kind === Kind.WeightedSum ? `a sum of ${message.weight} samples stays within ±${limit} (±${limit / Math.max(1, message.weight)} a sample)` : `values stay within ±${limit}`;
    throw new HttpError(400, 'bad values', `parameter ${beyond} is ${message.parameters[beyond]}; in this experiment ${what} (${limits.why})`);
  }
}

/** The opening of its round a model or an update belongs to (meta.attempt); a 400 when it names none, or another round's. */
export function attemptOf(message: Message): string {
  const attempt = message.meta?.attempt;
  if (typeof attempt !== 'string') throw badRequest(`the message names no attempt (meta.attempt) for its round ${message.round}`);
  const problem = attemptProblem(message.round, attempt);
  if (problem) throw badRequest(problem);
  return attempt;
}

/** The clients a switch's sum names (meta.clients), one for each update in it. */
export function namedClients(message: Message): string[] {
  const named = message.meta?.clients;
  if (!(Array.isArray(named) && named.every((c) => typeof c === 'string'))) throw badRequest('a switch sum must name its clients in meta.clients');
  if (named.length !== message.contributors) throw badRequest(`the sum claims ${message.contributors} updates but names ${named.length} clients`);
  return named;
}

/**
 * The kinds an experiment's updates travel as: one client's update, and a switch's sum of them.
 * Quantized plaintext updates are changes to the model sent, not weights; a switch's sum is float32.
 */
export function updateKinds(he: { enabled: boolean; quantize?: unknown }): { update: Kind; sum: Kind } {
  if (he.enabled) return { update: Kind.EncryptedUpdate, sum: Kind.EncryptedSum };
  return { update: he.quantize ? Kind.QuantizedUpdate : Kind.Update, sum: Kind.WeightedSum };
}
