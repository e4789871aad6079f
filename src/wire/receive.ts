/** Reading a wire message off a request: every check a role needs, each failure a 400 with a reason. */
import { badRequest, HttpError } from '../net/errors';
import { decode, ENCRYPTED_KINDS, firstNonFinite, Kind, WireError, type Message } from './codec';

export interface Expectation {
  kinds: Kind[];
  modelId: number;
  parameters: number;
  /** For the encrypted kinds: the HE parameter id and how many ciphertexts pack the model. */
  he?: { id: string; chunks: number };
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
  return message;
}

/** The opening of a round a message belongs to (see RoundState.attempt); '' when it names none. */
export function attemptOf(message: Message): string {
  const attempt = message.meta?.attempt;
  return typeof attempt === 'string' ? attempt : '';
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
