/** Reading a wire message off a request: every check a role needs, each failure a 400 with a reason. */
import { HttpError } from '../net/errors';
import { decode, firstNonFinite, Kind, WireError, type Message } from './codec';

export interface Expectation {
  kinds: Kind[];
  modelId: number;
  parameters: number;
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
  if (message.parameters.length !== expect.parameters) {
    throw new HttpError(400, 'wrong size', `this experiment's model has ${expect.parameters} parameters; the message has ${message.parameters.length}`);
  }
  const bad = firstNonFinite(message.parameters);
  if (bad >= 0) throw new HttpError(400, 'bad values', `parameter ${bad} is ${message.parameters[bad]}; updates must be finite`);
  return message;
}
