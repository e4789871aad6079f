/** Reading a wire message off a request: every check a role needs, each failure a 400 with a reason. */
import { ROBUST_STRATEGIES, type Settings } from '../config/schema';
import { firstBeyond, valueLimits } from '../he/bounds';
import { widestClip } from '../he/quantized';
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

/**
 * A switch's own account of how long its sum waited before it went up, for updates beneath it that
 * never came (meta.waited_ms): milliseconds within a day, 0 when it says none. Only timings read it.
 */
export function waitedOf(message: Message): number {
  return Math.min(Math.max(0, Number(message.meta?.waited_ms) || 0), A_DAY_MS);
}

const A_DAY_MS = 86_400_000;

/**
 * How long before a switch's sum went up each of its clients' updates reached the switch that took
 * it (meta.ages_ms, one for each of `clients`, in their order), or undefined when the message says
 * none. Only timings read it: who held a round, and for how long (roles/arrivals.ts).
 */
export function agesOf(message: Message, clients: readonly string[]): number[] | undefined {
  const said = message.meta?.ages_ms;
  if (said === undefined) return undefined;
  const fits = Array.isArray(said) && said.length === clients.length && said.every((ms) => typeof ms === 'number' && ms >= 0 && ms <= A_DAY_MS);
  if (!fits) throw badRequest(`meta.ages_ms must be one number of milliseconds (0 to a day) for each of the ${clients.length} clients the message names`);
  return said as number[];
}

/** The clients a switch's sum or bundle names (meta.clients), one for each update in it. */
export function namedClients(message: Message): string[] {
  const named = message.meta?.clients;
  if (!(Array.isArray(named) && named.every((c) => typeof c === 'string'))) throw badRequest('a switch sum must name its clients in meta.clients');
  if (named.length !== message.contributors) throw badRequest(`the sum claims ${message.contributors} updates but names ${named.length} clients`);
  return named;
}

/** One client's update as it trained it, named: what a bundle carries, and a robust rule reads. */
export interface NamedUpdate {
  client: string;
  /** The samples behind it. */
  weight: number;
  values: Float32Array;
}

/**
 * A bundle's updates (Kind.UpdateBundle): the clients it names, each with the samples meta.weights
 * gives it, and its vector of the payload. Views of the message's values, not copies.
 */
export function bundledUpdates(message: Message): NamedUpdate[] {
  const clients = namedClients(message);
  const weights = message.meta?.weights;
  if (!(Array.isArray(weights) && weights.length === clients.length && weights.every((w) => typeof w === 'number' && Number.isFinite(w) && w > 0))) {
    throw badRequest(`a bundle gives each of its ${clients.length} updates a positive sample count in meta.weights, in the order of meta.clients`);
  }
  const total = (weights as number[]).reduce((sum, w) => sum + w, 0);
  if (total !== message.weight) throw badRequest(`the bundle's updates weigh ${total} together; its header says ${message.weight}`);
  const size = message.count ?? 0;
  return clients.map((client, i) => ({ client, weight: weights[i] as number, values: message.parameters.subarray(i * size, (i + 1) * size) }));
}

/**
 * What a switch forwarded holds: the clients it names, and for a bundle each update and its samples
 * by client (the round checks them against the samples it assigned).
 */
export function forwardedUpdates(message: Message): { clients: string[]; bundle?: NamedUpdate[]; updateWeights?: Record<string, number> } {
  if (message.kind !== Kind.UpdateBundle) return { clients: namedClients(message) };
  const bundle = bundledUpdates(message);
  return { clients: bundle.map((u) => u.client), bundle, updateWeights: Object.fromEntries(bundle.map((u) => [u.client, u.weight])) };
}

/** Whether updates go up the tree unsummed: a strategy that reads every update (a robust rule, plaintext) needs each. */
export const forwardsEachUpdate = (settings: Pick<Settings, 'he' | 'training'>): boolean => !settings.he.enabled && ROBUST_STRATEGIES.includes(settings.training.strategy);

/**
 * The kinds an experiment's updates travel as: one client's update, and what a switch forwards of
 * them: their sum, or (a robust rule) a bundle of each. Quantized plaintext updates are changes to
 * the model sent, not weights; a switch's sum is float32.
 */
export function updateKinds(settings: Pick<Settings, 'he' | 'training'>): { update: Kind; sum: Kind } {
  const { he } = settings;
  if (he.enabled) return { update: Kind.EncryptedUpdate, sum: Kind.EncryptedSum };
  return { update: he.quantize ? Kind.QuantizedUpdate : Kind.Update, sum: forwardsEachUpdate(settings) ? Kind.UpdateBundle : Kind.WeightedSum };
}
