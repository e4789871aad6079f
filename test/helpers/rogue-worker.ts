/**
 * A worker that misbehaves on purpose, for the tests: main.js's own worker, whose client updates are
 * spoiled after they are made. Real data, real training, real encryption; only what goes on the
 * wire is wrong, as a buggy or compromised client's would be:
 *   other-key  the update encrypted under a key pair of its own (the ciphertexts parse, and add up,
 *              but decrypt to noise under the experiment's key);
 *   garbage    the real update plus an encryption of zero under another key: noise in every slot;
 *   heavy      the real update, claiming a million times the weight the aggregator assigned.
 * Run as main.js is: node dist/test/helpers/rogue-worker.js <other-key|garbage|heavy> <main.js worker flags>
 */
import { Ckks } from '../../src/he/ckks';
import { heParams, startSession, type HeSession } from '../../src/he/keys';
import { UpdateEncoder, type UpdateSource } from '../../src/roles/client/update-encoder';
import { decode, encode } from '../../src/wire/codec';
import type { Settings } from '../../src/config/schema';

const MODES = ['other-key', 'garbage', 'heavy'] as const;
type Mode = (typeof MODES)[number];
const mode = process.argv[2] as Mode;
if (!MODES.includes(mode)) {
  console.error(`usage: rogue-worker.js <${MODES.join('|')}> <main.js worker flags>`);
  process.exit(2);
}
process.argv.splice(2, 1);

const encodeHonestly = UpdateEncoder.prototype.encode;
let stranger: Promise<HeSession> | undefined;

/** A session under a key pair nobody else has, for the experiment's HE parameters. */
function strangerSession(he: Settings['he'], parameters: number, sizes: number[]): Promise<HeSession> {
  stranger ??= Ckks.generateKeys(heParams(he, sizes)).then(({ publicKey }) => startSession(he, parameters, { publicKey }, sizes));
  return stranger;
}

UpdateEncoder.prototype.encode = async function (this: UpdateEncoder, source: UpdateSource, session: HeSession | undefined) {
  const { he, sizes } = this as unknown as { he: Settings['he']; sizes: number[] };
  if (mode === 'heavy') {
    const honest = await encodeHonestly.call(this, source, session);
    return { ...honest, update: [encode({ ...decode(Buffer.concat(honest.update)), weight: source.samples * 1e6 })] };
  }
  if (!session) return encodeHonestly.call(this, source, session);
  const other = await strangerSession(he, source.weights.length, sizes);
  // Under the experiment's parameters id, so every check of the message's shape passes.
  if (mode === 'other-key') return encodeHonestly.call(this, source, { ...session, pool: other.pool });
  const honest = await encodeHonestly.call(this, source, session);
  const message = decode(Buffer.concat(honest.update));
  const zeros = await other.pool.encrypt(new Float32Array(source.weights.length), 1);
  const ciphertexts = await session.pool.sum([message.ciphertexts!, zeros]);
  console.log(`rogue: round ${source.round}: sending an update with noise in every slot`);
  return { ...honest, update: [encode({ ...message, ciphertexts })] };
};

require('../../main.js');
