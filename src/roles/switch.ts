/**
 * A switch: the switch above it (or the aggregator) opens a round with the clients to expect, and
 * sends the round's model once; the switch opens the rounds of the switches below it, relays the
 * model down, takes the updates and the sums from below, forms the sample-weighted sum, and
 * forwards one update and the total count upstream. With the key at the clients it also relays
 * the encrypted model for evaluation, and the scores back up.
 */
import { z } from 'zod';
import { describeIssues } from '../config/load';
import { inputOf, type SwitchNodeConfig } from '../config/schema';
import { expectedParameterCount } from '../model/model';
import { badRequest, HttpError, refused } from '../net/errors';
import { describeFailure } from '../net/peers';
import { SwitchMachine, type SwitchAction, type SwitchEvent } from '../protocol/switch';
import { UpdateBuffer } from '../strategy/update-buffer';
import { encode, Kind, WIRE_CONTENT_TYPE, type Message } from '../wire/codec';
import { attemptOf, readMessage } from '../wire/receive';
import { startSession, type HeSession } from '../he/keys';
import { HePoolFailure } from '../he/pool';
import { askToEvaluate, type Evaluations } from './federated-evaluation';
import { Role } from './role';
import { DownRelay } from './switch-relay';

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

/** A switch's notice upstream that it forwards nothing this round. */
export const withheldSchema = z
  .object({ round: z.number().int().positive(), attempt: z.string().min(1).max(200), switch: z.string(), clients: z.array(z.string()), reason: z.string().max(500) })
  .strict();

/** How long a switch asked to evaluate without a `within` takes to answer. */
const DEFAULT_EVALUATION_MS = 20_000;

