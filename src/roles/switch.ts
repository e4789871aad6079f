/**
 * A switch: the aggregator opens a round with the clients to expect; the switch takes their
 * updates, forms the sample-weighted sum, and forwards one update and the total count upstream.
 */
import { z } from 'zod';
import { describeIssues } from '../config/load';
import { inputOf, type SwitchNodeConfig } from '../config/schema';
import { expectedParameterCount } from '../model/model';
import { badRequest, HttpError, refused } from '../net/errors';
import { describeFailure } from '../net/peers';
import { SwitchMachine, type SwitchAction, type SwitchEvent } from '../protocol/switch';
import { UpdateBuffer } from '../strategy/update-buffer';
import { encode, Kind, WIRE_CONTENT_TYPE } from '../wire/codec';
import { attemptOf, readMessage } from '../wire/receive';
import { startSession, type HeSession } from '../he/keys';
import { HePoolFailure } from '../he/pool';
import { Role } from './role';

export const openRoundSchema = z
  .object({
    round: z.number().int().positive(),
    attempt: z.string().min(1).max(200),
    clients: z.array(z.string()).min(1),
    deadline_ms: z.number().int().positive(),
    parameters: z.number().int().positive(),
    model_id: z.number().int().min(0),
  })
  .strict();

export const dropSchema = z
  .object({ round: z.number().int().positive(), attempt: z.string().min(1).max(200), client: z.string().min(1) })
  .strict();

type UpdateEvent = Omit<Extract<SwitchEvent, { type: 'update' }>, 'type'>;

/** Running sum of the round's encrypted updates: ciphertext addition is exact, so order does not matter. */
interface EncryptedTotal {
  ciphertexts?: Uint8Array[];
  weight: number;
  contributors: number;
}

