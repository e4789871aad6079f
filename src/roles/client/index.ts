/**
 * A client, as wiring: its stage machine (protocol/client.ts) says what a model, a stand-by or the
 * end of a round does; the `Trainer` holds its data and model and trains; the `KeyHolder` holds its
 * HE key; the `UpdateEncoder` makes its update. Each round it trains the global model it is sent,
 * reports the result and its sample count upstream, then checks in for the next round.
 */
import { inputOf } from '../../config/data-schema';
import { describeAttack } from '../../config/schema';
import { type ClientNodeConfig } from '../../config/node-config';
import type { HeSession } from '../../he/keys';
import { corruption, valueLimits } from '../../he/bounds';
import { HePoolFailure } from '../../he/pool';
import { badRequest, HttpError, refused } from '../../net/errors';
import { describeFailure } from '../../net/peers';
import { ClientMachine, type ClientAction } from '../../protocol/client';
import type { ClientInstructions } from '../../strategy/strategy';
import { upstreamRoute } from '../../topology/tree';
import { byteLength, Kind, WIRE_CONTENT_TYPE, type Message } from '../../wire/codec';
import { readControl, roundMetaSchema, standbySchema, UNUSABLE_MODEL, type RoundMeta } from '../../wire/control';
import { SESSION_PATTERN } from '../../wire/attempt';
import { attemptOf, plainLimits, readMessage } from '../../wire/receive';
import { Role } from '../role';
import { roundInstructions } from './instructions';
import { KeyHolder } from './key-holder';
import { Trainer } from './trainer';
import { UpdateEncoder } from './update-encoder';

export class ClientRole extends Role<ClientNodeConfig> {
  private readonly machine = new ClientMachine();
  private readonly keys = new KeyHolder({
    config: this.config,
    parameters: this.parameters,
    keyFile: this.node.heKeyFile,
    logger: this.node.logger,
    // The aggregator makes its key pair as it starts: asked until it answers.
    fetchPublicKey: () =>
      this.persist(() => this.node.peers.get<ArrayBuffer>(this.config.aggregator, '/a/he/public-key', { responseType: 'arraybuffer', signal: this.abort.signal })),
  });
  private trainer?: Trainer;
  private encoder?: UpdateEncoder;
  private lastLoss?: number;
  /** How large a model's values may be (he/bounds.ts): as the wire reads them, and as a decrypted model is judged. */
  private readonly limits = plainLimits(this.config.settings.he);
  private readonly bounds = valueLimits(this.config.settings.he);

  override start(): void {
    this.keys.readSecretKey();
    this.preparingWith(
      this.prepare()
        .then(() => this.act(this.machine.handle({ type: 'prepared' })))
        .catch((err) => !this.isStopped && this.markFailed(`it could not prepare: ${(err as Error)?.message ?? err}`)),
    );
  }

  override heQueueDepth(): number {
    return this.keys.queued;
  }

  status() {
    const { client_number, index, upstream, experiment } = this.config;
    return {
      role: 'client',
      experiment,
      slice: { index, of: client_number },
      samples: this.trainer?.data.size ?? null,
      upstream,
      stage: this.machine.stage,
      round: this.machine.round,
      last_loss: this.lastLoss ?? null,
      backend: this.trainer?.backend ?? null,
      rounds_done: this.iterations.rounds.length,
    };
  }

  /** POST /c/round: the global model for a round. Answers at once; training runs after. */
  receiveModel(body: Buffer): { round: number; weight: number } {
    const trainer = this.trainer;
    if (!trainer) throw refused(this.machine.refusalFor({ type: 'model', round: 0, attempt: '' })!);
    const { message, meta, instructions } = this.decodeModel(body, trainer);
    const { round } = message;
    // A reference trains from the model this client kept when it scored it; taken now, as a later evaluation may keep another.
    const kept = message.kind === Kind.ModelReference ? trainer.keptModel(meta.model_tag) : undefined;
    const missing = message.kind === Kind.ModelReference && !kept ? String(meta.model_tag) : undefined;
    this.act(this.machine.handle({ type: 'model', round, attempt: meta.attempt, pass: meta.fit?.pass, missing }), () =>
      this.runRound(message, meta, instructions, kept).catch((err) => {
        const reason = (err as Error)?.message ?? String(err);
        // Stopped mid-round (a new config, a shutdown): nothing failed, and its model is let go here.
        if (this.isStopped) return trainer.dispose();
        this.node.logger.error(`round ${round} failed: ${(err as Error).stack ?? err}`);
        // At once, not at the round's deadline: the aggregator drops it, and its switch stops waiting for it.
        void this.decline(round, meta.attempt, reason);
        this.act(this.machine.handle({ type: 'round-over' })); // free again: the next round can have it
      }),
    );
    return { round, weight: trainer.weight };
  }

