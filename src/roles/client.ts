/**
 * A client: holds its slice of the data, trains the global model it is sent, reports the
 * result and its sample count to its switch, then checks in for the next round.
 */
import type * as tf from '@tensorflow/tfjs';
import type { ClientNodeConfig } from '../config/schema';
import { loadMnist, subset, type Dataset } from '../data/mnist';
import { clientSlice } from '../data/partition';
import { initBackend } from '../model/backend';
import { buildModel, expectedParameterCount, getFlatWeights, modelId, setFlatWeights, train } from '../model/model';
import { describeFailure } from '../net/peers';
import { HttpError } from '../net/errors';
import type { ClientInstructions } from '../strategy/strategy';
import { encode, Kind, WIRE_CONTENT_TYPE } from '../wire/codec';
import { readMessage } from '../wire/receive';
import { Role } from './role';

type Stage = 'preparing' | 'waiting' | 'training' | 'reporting';

interface Prepared {
  model: tf.Sequential;
  data: Dataset;
  modelId: number;
  backend: string;
}

export class ClientRole extends Role<ClientNodeConfig> {
  readonly parameters = expectedParameterCount(this.config.settings.model);
  private prepared?: Prepared;
  private stage: Stage = 'preparing';
  private round = 0;
  private lastLoss?: number;

  override start(): void {
    void this.prepare()
      .then(() => this.checkIn())
      .catch((err) => this.node.logger.error(`client failed to prepare: ${(err as Error).stack ?? err}`));
  }

  status() {
    const { client_number, index, upstream, experiment } = this.config;
    return {
      role: 'client',
      experiment,
      slice: { index, of: client_number },
      samples: this.prepared?.data.size ?? null,
      upstream,
      stage: this.stage,
      round: this.round,
      last_loss: this.lastLoss ?? null,
      backend: this.prepared?.backend ?? null,
      rounds_done: this.iterations.rounds.length,
    };
  }

  /** POST /c/round: the global model for a round. Answers at once; training runs after. */
  receiveModel(body: Buffer): { round: number; samples: number } {
    const prepared = this.prepared;
    if (!prepared) throw new HttpError(503, 'not ready', 'this client is still loading its data; try again shortly');
    const message = this.decodeModel(body, prepared.modelId);
    if (this.stage === 'training' || this.stage === 'reporting') {
      throw new HttpError(409, 'busy', `this client is still working on round ${this.round}`);
    }
    this.round = message.round;
    this.stage = 'training';
    void this.runRound(message.round, message.parameters, message.meta as unknown as ClientInstructions).catch((err) => {
      this.node.logger.error(`round ${message.round} failed: ${(err as Error).stack ?? err}`);
      this.stage = 'waiting';
    });
    return { round: message.round, samples: prepared.data.size };
  }

  /** POST /c/standby: not selected this round; stay checked in. */
  standBy(round: number): void {
    this.node.logger.info(`standing by in round ${round}`);
  }

  private decodeModel(body: Buffer, expectedId: number) {
    const message = readMessage(body, { kinds: [Kind.Model], modelId: expectedId, parameters: this.parameters });
    const meta = message.meta ?? {};
    for (const key of ['epochs', 'batchSize', 'learningRate']) {
      if (typeof meta[key] !== 'number' || !(Number(meta[key]) > 0)) throw new HttpError(400, 'bad message', `instructions lack a positive "${key}"`);
    }
    return message;
  }

  private async prepare(): Promise<void> {
    const { settings, client_number, index } = this.config;
    const backend = await initBackend(settings.model.architecture);
    const all = loadMnist();
    const data = subset(all, clientSlice(all, settings.data, client_number, index));
    const model = buildModel(settings.model, settings.data.seed);
    if (this.isStopped) {
      model.dispose();
      return;
    }
    this.prepared = { model, data, modelId: modelId(model), backend };
    this.stage = 'waiting';
    this.node.logger.info(`ready: slice ${index} of ${client_number} (${data.size} samples), backend ${backend}`);
  }

  private async runRound(round: number, global: Float32Array, instructions: ClientInstructions): Promise<void> {
    const { model, data, modelId: id } = this.prepared!;
    this.iterations.beginRound(round);
    const trainStart = performance.now();
    setFlatWeights(model, global);
    this.lastLoss = await train(model, data, {
      ...instructions,
      seed: this.config.settings.data.seed * 7919 + round * 131 + this.config.index,
    });
    const trainMs = performance.now() - trainStart;
    if (this.isStopped) return;

    this.stage = 'reporting';
    const update = encode({
      kind: Kind.Update,
      round,
      modelId: id,
      contributors: 1,
      weight: data.size,
      sender: this.config.address,
      parameters: getFlatWeights(model),
    });
    const sendStart = performance.now();
    const path = this.config.upstream === this.config.aggregator ? '/a/receive' : '/s/receive';
    let outcome = 'accepted';
    try {
      await this.node.peers.post(this.config.upstream, path, update, {
        headers: { 'Content-Type': WIRE_CONTENT_TYPE },
        signal: this.abort.signal,
      });
    } catch (err) {
      const failure = describeFailure(err);
      outcome = `${failure.kind}: ${failure.reason}`;
      this.node.logger.warn(`round ${round}: update not taken by ${this.config.upstream}: ${failure.reason}`);
    }
    this.iterations.endRound({
      train_ms: Math.round(trainMs),
      send_ms: Math.round(performance.now() - sendStart),
      samples: data.size,
      loss: this.lastLoss,
      update_bytes: update.length,
      outcome,
    });
    this.stage = 'waiting';
    await this.checkIn();
  }

  /** Tells the aggregator this client is ready for a round; retried until it answers. */
  private async checkIn(): Promise<void> {
    for (let delay = 200; !this.isStopped; delay = Math.min(delay * 2, 5000)) {
      try {
        await this.node.peers.post(this.config.aggregator, '/a/checkin', { client: this.config.address }, { signal: this.abort.signal });
        return;
      } catch (err) {
        const failure = describeFailure(err);
        if (failure.kind === 'refused' && failure.status! < 500) {
          this.node.logger.error(`the aggregator refused the check-in: ${failure.reason}`);
          return;
        }
        await new Promise((resolve) => this.after(delay, () => resolve(undefined)));
      }
    }
  }

  override async stop(): Promise<void> {
    await super.stop();
    if (this.stage !== 'training') this.prepared?.model.dispose();
  }
}