interface PendingUpdate {
  update: UpdateEvent;
  ciphertexts: Uint8Array[];
  weight: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class SwitchRole extends Role<SwitchNodeConfig> {
  /** The experiment's model size, known from the settings. */
  readonly maxParameters = expectedParameterCount(this.config.settings.model, inputOf(this.config.settings.data));
  readonly encrypted = this.config.settings.he.enabled;
  // Holding the key, the aggregator must never be handed one client's update alone.
  private readonly machine = new SwitchMachine(this.config.clients, this.encrypted && this.config.settings.he.key_holder === 'aggregator' ? 2 : 1);
  private buffer?: UpdateBuffer;
  private sum: EncryptedTotal = { weight: 0, contributors: 0 };
  /** Time spent adding ciphertexts this round (they are added as they arrive). */
  private heSumMs = 0;
  private he?: Promise<HeSession>;
  private session?: HeSession;
  /** Encrypted updates waiting to be added, and the additions in flight (a forward waits for them). */
  private waiting: PendingUpdate[] = [];
  private draining?: Promise<void>;
  private queue: Promise<unknown> = Promise.resolve();
  private modelId = 0;
  private openedAt = 0;
  /** When the last update that made the sum arrived: the time after it, until the forward, was spent waiting. */
  private lastUpdateAt = 0;
  /** Clients whose encrypted update is queued or being summed, and drops that came for them meanwhile. */
  private readonly adding = new Set<string>();
  private readonly dropsPending = new Map<string, z.infer<typeof dropSchema>>();

  override start(): void {
    // A switch holds no key: its SEAL context can only parse and add.
    if (this.encrypted) {
      this.he = startSession(this.config.settings.he, this.maxParameters, {}).then((session) => (this.session = session));
    }
    this.he?.catch((err) => this.markFailed(`HE failed to start: ${(err as Error).message}`));
  }

  status() {
    const { clients, aggregator, experiment } = this.config;
    const { stage, round, received } = this.machine.state;
    return { role: 'switch', experiment, clients, upstream: aggregator, stage, round, received: received.size, rounds_done: this.iterations.rounds.length };
  }

  /** POST /s/round: the aggregator opens a round. */
  open(body: unknown): void {
    const parsed = openRoundSchema.safeParse(body);
    if (!parsed.success) throw badRequest('not a round opening', describeIssues(parsed.error.issues));
    const { round, attempt, clients, deadline_ms, parameters, model_id } = parsed.data;
    if (parameters !== this.maxParameters) throw badRequest(`this experiment's model has ${this.maxParameters} parameters, not ${parameters}`);
    // Forward a little before the aggregator's own deadline, so a late client does not sink the whole switch.
    const deadlineMs = Math.max(100, Math.round(deadline_ms * 0.9));
    this.run(this.machine.handle({ type: 'open', round, attempt, clients, deadlineMs }), () => {
      this.buffer = new UpdateBuffer(parameters);
      this.sum = { weight: 0, contributors: 0 };
      this.heSumMs = 0;
      this.modelId = model_id;
      this.openedAt = performance.now();
      this.lastUpdateAt = this.openedAt;
      this.iterations.beginRound(round);
    });
  }

  /** POST /s/drop: the aggregator saw a selected client go down; this round stops waiting for it. */
  drop(body: unknown): void {
    const parsed = dropSchema.safeParse(body);
    if (!parsed.success) throw badRequest('expected {"round", "attempt", "client"}', describeIssues(parsed.error.issues));
    const { client } = parsed.data;
    // Its encrypted update may be in the queue or in a sum right now: it counts if it makes it.
    if (this.adding.has(client)) {
      this.dropsPending.set(client, parsed.data);
      return;
    }
    this.run(this.machine.handle({ type: 'drop', ...parsed.data }), () => undefined);
  }

  /** An update being added when its sender was dropped did not make it: the drop applies now. */
  private dropAfterAll(client: string): void {
    const drop = this.dropsPending.get(client);
    this.dropsPending.delete(client);
    if (!drop || this.isStopped) return;
    try {
      this.run(this.machine.handle({ type: 'drop', ...drop }), () => undefined);
    } catch {
      // refused: the round it was for is over, and nothing waits for the client any more
    }
  }

  /** POST /s/receive: one client's update. */
  async receive(body: unknown): Promise<{ round: number; received: number }> {
    const buffer = this.buffer;
    if (!buffer) throw new HttpError(409, 'conflict', 'no round is open on this switch');
    const he = this.he && (await this.he);
    const message = readMessage(body, {
      // Quantized updates are changes to the model sent, full ones weights: the config says which to expect.
      kinds: [he ? Kind.EncryptedUpdate : this.config.settings.he.quantize ? Kind.QuantizedUpdate : Kind.Update],
      modelId: this.modelId,
      parameters: buffer.size,
      he: he && { id: he.id, chunks: he.chunks },
    });
    if (message.contributors !== 1) throw badRequest(`a client update sums exactly 1 update, not ${message.contributors}`);
    const attempt = attemptOf(message);
    if (!he) {
      const actions = this.machine.handle({ type: 'update', round: message.round, attempt, from: message.sender });
      this.run(actions, () => {
        buffer.add(message.sender, { values: message.parameters, weight: message.weight, contributors: 1, preScaled: false });
        this.lastUpdateAt = performance.now();
      });
    } else {
      const sender = message.sender;
      this.adding.add(sender);
      try {
        await new Promise<void>((resolve, reject) => {
          this.waiting.push({ update: { round: message.round, attempt, from: sender }, ciphertexts: message.ciphertexts!, weight: message.weight, resolve, reject });
          this.drain(he);
        });
      } catch (err) {
        this.dropAfterAll(sender);
        throw err;
      } finally {
        this.adding.delete(sender);
        this.dropsPending.delete(sender); // made it: a drop that came meanwhile is moot
      }
    }
    return { round: message.round, received: this.machine.state.received.size };
  }

  /**
   * Adds the encrypted updates waiting, all that arrived while the previous sum ran in one go: the
   * running sum is read and written once per batch rather than once per update (a switch's main cost).
   */
  private drain(he: HeSession): void {
    if (this.draining) return;
    this.draining = (async () => {
      while (this.waiting.length) {
        const batch = this.waiting.splice(0);
        await this.addBatch(he, batch).catch((err) => batch.forEach((p) => p.reject(err)));
      }
    })().finally(() => (this.draining = undefined));
    this.queue = this.draining;
  }

  private async addBatch(he: HeSession, batch: PendingUpdate[]): Promise<void> {
    const accepted = this.withoutRefused(batch);
    if (!accepted.length) return;
    const before = this.sum;
    const started = performance.now();
    let sum: Uint8Array[];
    try {
      sum = await he.pool.sum([...(before.ciphertexts ? [before.ciphertexts] : []), ...accepted.map((p) => p.ciphertexts)]);
    } catch (err) {
      if (err instanceof HePoolFailure) {
        // Not the updates' fault: each sender hears the switch cannot add now (a 5xx: it may send again).
        const unavailable = new HttpError(503, 'HE unavailable', `the switch could not add the update: ${err.message}`);
        return accepted.forEach((p) => p.reject(unavailable));
      }
      if (accepted.length > 1) {
        // One of them does not parse: add them one by one, so that only it is refused.
        for (const pending of accepted) await this.addBatch(he, [pending]);
      } else {
        accepted[0].reject(new HttpError(400, 'bad ciphertext', `the update does not parse under this experiment's HE parameters: ${(err as Error).message}`));
      }
      return;
    }
    this.heSumMs += performance.now() - started;
    // The round may have closed or moved on while the sum ran: then the batch is judged again alone.
    if (this.sum !== before || accepted.some((p) => this.machine.refusalFor(p.update.round, p.update.attempt, p.update.from))) {
      for (const pending of accepted) await this.addBatch(he, [pending]);
      return;
    }
    const weight = accepted.reduce((w, p) => w + p.weight, 0);
    this.sum = { ciphertexts: sum, weight: before.weight + weight, contributors: before.contributors + accepted.length };
    this.lastUpdateAt = performance.now();
    for (const pending of accepted) {
      this.run(this.machine.handle({ type: 'update', ...pending.update }), () => undefined);
      pending.resolve();
    }
  }

  /** Answers the refused ones (stale round, stranger, a client sending twice, even within the batch) and keeps the rest. */
  private withoutRefused(batch: PendingUpdate[]): PendingUpdate[] {
    const senders = new Set<string>();
    return batch.filter((pending) => {
      const { round, attempt, from } = pending.update;
      const refusal =
        this.machine.refusalFor(round, attempt, from) ??
        (senders.has(from) ? { type: 'refuse' as const, status: 409, reason: `${from} already sent its update for round ${round}` } : undefined);
      senders.add(from);
      if (refusal) pending.reject(refused(refusal));
      return !refusal;
    });
  }

  /** Carries out the machine's actions; `onAccept` stores what was accepted before a forward reads it. */
  private run(actions: SwitchAction[], onAccept: () => void): void {
    for (const action of actions) {
      switch (action.type) {
        case 'refuse':
          throw refused(action);
        case 'reset-buffer':
        case 'accept':
          onAccept();
          break;
        case 'start-timer':
          this.after(action.ms, () => this.run(this.machine.handle({ type: 'deadline', attempt: action.attempt }), () => undefined));
          break;
        case 'forward':
          this.forward(action.round, action.attempt, action.from, action.missing).catch((err) =>
            this.node.logger.error(`round ${action.round}: forwarding failed: ${(err as Error).stack ?? err}`),
          );
          break;
        case 'withhold':
          this.withhold(action).catch((err) => this.node.logger.error(`round ${action.round}: the notice upstream failed: ${(err as Error).stack ?? err}`));
          break;
        case 'log':
          this.node.logger[action.level](action.message);
          break;
      }
    }
  }

  /** The round's one message upstream: the weighted sum, plain or encrypted. */
  private upstreamMessage(round: number, attempt: string, clients: string[], waitedMs: number): { body: Buffer; contributors: number; weight: number } {
    const base = { round, modelId: this.modelId, sender: this.config.address };
    // Which clients are in the sum (the aggregator checks them and names the missing ones), and how
    // long this switch waited after the last of them for ones that never came.
    const meta = { attempt, clients, waited_ms: waitedMs };
    if (this.he) {
      const { ciphertexts, weight, contributors } = this.sum;
      const body = encode({ ...base, kind: Kind.EncryptedSum, contributors, weight, meta: { ...meta, he: this.session!.id }, parameters: new Float32Array(0), ciphertexts, count: this.maxParameters });
      return { body, contributors, weight };
    }
    const total = this.buffer!.total();
    const body = encode({ ...base, kind: Kind.WeightedSum, contributors: total.contributors, weight: total.weight, meta, parameters: Float32Array.from(total.sum) });
    return { body, contributors: total.contributors, weight: total.weight };
  }

  /** Nothing goes up: the aggregator hears why, so it stops waiting for this switch at once. */
  private async withhold(action: Extract<SwitchAction, { type: 'withhold' }>): Promise<void> {
    const { round, attempt, from, missing, reason } = action;
    let outcome = `withheld: ${reason}`;
    try {
      await this.node.peers.post(this.config.aggregator, '/a/withheld', { round, attempt, switch: this.config.address, clients: from, reason }, { signal: this.abort.signal });
    } catch (err) {
      outcome += `; the aggregator did not take the notice: ${describeFailure(err).reason}`;
    }
    this.iterations.endRound({ clients_reported: 0, missing, outcome });
  }

  private async forward(round: number, attempt: string, clients: string[], missing: string[]): Promise<void> {
    const aggregateStart = performance.now();
    const waitedMs = missing.length ? Math.max(0, Math.round(aggregateStart - this.lastUpdateAt)) : 0;
    await this.queue; // encrypted updates still being added belong to this sum
    if (this.he) await this.he;
    if (this.machine.state.attempt !== attempt) {
      // The aggregator opened another attempt while the last additions ran: this sum is not wanted.
      this.node.logger.warn(`round ${round}: not forwarding ${attempt}; the aggregator has opened ${this.machine.state.attempt}`);
      return;
    }
    const { body: update, contributors, weight } = this.upstreamMessage(round, attempt, clients, waitedMs);
    const aggregateMs = performance.now() - aggregateStart;
    let outcome = 'accepted';
    try {
      await this.node.peers.post(this.config.aggregator, '/a/receive', update, {
        headers: { 'Content-Type': WIRE_CONTENT_TYPE },
        signal: this.abort.signal,
      });
    } catch (err) {
      outcome = describeFailure(err).reason;
      this.node.logger.warn(`round ${round}: the aggregator did not take the sum: ${outcome}`);
    }
    this.iterations.endRound({
      clients_reported: contributors,
      missing,
      samples: weight,
      aggregate_ms: Math.round(aggregateMs),
      ...(this.he ? { he_sum_ms: Math.round(this.heSumMs) } : {}),
      collect_ms: Math.round(aggregateStart - this.openedAt),
      waiting_ms: waitedMs,
      update_bytes: update.length,
      outcome,
    });
  }

  override async stop(): Promise<void> {
    await super.stop();
    const he = await this.he?.catch(() => undefined);
    await he?.pool.close();
  }
}