type UpdateEvent = Omit<Extract<SwitchEvent, { type: 'update' }>, 'type'>;
/** A drop as the aggregator sends it, or as the relay makes it (with why). */
type DropNotice = Omit<Extract<SwitchEvent, { type: 'drop' }>, 'type'>;

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
  contributors: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class SwitchRole extends Role<SwitchNodeConfig> {
  /** The experiment's model size, known from the settings. */
  readonly maxParameters = expectedParameterCount(this.config.settings.model, inputOf(this.config.settings.data));
  readonly encrypted = this.config.settings.he.enabled;
  private readonly sealedModels = this.encrypted && this.config.settings.he.key_holder === 'clients';
  private readonly toAggregator = this.config.upstream === this.config.aggregator;
  // Holding the key, the aggregator must never be handed one client's update alone (a switch above can only add).
  private readonly machine = new SwitchMachine(this.config.clients, this.config.switches, this.encrypted && !this.sealedModels && this.toAggregator ? 2 : 1);
  /** Down the tree: the rounds of the switches below, and the model relayed. */
  private readonly relay = new DownRelay(this.machine, {
    peers: this.node.peers,
    logger: this.node.logger,
    signal: this.abort.signal,
    isStopped: () => this.isStopped,
    handle: (event) => this.quietly(() => this.run(this.machine.handle(event), () => undefined)),
    drop: (round, attempt, client, why) => this.quietly(() => this.dropClient({ round, attempt, client, why })),
  });
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
  /** This switch's deadline for the round: the switches below get it as theirs, and forward a little before. */
  private deadlineMs = 0;
  /** The opening whose model went down already: each goes down once. */
  private relayedAttempt = '';
  private openedAt = 0;
  /** When the last update that made the sum arrived: the time after it, until the forward, was spent waiting. */
  private lastUpdateAt = 0;
  /** Clients whose encrypted update is queued or being summed, and drops that came for them meanwhile. */
  private readonly adding = new Set<string>();
  private readonly dropsPending = new Map<string, DropNotice>();

  override start(): void {
    // A switch holds no key: its SEAL context can only parse and add.
    if (this.encrypted) {
      this.he = startSession(this.config.settings.he, this.maxParameters, {}).then((session) => (this.session = session));
    }
    this.he?.catch((err) => this.markFailed(`HE failed to start: ${(err as Error).message}`));
  }

  override heQueueDepth(): number {
    return this.session?.pool.queued ?? 0;
  }

  status() {
    const { clients, switches, upstream, experiment } = this.config;
    const { stage, round, received } = this.machine.state;
    return { role: 'switch', experiment, clients, switches: Object.keys(switches), upstream, stage, round, received: received.size, rounds_done: this.iterations.rounds.length };
  }

  /** POST /s/round: the switch above, or the aggregator, opens a round. */
  open(body: unknown): void {
    const parsed = openRoundSchema.safeParse(body);
    if (!parsed.success) throw badRequest('not a round opening', describeIssues(parsed.error.issues));
    const { round, attempt, clients, deadline_ms, parameters, model_id } = parsed.data;
    if (parameters !== this.maxParameters) throw badRequest(`this experiment's model has ${this.maxParameters} parameters, not ${parameters}`);
    // Forward a little before the deadline above, so a late client does not sink the whole switch (each level a little earlier).
    const deadlineMs = Math.max(100, Math.round(deadline_ms * 0.9));
    this.run(this.machine.handle({ type: 'open', round, attempt, clients, deadlineMs }), () => {
      // Before the machine's open-below actions, which read these.
      this.relay.reset();
      this.deadlineMs = deadlineMs;
      this.buffer = new UpdateBuffer(parameters);
      this.sum = { weight: 0, contributors: 0 };
      this.heSumMs = 0;
      this.modelId = model_id;
      this.openedAt = performance.now();
      this.lastUpdateAt = this.openedAt;
      this.iterations.beginRound(round);
    });
  }

  /**
   * POST /s/model: the round's model, once for every selected client beneath this switch. It is
   * relayed after this answers: to this switch's own clients, and to each switch below once its
   * round is open there. A client that does not take it drops out of this round here; a switch
   * below that does not, with the clients beneath it, who stand by.
   */
  async relayModel(body: unknown): Promise<{ round: number; clients: number }> {
    const { stage, round } = this.machine.state;
    if (stage !== 'collecting') throw new HttpError(409, 'conflict', `no round is open on this switch to relay a model in (round ${round}, ${stage})`);
    const he = this.he && (await this.he);
    const message = readMessage(body, {
      kinds: this.sealedModels ? [Kind.Model, Kind.EncryptedModel, Kind.ModelReference] : [Kind.Model],
      modelId: this.modelId,
      parameters: this.maxParameters,
      he: he && { id: he.id, chunks: he.chunks },
    });
    const attempt = attemptOf(message);
    const now = this.machine.state;
    if (now.stage !== 'collecting' || message.round !== now.round || attempt !== now.attempt) {
      throw new HttpError(409, 'conflict', `the model is for round ${message.round} (${attempt}); this switch has round ${now.round} ${now.stage === 'collecting' ? `open as ${now.attempt}` : now.stage}`);
    }
    if (this.relayedAttempt === attempt) throw new HttpError(409, 'conflict', `the model of ${attempt} was relayed already`);
    this.relayedAttempt = attempt;
    this.relay.relay(body as Buffer, now.round, attempt);
    return { round: now.round, clients: now.clients.length };
  }

  /** POST /s/withheld: a switch below forwards nothing this round. */
  withheldBelow(body: unknown): void {
    const parsed = withheldSchema.safeParse(body);
    if (!parsed.success) throw badRequest('expected {"round", "attempt", "switch", "clients", "reason"}', describeIssues(parsed.error.issues));
    const { round, attempt, switch: from, reason } = parsed.data;
    this.run(this.machine.handle({ type: 'withheld', round, attempt, from, reason }), () => undefined);
  }

  /**
   * POST /s/evaluate?clients=…: the encrypted global model (key at the clients), scored by the
   * clients asked, all beneath this switch; asked of each once, through the switches below.
   */
  async evaluate(body: unknown, query: { clients?: unknown; within?: unknown }): Promise<Evaluations> {
    if (!this.sealedModels) throw new HttpError(409, 'conflict', 'in this experiment the aggregator scores the model itself');
    if (!this.modelId) throw new HttpError(409, 'conflict', 'this switch has had no round yet, so it does not know the model');
    const he = await this.he!;
    const message = readMessage(body, { kinds: [Kind.EncryptedModel], modelId: this.modelId, parameters: this.maxParameters, he: { id: he.id, chunks: he.chunks } });
    const clients = typeof query.clients === 'string' && query.clients ? [...new Set(query.clients.split(','))] : [];
    if (!clients.length) throw badRequest('name the clients to ask: ?clients=<address>,<address>');
    const strangers = clients.filter((c) => !this.config.clients.includes(c) && !this.machine.switchOf(c));
    if (strangers.length) throw badRequest(`not clients of this switch, nor beneath it: ${strangers.join(', ')}`);
    const within = Number(query.within ?? DEFAULT_EVALUATION_MS);
    if (!Number.isInteger(within) || within < 100 || within > 600_000) throw badRequest(`within: milliseconds to answer in, 100 to 600000; got ${String(query.within)}`);
    return askToEvaluate(this.node, this.abort.signal, message.round, body as Buffer, clients, (c) => this.machine.switchOf(c) ?? c, within);
  }

  /** POST /s/drop: the aggregator saw a selected client go down; this round stops waiting for it. */
  drop(body: unknown): void {
    const parsed = dropSchema.safeParse(body);
    if (!parsed.success) throw badRequest('expected {"round", "attempt", "client"}', describeIssues(parsed.error.issues));
    this.dropClient(parsed.data);
  }

  /** Drops a client from the round, from the aggregator or from the relay; a refusal is thrown. */
  private dropClient(drop: DropNotice): void {
    // Its encrypted update may be in the queue or in a sum right now: it counts if it makes it.
    if (this.adding.has(drop.client)) {
      this.dropsPending.set(drop.client, drop);
      return;
    }
    this.run(this.machine.handle({ type: 'drop', ...drop }), () => undefined);
  }

  /** For events of the switch's own making: a refusal means the round they were for is over; anything else is a bug, logged. */
  private quietly(step: () => void): void {
    try {
      step();
    } catch (err) {
      if (!(err instanceof HttpError)) this.node.logger.error(`the switch's round failed: ${(err as Error).stack ?? err}`);
    }
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

  /** POST /s/receive: one client's update, or the sum of a switch below. */
  async receive(body: unknown): Promise<{ round: number; received: number }> {
    const buffer = this.buffer;
    if (!buffer) throw new HttpError(409, 'conflict', 'no round is open on this switch');
    const he = this.he && (await this.he);
    // Quantized updates are changes to the model sent, full ones weights: the config says which to expect.
    const update = he ? Kind.EncryptedUpdate : this.config.settings.he.quantize ? Kind.QuantizedUpdate : Kind.Update;
    const message = readMessage(body, {
      kinds: [update, he ? Kind.EncryptedSum : Kind.WeightedSum],
      modelId: this.modelId,
      parameters: buffer.size,
      he: he && { id: he.id, chunks: he.chunks },
    });
    const fromBelow = message.kind !== update;
    if (fromBelow && !Object.hasOwn(this.config.switches, message.sender)) {
      throw badRequest(`a sum from ${message.sender}, which is not a switch below this one: expected ${Kind[update]} (${update}) from a client`);
    }
    const clients = fromBelow ? namedClients(message) : [message.sender];
    if (!fromBelow && message.contributors !== 1) throw badRequest(`a client update sums exactly 1 update, not ${message.contributors}`);
    if (!fromBelow && Object.hasOwn(this.config.switches, message.sender)) throw badRequest(`${message.sender} is a switch: it sends a sum, not a client update`);
    if (!(message.weight > 0)) throw badRequest('an update needs a positive sample count');
    const event = { round: message.round, attempt: attemptOf(message), from: message.sender, ...(fromBelow ? { clients } : {}) };
    if (!he) {
      this.run(this.machine.handle({ type: 'update', ...event }), () => {
        buffer.add(message.sender, { values: message.parameters, weight: message.weight, contributors: clients.length, preScaled: fromBelow });
        this.lastUpdateAt = performance.now();
      });
    } else {
      for (const client of clients) this.adding.add(client);
      try {
        await new Promise<void>((resolve, reject) => {
          this.waiting.push({ update: event, ciphertexts: message.ciphertexts!, weight: message.weight, contributors: clients.length, resolve, reject });
          this.drain(he);
        });
      } catch (err) {
        for (const client of clients) this.dropAfterAll(client);
        throw err;
      } finally {
        for (const client of clients) {
          this.adding.delete(client);
          this.dropsPending.delete(client); // made it: a drop that came meanwhile is moot
        }
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
    if (this.sum !== before || accepted.some((p) => this.machine.refusalFor(p.update.round, p.update.attempt, p.update.from, p.update.clients))) {
      for (const pending of accepted) await this.addBatch(he, [pending]);
      return;
    }
    const weight = accepted.reduce((w, p) => w + p.weight, 0);
    const contributors = accepted.reduce((n, p) => n + p.contributors, 0);
    this.sum = { ciphertexts: sum, weight: before.weight + weight, contributors: before.contributors + contributors };
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
      const { round, attempt, from, clients } = pending.update;
      const refusal =
        this.machine.refusalFor(round, attempt, from, clients) ??
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
        case 'open-below':
          this.relay.open(action, { deadline_ms: this.deadlineMs, parameters: this.maxParameters, model_id: this.modelId });
          break;
        case 'drop-below': {
          const { round, attempt, client } = action;
          // After its opening: a drop a switch gets before its round is refused.
          void this.relay.opened(action.switch).then((ok) => {
            if (ok) void this.relay.tell(action.switch, '/s/drop', { round, attempt, client });
          });
          break;
        }
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
      await this.node.peers.post(this.config.upstream, this.toAggregator ? '/a/withheld' : '/s/withheld', { round, attempt, switch: this.config.address, clients: from, reason }, { signal: this.abort.signal });
    } catch (err) {
      outcome += `; ${this.config.upstream} did not take the notice: ${describeFailure(err).reason}`;
    }
    this.iterations.endRound({ clients_reported: 0, missing, outcome });
  }

  private async forward(round: number, attempt: string, clients: string[], missing: string[]): Promise<void> {
    const aggregateStart = performance.now();
    const waitedMs = missing.length ? Math.max(0, Math.round(aggregateStart - this.lastUpdateAt)) : 0;
    await this.queue; // encrypted updates still being added belong to this sum
    if (this.he) await this.he;
    if (this.machine.state.attempt !== attempt) {
      // Another attempt was opened while the last additions ran: this sum is not wanted.
      this.node.logger.warn(`round ${round}: not forwarding ${attempt}; ${this.machine.state.attempt} has been opened since`);
      return;
    }
    const { body: update, contributors, weight } = this.upstreamMessage(round, attempt, clients, waitedMs);
    const aggregateMs = performance.now() - aggregateStart;
    let outcome = 'accepted';
    try {
      await this.node.peers.post(this.config.upstream, this.toAggregator ? '/a/receive' : '/s/receive', update, {
        headers: { 'Content-Type': WIRE_CONTENT_TYPE },
        signal: this.abort.signal,
      });
    } catch (err) {
      outcome = describeFailure(err).reason;
      this.node.logger.warn(`round ${round}: ${this.config.upstream} did not take the sum: ${outcome}`);
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

/** The clients a sum from a switch below names (meta.clients), one for each update in it. */
export function namedClients(message: Message): string[] {
  const named = message.meta?.clients;
  if (!(Array.isArray(named) && named.every((c) => typeof c === 'string'))) throw badRequest('a switch sum must name its clients in meta.clients');
  if (named.length !== message.contributors) throw badRequest(`the sum claims ${message.contributors} updates but names ${named.length} clients`);
  return named;
}
