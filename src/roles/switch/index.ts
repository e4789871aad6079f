/**
 * A switch, as wiring: the switch above it (or the aggregator) opens a round with the clients to
 * expect and sends the round's model once; the switch's round machine decides, `DownRelay` opens
 * the rounds of the switches below and relays the model down, the accumulator adds the updates and
 * the sums from below (it cannot read them under HE), and `Upstream` forwards one sum, or says it
 * has none. With the key at the clients it also relays the sealed model for evaluation, and the
 * scores back up.
 */
import { EncryptedAccumulator, PlaintextAccumulator, type Accumulator, type Total } from '../../aggregation/accumulator';
import type { SwitchNodeConfig } from '../../config/node-config';
import { startSession, type HeSession } from '../../he/keys';
import { actingAsItself } from '../../net/callers';
import { badRequest, HttpError, refused } from '../../net/errors';
import type { Caller } from '../../net/identity';
import { leastToForward, SwitchMachine, type SwitchAction, type SwitchEvent } from '../../protocol/switch';
import { Topology } from '../../topology/tree';
import { Kind } from '../../wire/codec';
import { clientFit, dropSchema, openingInstructions, openRoundSchema, readControl, readEvaluationQuery, withheldSchema, type RoundInstructions } from '../../wire/control';
import { agesOf, attemptOf, forwardedUpdates, plainLimits, readMessage, updateKinds, waitedOf } from '../../wire/receive';
import { Arrivals } from '../arrivals';
import { askToEvaluate, type Evaluations } from '../federated-evaluation';
import { Role } from '../role';
import { PendingDrops } from './pending-drops';
import { DownRelay } from './relay';
import { Upstream } from './upstream';

/** A drop as the aggregator sends it, or as the relay makes it (with why). */
type DropNotice = Omit<Extract<SwitchEvent, { type: 'drop' }>, 'type'>;

export class SwitchRole extends Role<SwitchNodeConfig> {
  /** The tree beneath this switch. */
  readonly topology = new Topology(this.config.address, this.config.tree);
  private readonly sealedModels = this.encrypted && this.config.settings.he.key_holder === 'clients';
  private readonly machine = new SwitchMachine(this.topology, leastToForward(this.config.settings.he, this.config.upstream === this.config.aggregator), this.config.settings.stragglers);
  /** Down the tree: the rounds of the switches below, and the model relayed. */
  private readonly relay = new DownRelay(this.machine, {
    peers: this.node.peers,
    logger: this.node.logger,
    signal: this.abort.signal,
    isStopped: () => this.isStopped,
    handle: (event) => this.quietly(() => this.run(this.machine.handle(event))),
    drop: (round, attempt, client, why) => this.quietly(() => this.dropClient({ round, attempt, client, why })),
  });
  private readonly upstream = new Upstream({ config: this.config, peers: this.node.peers, logger: this.node.logger, signal: this.abort.signal, iterations: this.iterations });
  /** The round's updates; under HE made once this switch's SEAL context (no key: it can only add) is up. */
  private accumulator?: Accumulator = this.encrypted ? undefined : new PlaintextAccumulator(this.parameters);
  private he?: Promise<HeSession>;
  private session?: HeSession;
  private modelId = 0;
  /** From the opening: the round's samples (a client's share is its weight over them), each client's pass, and what the strategy tells a client otherwise. */
  private instructions: RoundInstructions = { samples: 1, overrides: {}, passes: {} };
  /** This switch's deadline for the round: the switches below get it as theirs, and forward a little before. */
  private deadlineMs = 0;
  /** The opening whose model went down already: each goes down once. */
  private relayedAttempt = '';
  private openedAt = 0;
  /** When the round's updates arrived here (and below): what it waited for, who held it. */
  private readonly arrivals = new Arrivals();
  /** Drops that came for clients whose update is being added: they apply only if it does not make it. */
  private readonly pendingDrops = new PendingDrops<DropNotice>();
  /** How large an update's values may be (he/bounds.ts). */
  private readonly limits = plainLimits(this.config.settings.he);

  override start(): void {
    if (!this.encrypted) return;
    this.he = startSession(this.config.settings.he, this.parameters, {}).then((session) => {
      this.accumulator = new EncryptedAccumulator(session, 'switch');
      return (this.session = session);
    });
    this.preparingWith(this.he.catch((err) => this.markFailed(`HE failed to start: ${(err as Error).message}`)));
  }

  override heQueueDepth(): number {
    return this.session?.pool.queued ?? 0;
  }

  status() {
    const { upstream, experiment, address } = this.config;
    const { stage, round, received } = this.machine.state;
    const below = this.topology.childrenOf(address);
    const clients = below.filter((node) => this.topology.isClient(node));
    const switches = below.filter((node) => this.topology.isSwitch(node));
    return { role: 'switch', experiment, clients, switches, upstream, stage, round, received: received.size, rounds_done: this.iterations.rounds.length };
  }