  override reconnected(): void {
    this.act(this.machine.handle({ type: 'reconnected' }));
  }

  /** POST /c/standby: not in this opening of the round (not selected, behind a switch that could not open it, the model did not reach it). */
  standBy(body: unknown): void {
    const { round, attempt } = readControl(standbySchema, body, 'expected {"round": <number>, "attempt": "<session>:<round>.<retry>"}');
    this.node.logger.info(`standing by in round ${round} (${attempt})`);
    this.act(this.machine.handle({ type: 'standby', attempt }));
  }

  /** POST /c/evaluate (key_holder "clients"): the encrypted global model, scored on this client's test share. */
  async evaluateModel(body: Buffer): Promise<{ round: number; accuracy: number; loss: number; samples: number }> {
    const trainer = this.trainer;
    const refusal = new HttpError(409, 'conflict', 'this client holds no HE secret key to evaluate an encrypted model with');
    if (!this.keys.session || !trainer || this.config.settings.he.key_holder !== 'clients') throw refusal;
    const he = await this.keys.working().catch((err: Error) => {
      throw this.isStopped ? new HttpError(409, 'conflict', 'this client stopped before it scored the model') : new HttpError(503, 'HE unavailable', `this client could not start its HE threads anew: ${err.message}`);
    });
    if (!he) throw refusal;
    const message = readMessage(body, { kinds: [Kind.EncryptedModel], modelId: trainer.modelId, parameters: this.parameters, he: expectation(he) });
    const factor = Number(message.meta?.factor);
    if (!(factor > 0 && Number.isFinite(factor))) throw new HttpError(400, 'bad message', 'an encrypted model needs a positive "factor"');
    // A model that does not decrypt to one the clients could have made is the round's sum gone wrong: said as such (422).
    // Kept: the next round's model is this one, and then only its instructions come down.
    const score = await this.decryptModel(he, message.ciphertexts!, factor).then((weights) => trainer.score(weights, message.meta?.model_tag, this.abort.signal)).catch((err: unknown) => {
      if (err instanceof HttpError) throw err; // an unusable model (422) is said as such, stopping or not
      // Its role stopping closes its HE threads and skips its turn: neither is the model's doing, nor a bug.
      if (this.isStopped) throw new HttpError(409, 'conflict', 'this client stopped before it scored the model');
      if (err instanceof HePoolFailure) throw new HttpError(503, 'HE unavailable', `this client could not decrypt the model: ${err.message}`);
      throw err;
    });
    return { round: message.round, ...score, samples: trainer.test.size };
  }

  /** A round's model and its instructions, every value checked: a model this client could not use is refused now, not after training. */
  private decodeModel(body: Buffer, trainer: Trainer): { message: Message; meta: RoundMeta; instructions: ClientInstructions } {
    const he = this.keys.session;
    const sealed = he && this.config.settings.he.key_holder === 'clients';
    const kinds = sealed ? [Kind.Model, Kind.EncryptedModel, Kind.ModelReference] : [Kind.Model];
    const message = readMessage(body, { kinds, modelId: trainer.modelId, parameters: this.parameters, he: he && expectation(he), limits: this.limits });
    const meta = readControl(roundMetaSchema, message.meta ?? {}, "the model's instructions (meta) are not a round's");
    attemptOf(message); // the attempt is the round's
    // Its own part of the instructions: its share of the round (checked: at most 1, as a packed update holds no more), and what it does otherwise.
    if (!meta.fit) throw badRequest('a round\'s model needs this client\'s part of the instructions ("fit": its share of the round)');
    if (message.ciphertexts && meta.factor === undefined) throw badRequest('an encrypted model needs its "factor"');
    return { message, meta, instructions: roundInstructions(meta, this.config.settings.training) };
  }

