/**
 * A switch: the aggregator opens a round with the clients to expect; the switch takes their
 * updates, forms the sample-weighted sum, and forwards one update and the total count upstream.
 */
import { z } from 'zod';
import type { SwitchNodeConfig } from '../config/schema';
import { expectedParameterCount } from '../model/model';
import { badRequest, HttpError } from '../net/errors';
import { describeFailure } from '../net/peers';
import { SwitchMachine, type SwitchAction } from '../protocol/switch';
import { UpdateBuffer } from '../strategy/update-buffer';
import { encode, Kind, WIRE_CONTENT_TYPE } from '../wire/codec';
import { readMessage } from '../wire/receive';
import { Role } from './role';

export const openRoundSchema = z
  .object({
    round: z.number().int().positive(),
    clients: z.array(z.string()).min(1),
    deadline_ms: z.number().int().positive(),
    parameters: z.number().int().positive(),
    model_id: z.number().int().min(0),
  })
  .strict();
export type OpenRound = z.infer<typeof openRoundSchema>;

export class SwitchRole extends Role<SwitchNodeConfig> {
  /** The largest update a client may send: the experiment's model, known from the settings. */
  readonly maxParameters = expectedParameterCount(this.config.settings.model);
  private readonly machine = new SwitchMachine(this.config.clients);
  private buffer?: UpdateBuffer;
  private modelId = 0;
  private openedAt = 0;

  status() {
    const { clients, aggregator, experiment } = this.config;
    const { stage, round, received } = this.machine.state;
    return { role: 'switch', experiment, clients, upstream: aggregator, stage, round, received: received.size, rounds_done: this.iterations.rounds.length };
  }

  /** POST /s/round: the aggregator opens a round. */
  open(body: unknown): void {
    const parsed = openRoundSchema.safeParse(body);
    if (!parsed.success) throw badRequest('not a round opening', parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
    const { round, clients, deadline_ms, parameters, model_id } = parsed.data;
    if (parameters !== this.maxParameters) throw badRequest(`this experiment's model has ${this.maxParameters} parameters, not ${parameters}`);
    // Forward a little before the aggregator's own deadline, so a late client does not sink the whole switch.
    const deadlineMs = Math.max(100, Math.round(deadline_ms * 0.9));
    this.run(this.machine.handle({ type: 'open', round, clients, deadlineMs }), () => {
      this.buffer = new UpdateBuffer(parameters);
      this.modelId = model_id;
      this.openedAt = performance.now();
      this.iterations.beginRound(round);
    });
  }

  /** POST /s/receive: one client's update. */
  receive(body: unknown): { round: number; received: number } {
    const buffer = this.buffer;
    if (!buffer) throw new HttpError(409, 'conflict', 'no round is open on this switch');
    const message = readMessage(body, { kinds: [Kind.Update], modelId: this.modelId, parameters: buffer.size });
    if (message.contributors !== 1) throw badRequest(`a client update sums exactly 1 update, not ${message.contributors}`);
    const actions = this.machine.handle({ type: 'update', round: message.round, from: message.sender });
    this.run(actions, () => buffer.add(message.sender, { values: message.parameters, weight: message.weight, contributors: 1, preScaled: false }));
    return { round: message.round, received: this.machine.state.received.size };
  }

  /** Carries out the machine's actions; `onAccept` stores what was accepted before a forward reads it. */
  private run(actions: SwitchAction[], onAccept: () => void): void {
    for (const action of actions) {
      switch (action.type) {
        case 'refuse':
          throw new HttpError(action.status, action.status === 403 ? 'forbidden' : 'conflict', action.reason);
        case 'reset-buffer':
        case 'accept':
          onAccept();
          break;
        case 'start-timer':
          this.after(action.ms, () => this.run(this.machine.handle({ type: 'deadline', round: action.round }), () => undefined));
          break;
        case 'forward':
          void this.forward(action.round, action.missing);
          break;
        case 'log':
          this.node.logger[action.level](action.message);
          break;
      }
    }
  }

  private async forward(round: number, missing: string[]): Promise<void> {
    const aggregateStart = performance.now();
    const total = this.buffer!.total();
    const update = encode({
      kind: Kind.WeightedSum,
      round,
      modelId: this.modelId,
      contributors: total.contributors,
      weight: total.weight,
      sender: this.config.address,
      parameters: Float32Array.from(total.sum),
    });
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
      clients_reported: total.contributors,
      missing,
      samples: total.weight,
      aggregate_ms: Math.round(aggregateMs),
      collect_ms: Math.round(aggregateStart - this.openedAt),
      update_bytes: update.length,
      outcome,
    });
  }
}