  /** POST /s/round: the switch above, or the aggregator, opens a round. */
  open(body: unknown): void {
    const { round, attempt, clients, weights, samples, fit, passes, deadline_ms, parameters, model_id } = readControl(openRoundSchema, body, 'not a round opening');
    if (parameters !== this.parameters) throw badRequest(`this experiment's model has ${this.parameters} parameters, not ${parameters}`);
    const deadlineMs = this.upstream.deadlineWithin(deadline_ms);
    this.run(this.machine.handle({ type: 'open', round, attempt, clients, weights, deadlineMs }), () => {
      // Before the machine's open-below actions, which read these.
      this.relay.reset();
      this.instructions = { samples, overrides: fit ?? {}, passes: passes ?? {} };
      this.deadlineMs = deadlineMs;
      this.accumulator?.reset();
      this.modelId = model_id;
      this.openedAt = performance.now();
      this.arrivals.open(this.openedAt);
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
    const kinds = this.sealedModels ? [Kind.Model, Kind.EncryptedModel, Kind.ModelReference] : [Kind.Model];
    const message = readMessage(body, { kinds, modelId: this.modelId, parameters: this.parameters, he: he && { id: he.id, chunks: he.chunks } });
    const attempt = attemptOf(message);
    const now = this.machine.state;
    if (now.stage !== 'collecting' || message.round !== now.round || attempt !== now.attempt) {
      throw new HttpError(409, 'conflict', `the model is for round ${message.round} (${attempt}); this switch has round ${now.round} ${now.stage === 'collecting' ? `open as ${now.attempt}` : now.stage}`);
    }
    if (this.relayedAttempt === attempt) throw new HttpError(409, 'conflict', `the model of ${attempt} was relayed already`);
    this.relayedAttempt = attempt;
    this.relay.relay(body as Buffer, now.round, attempt, (client) => clientFit(client, this.machine.weightsOf([client])[client], this.instructions));
    return { round: now.round, clients: now.clients.length };
  }

  /** POST /s/withheld: a switch below forwards nothing this round. */
  withheldBelow(body: unknown, caller: Caller): void {
    const { round, attempt, switch: from, reason } = readControl(withheldSchema, body, 'expected {"round", "attempt", "switch", "clients", "reason"}');
    actingAsItself(caller, 'switch', from);
    this.run(this.machine.handle({ type: 'withheld', round, attempt, from, reason }));
  }

  /**
   * POST /s/evaluate?clients=…: the encrypted global model (key at the clients), scored by the
   * clients asked, all beneath this switch; asked of each once, through the switches below.
   */
  async evaluate(body: unknown, query: { clients?: unknown; within?: unknown }): Promise<Evaluations> {
    if (!this.sealedModels) throw new HttpError(409, 'conflict', 'in this experiment the aggregator scores the model itself');
    if (!this.modelId) throw new HttpError(409, 'conflict', 'this switch has had no round yet, so it does not know the model');
    const he = await this.he!;
    const message = readMessage(body, { kinds: [Kind.EncryptedModel], modelId: this.modelId, parameters: this.parameters, he: { id: he.id, chunks: he.chunks } });
    const asked = readEvaluationQuery(query);
    if (typeof asked === 'string') throw badRequest(asked);
    const strangers = asked.clients.filter((c) => !this.topology.isClient(c));
    if (strangers.length) throw badRequest(`not clients of this switch, nor beneath it: ${strangers.join(', ')}`);
    return askToEvaluate(this.node, this.abort.signal, message.round, body as Buffer, asked.clients, (c) => this.topology.reporterOf(c), asked.withinMs);
  }

  /** POST /s/drop: the aggregator saw a selected client go down; this round stops waiting for it. */
  drop(body: unknown): void {
    this.dropClient(readControl(dropSchema, body, 'expected {"round", "attempt", "client"}'));
  }

  /** Drops a client from the round, from the aggregator or from the relay; a refusal is thrown. */
  private dropClient(drop: DropNotice): void {
    // Its update may be being added right now: it counts if it makes it.
    if (!this.pendingDrops.park(drop.client, drop)) this.run(this.machine.handle({ type: 'drop', ...drop }));
  }

  /** For events of the switch's own making: a refusal means the round they were for is over; anything else is a bug, logged. */
  private quietly(step: () => void): void {
    try {
      step();
    } catch (err) {
      if (!(err instanceof HttpError)) this.node.logger.error(`the switch's round failed: ${(err as Error).stack ?? err}`);
    }
  }

  /** POST /s/receive: one client's update, or the sum (or bundle) of a switch below. */
  async receive(body: unknown, caller: Caller): Promise<{ round: number; received: number }> {
    if (this.machine.state.stage === 'idle') throw new HttpError(409, 'conflict', 'no round is open on this switch');
    const he = this.he && (await this.he);
    const { update, sum } = updateKinds(this.config.settings);
    const message = readMessage(body, { kinds: [update, sum], modelId: this.modelId, parameters: this.parameters, he: he && { id: he.id, chunks: he.chunks }, limits: this.limits });
    const { round, sender, weight } = message;
    actingAsItself(caller, "the message's sender", sender);
    const fromBelow = message.kind === sum;
    const isBelow = this.topology.isSwitchBelowRoot(sender);
    if (fromBelow && !isBelow) throw badRequest(`a sum from ${sender}, which is not a switch below this one: expected ${Kind[update]} (${update}) from a client`);
    const { clients, bundle, updateWeights } = fromBelow ? forwardedUpdates(message) : { clients: [sender] };
    if (!fromBelow && message.contributors !== 1) throw badRequest(`a client update sums exactly 1 update, not ${message.contributors}`);
    if (!fromBelow && isBelow) throw badRequest(`${sender} is a switch: it sends a sum, not a client update`);
    if (!(weight > 0)) throw badRequest('an update needs a positive sample count');
    const event = { type: 'update' as const, round, attempt: attemptOf(message), from: sender, weight, ...(fromBelow ? { clients, updateWeights } : {}) };
    const [waited, ages] = fromBelow ? [waitedOf(message), agesOf(message, clients)] : [0, undefined];
    const arrival = { round, sender, weight, contributors: clients.length, preScaled: fromBelow, values: message.parameters, ciphertexts: message.ciphertexts, bundle };
    this.pendingDrops.begin(clients);
    let made = false;
    try {
      await this.accumulator!.add(arrival, {
        check: () => {
          const refusal = this.machine.refusalFor(event);
          if (refusal) throw refused(refusal);
        },
        commit: (store) => this.run(this.machine.handle(event), () => (store(), this.arrivals.took(performance.now(), clients, waited, ages))),
      });
      made = true;
    } finally {
      // A drop that came meanwhile applies now if the update did not make it.
      for (const drop of this.pendingDrops.end(clients, made)) if (!this.isStopped) this.quietly(() => this.run(this.machine.handle({ type: 'drop', ...drop })));
    }
    return { round, received: this.machine.state.received.size };
  }

  /** Carries out the machine's actions; `onAccept` stores what was accepted (or opened) before a forward reads it. */
  private run(actions: SwitchAction[], onAccept: () => void = () => undefined): void {
    for (const action of actions) {
      switch (action.type) {
        case 'refuse':
          throw refused(action);
        case 'opened':
        case 'accept':
          onAccept();
          break;
        case 'start-timer':
          this.after(action.ms, () => this.run(this.machine.handle({ type: 'deadline', attempt: action.attempt })));
          break;
        case 'forward':
          this.forward(action).catch((err) => this.node.logger.error(`round ${action.round}: forwarding failed: ${(err as Error).stack ?? err}`));
          break;
        case 'withhold':
          this.upstream.withhold(action).catch((err) => this.node.logger.error(`round ${action.round}: the notice upstream failed: ${(err as Error).stack ?? err}`));
          break;
        case 'open-below':
          this.relay.open(action, { deadline_ms: this.deadlineMs, parameters: this.parameters, model_id: this.modelId, ...openingInstructions(this.instructions, action.clients) });
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

  private async forward({ round, attempt, from, missing }: Extract<SwitchAction, { type: 'forward' }>): Promise<void> {
    const aggregateStart = performance.now();
    const waitedMs = this.arrivals.waitedUntil(aggregateStart, missing.length > 0);
    const accumulator = this.accumulator!;
    // Updates still being added belong to this sum, or are refused; the total is read once they are.
    let total: Total | undefined;
    let unreadable: Error | undefined;
    try {
      total = await accumulator.total();
    } catch (err) {
      unreadable = err as Error;
    }
    if (this.machine.state.attempt !== attempt) {
      // Another attempt was opened while the last additions ran: this sum is not wanted.
      this.node.logger.warn(`round ${round}: not forwarding ${attempt}; ${this.machine.state.attempt} has been opened since`);
      return;
    }
    // Lost with an HE thread, say: the level above hears so now, rather than at its deadline.
    if (unreadable) return this.upstream.withhold({ round, attempt, from, missing, reason: `its sum could not be read: ${unreadable.message}` });
    await this.upstream.forward({
      round,
      attempt,
      modelId: this.modelId,
      parameters: this.parameters,
      clients: from,
      missing,
      total: total!,
      he: this.session?.id,
      waitedMs,
      arrivals: this.arrivals.snapshot(aggregateStart),
      heSumMs: this.encrypted ? accumulator.addMs : undefined,
      collectMs: aggregateStart - this.openedAt,
      aggregateStart,
    });
  }

  protected override async close(): Promise<void> {
    await super.close();
    this.accumulator?.close(); // frees the sum its HE threads keep: the pool may be shared on
    const he = await this.he?.catch(() => undefined);
    await he?.pool.close();
  }
}