  private async prepare(): Promise<void> {
    const trainer = await Trainer.load(this.config);
    try {
      this.encoder = new UpdateEncoder(this.config.settings.he, trainer.sizes);
      await this.keys.start(trainer.sizes);
    } catch (err) {
      trainer.dispose();
      throw err;
    }
    if (this.isStopped) {
      trainer.dispose();
      await this.keys.close();
      return;
    }
    this.trainer = trainer;
    this.node.logger.info(`ready: ${trainer.describe()}`);
    if (this.config.attack) this.node.logger.warn(`this client attacks (config.json): ${describeAttack(this.config.attack)}`);
  }

  /** `kept`: the model this round trains from, when it came as a reference to the one this client scored. */
  private async runRound(message: Message, meta: RoundMeta, instructions: ClientInstructions, kept?: Float32Array): Promise<void> {
    const trainer = this.trainer!;
    const { round } = message;
    this.iterations.beginRound(round);
    const he = await this.keys.keyFor(meta.he_key);
    const decryptStart = performance.now();
    const global = kept ?? (message.ciphertexts ? await this.decryptModel(he!, message.ciphertexts, meta.factor!) : message.parameters);
    // Only a model that came down encrypted (clients hold the key) has a decrypt phase.
    const decryptMs = message.ciphertexts ? performance.now() - decryptStart : undefined;
    const trainStart = performance.now();
    const opening = { round, attempt: meta.attempt, countedIn: meta.counted?.[this.config.address] };
    const fit = meta.fit!;
    const { loss, weights, queuedMs } = await trainer.train(global, opening, instructions, fit.share, this.abort.signal);
    this.lastLoss = loss;
    const trainMs = performance.now() - trainStart - queuedMs;
    if (this.isStopped) return trainer.dispose(); // close() left it to this round, which was training

    this.act(this.machine.handle({ type: 'trained' }));
    const encryptStart = performance.now();
    const stepNoise = trainer.noiseShare?.inSteps ? { noise: trainer.noiseShare.std } : {};
    const source = { round, attempt: meta.attempt, sender: this.config.address, modelId: trainer.modelId, samples: trainer.weight, weights, global, share: fit.share, ...stepNoise };
    const { update, clipped } = await this.encoder!.encode(source, he);
    const encryptMs = performance.now() - encryptStart;
    const sendStart = performance.now();
    const outcome = await this.send(round, meta.attempt, update);
    this.iterations.endRound({
      ...(he ? { encrypt_ms: Math.round(encryptMs) } : {}),
      ...(decryptMs !== undefined ? { decrypt_ms: Math.round(decryptMs) } : {}),
      train_ms: Math.round(trainMs),
      // Waiting for the other clients of this process to train first (model/turns.ts).
      queue_ms: Math.round(queuedMs),
      send_ms: Math.round(performance.now() - sendStart),
      samples: trainer.data.size,
      loss,
      update_bytes: byteLength(update),
      ...(clipped !== undefined ? { clipped } : {}),
      outcome,
    });
    this.keys.stockZeros();
    this.act(this.machine.handle({ type: 'round-over' }));
  }

  /**
   * The update, upstream; what became of it, for the iteration log. One refused for what it is (a
   * 4xx but a conflict: too late, or sent already) will not be taken however long its switch waits:
   * the aggregator hears it at once, and drops this client from the round.
   */
  private async send(round: number, attempt: string, update: Buffer[]): Promise<string> {
    const { upstream } = this.config;
    try {
      await this.node.peers.post(upstream, upstreamRoute(this.config, 'receive'), update, { headers: { 'Content-Type': WIRE_CONTENT_TYPE }, signal: this.abort.signal });
      return 'accepted';
    } catch (err) {
      const failure = describeFailure(err);
      this.node.logger.warn(`round ${round}: update not taken by ${upstream}: ${failure.reason}`);
      if (failure.kind === 'refused' && failure.status! < 500 && failure.status !== 409) void this.decline(round, attempt, `its update was refused: ${failure.reason}`);
      return `${failure.kind}: ${failure.reason}`;
    }
  }

