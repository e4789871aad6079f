/**
 * The HE key a client encrypts its updates with, and its lifecycle. With the key at the clients:
 * the secret key, read at start (a client without it cannot work, and the config push says so),
 * which also decrypts the models that come down sealed. With the key at the aggregator: its public
 * key, fetched once the aggregator has made its pair, and fetched again when a model names a new
 * one (the aggregator started over). Public-key encryptions of zero are made ahead while the client
 * waits, so encrypting an update only adds the values.
 */
import type { ClientNodeConfig } from '../../config/node-config';
import { DEFAULT_KEY_FILE, readSecretKey, startSession, type HeSession } from '../../he/keys';
import type { Logger } from '../../log/logger';

export interface KeyHolderIo {
  config: ClientNodeConfig;
  parameters: number;
  /** Where the secret key is when clients hold it (--he-key). */
  keyFile?: string;
  /** The aggregator's public key, asked until it answers; undefined when the role stopped meanwhile. */
  fetchPublicKey(): Promise<ArrayBuffer | undefined>;
  logger: Logger;
}

export class KeyHolder {
  private secretKey?: Uint8Array;
  private current?: HeSession;
  /** The model's tensor sizes: a clip per tensor needs them (he.quantize). */
  private sizes?: number[];
  /** A session being opened in place of one whose pool gave up (working). */
  private renewing?: Promise<HeSession | undefined>;

  constructor(private readonly io: KeyHolderIo) {}

  /** With the key at the clients, reads it; throws when it cannot (called as the role starts, so the push hears why). */
  readSecretKey(): void {
    const he = this.io.config.settings.he;
    if (he.enabled && he.key_holder === 'clients') this.secretKey = readSecretKey(he, this.io.keyFile ?? DEFAULT_KEY_FILE);
  }

  /** The session in use; undefined without HE. */
  get session(): HeSession | undefined {
    return this.current;
  }

  /** HE tasks waiting on the session's threads. */
  get queued(): number {
    return this.current?.pool.queued ?? 0;
  }

  /** Starts the session (the aggregator's public key waited for); undefined without HE, or when stopped meanwhile. */
  async start(sizes: number[]): Promise<HeSession | undefined> {
    this.sizes = sizes;
    this.current = await this.open();
    this.stockZeros();
    return this.current;
  }

  private async open(): Promise<HeSession | undefined> {
    const { config, parameters } = this.io;
    const he = config.settings.he;
    if (!he.enabled) return undefined;
    if (this.secretKey) return startSession(he, parameters, { secretKey: this.secretKey }, this.sizes);
    const publicKey = await this.io.fetchPublicKey();
    if (!publicKey) return undefined;
    return startSession(he, parameters, { publicKey: new Uint8Array(publicKey) }, this.sizes);
  }

  /** The session for a model that names the aggregator's key `keyId`: a new pair's public key is fetched first. */
  async keyFor(keyId: string | undefined): Promise<HeSession | undefined> {
    const current = await this.working();
    if (!current || !keyId || current.keyId === keyId) return current;
    return this.replace(current, `the aggregator's public key changed (${current.keyId} -> ${keyId}); fetching the new one`, keyId);
  }

  /**
   * The session, started afresh first when its pool gave up (its threads kept dying), as a client
   * newly started in this process would: else this client failed every round and score on. Asked at
   * each round and score, so at most once each; one renewal for all who ask meanwhile.
   */
  async working(): Promise<HeSession | undefined> {
    const current = this.current;
    if (!current?.pool.gaveUp) return current;
    this.renewing ??= this.replace(current, 'its HE threads gave up; starting them afresh').finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  /** `current` replaced by a session opened anew (for the aggregator's key `keyId`, when given), and let go of. */
  private async replace(current: HeSession, why: string, keyId?: string): Promise<HeSession | undefined> {
    this.io.logger.warn(why);
    const fresh = await this.open();
    // Closed meanwhile (the role stopped): the old pool was let go then, the fresh one goes now.
    if (this.current !== current) {
      await fresh?.pool.close();
      throw new Error('the client stopped while it opened its HE session anew');
    }
    if (keyId && fresh?.keyId !== keyId) {
      await fresh?.pool.close();
      throw new Error(`the aggregator sent a model for HE key ${keyId} but serves key ${fresh?.keyId}`);
    }
    this.current = fresh;
    this.stockZeros();
    await current.pool.close();
    return fresh;
  }

  /** The next update's encryptions of zero, made in the HE threads while this client waits (public key only). */
  stockZeros(): void {
    if (this.secretKey) return;
    this.current?.pool.prepare(this.io.parameters).catch((err) => this.io.logger.debug(`encryptions of zero not made ahead: ${(err as Error).message}`));
  }

  /** Lets go of the session's pool, once: the pool is shared by the process's clients, and counts its holders. */
  async close(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    await current?.pool.close();
  }
}
