/** HE keys and pools a test file shares: made before its tests, closed after. */
import { after, before } from 'node:test';
import { Ckks, type HeParams, type KeyMaterial } from '../../src/he/ckks';
import { startSession, type HeSession } from '../../src/he/keys';
import { HePool } from '../../src/he/pool';
import type { Settings } from '../../src/config/schema';

/** A key pair and a pool for each key a node may hold: the public key (a client), the secret key, none (a switch). */
export function poolsFor(params: HeParams) {
  const pools = {} as { keys: Required<KeyMaterial>; publicPool: HePool; secretPool: HePool; bare: HePool };
  before(async () => {
    pools.keys = await Ckks.generateKeys(params);
    pools.publicPool = await HePool.start(params, { publicKey: pools.keys.publicKey });
    pools.secretPool = await HePool.start(params, { secretKey: pools.keys.secretKey });
    pools.bare = await HePool.start(params, {});
  });
  after(() => Promise.all([pools.publicPool, pools.secretPool, pools.bare].map((p) => p.close())));
  return pools;
}

/** Sessions over `parameters` values: one holding the key pair, one holding no key (it can only add). */
export function sessionsFor(he: Settings['he'], parameters: number) {
  const sessions = {} as { keyed: HeSession; adder: HeSession };
  before(async () => {
    sessions.keyed = await startSession(he, parameters, await Ckks.generateKeys({ poly_modulus_degree: he.poly_modulus_degree, coeff_modulus_bits: he.coeff_modulus_bits, scale_bits: he.scale_bits }));
    sessions.adder = await startSession(he, parameters, {});
  });
  after(() => Promise.all([sessions.keyed.pool.close(), sessions.adder.pool.close()]));
  return sessions;
}