  /**
   * Carries out the stage machine's actions: `train` starts the round (its model is the caller's);
   * a refusal is thrown, after what comes with it, and a check-in that comes with one goes after the
   * answer, so the refusal reaches its sender first.
   */
  private act(actions: ClientAction[], train?: () => Promise<void>): void {
    const refusal = actions.find((a) => a.type === 'refuse');
    for (const action of actions) {
      if (action.type === 'train') void train?.();
      if (action.type === 'forget-kept') this.trainer?.forget();
      if (action.type === 'check-in' && refusal) setImmediate(() => void this.checkIn());
      else if (action.type === 'check-in') void this.checkIn();
    }
    if (refusal) throw refused(refusal);
  }

  /**
   * Tells the aggregator this client is ready for a round, with what it holds (so a misfit is refused
   * before a round, and its classes charted); retried until it answers. The answer names the opening
   * the aggregator was at: notices for earlier ones are stale from then on.
   */
  private async checkIn(): Promise<void> {
    const trainer = this.trainer!;
    // Under DP its class counts stay here: they are its data, and no noise covers them.
    const classes = this.config.settings.dp ? {} : { histogram: trainer.histogram };
    const { ticket } = this.machine;
    const holds = { samples: trainer.weight, shape: inputOf(this.config.settings.data).shape, ...classes, model: trainer.modelId, ...(trainer.keeps ? { keeps: trainer.keeps } : {}), ticket };
    // Not tried again once it took a model (and made a new ticket): the check-in after that round says it, and an old ticket must not come after it.
    const send = () => this.node.peers.post<CheckinAnswer>(this.config.aggregator, '/a/checkin', { client: this.config.address, ...holds }, { signal: this.abort.signal });
    try {
      const answer = await this.persist(() => (this.machine.ticket === ticket ? send() : Promise.resolve(undefined)));
      const session = typeof answer?.session === 'string' && SESSION_PATTERN.test(answer.session) ? answer.session : undefined;
      if (typeof answer?.attempt === 'string' && (answer.attempt || session)) this.machine.handle({ type: 'checked-in', attempt: answer.attempt, open: answer.open === true, session });
    } catch (err) {
      this.node.logger.error(`the aggregator refused the check-in: ${describeFailure(err).reason}`);
    }
  }

  /** Tells the aggregator, at once, that this client took the round's model and cannot use it (the round need not wait for it). */
  private async decline(round: number, attempt: string, reason: string): Promise<void> {
    const notice = { round, attempt, client: this.config.address, reason: reason.slice(0, 500) };
    try {
      await this.node.peers.post(this.config.aggregator, '/a/declined', notice, { signal: this.abort.signal });
    } catch (err) {
      this.node.logger.warn(`round ${round}: the aggregator did not take the notice that this client cannot use the model: ${describeFailure(err).reason}`);
    }
  }

  /** A sealed model decrypted; one beyond what the clients could have made is refused as unusable, naming the first value. */
  private async decryptModel(he: HeSession, ciphertexts: Uint8Array[], factor: number): Promise<Float32Array> {
    let values: Float64Array;
    try {
      values = await he.pool.decrypt(ciphertexts, this.parameters, factor);
    } catch (err) {
      if (err instanceof HePoolFailure) throw err;
      throw new HttpError(422, UNUSABLE_MODEL, `the model does not decrypt: ${(err as Error).message}`);
    }
    const corrupt = corruption(values, { ...this.bounds, limit: this.bounds.model });
    if (corrupt) throw new HttpError(422, UNUSABLE_MODEL, `the model cannot be the clients' average: ${corrupt}`);
    return Float32Array.from(values);
  }

  protected override async close(): Promise<void> {
    await super.close();
    if (this.machine.stage !== 'training') this.trainer?.dispose();
    await this.keys.close();
  }
}

const expectation = (he: HeSession) => ({ id: he.id, chunks: he.chunks });

/** What the aggregator answers a check-in. */
type CheckinAnswer = { attempt?: unknown; open?: unknown; session?: unknown };
