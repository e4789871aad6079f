/**
 * A switch's work down the tree: it opens the round of each switch below that has selected clients,
 * and relays the round's model, once, to its own clients (each copy with that client's part of the
 * instructions) and to those switches (each once its round
 * is open there). What goes wrong comes back as events for the switch's round machine: a client that
 * does not take the model is dropped; a switch below that takes neither its opening nor its model
 * sends nothing, and the clients beneath it are told to stand by.
 */
import { tryPost, type CallerIo } from '../../net/peers';
import type { SwitchAction, SwitchEvent, SwitchMachine } from '../../protocol/switch';
import { WIRE_CONTENT_TYPE, withMeta } from '../../wire/codec';

export interface RelayIo extends CallerIo {
  /** An event for the round machine; one it refuses (a round that is over) is ignored. */
  handle(event: SwitchEvent): void;
  /** A client that did not take the model: dropped as the aggregator drops one (its update may be on its way). */
  drop(round: number, attempt: string, client: string, why: string): void;
}

export class DownRelay {
  /** Each switch below's opening of the current round: true once it took it. */
  private openings = new Map<string, Promise<boolean>>();

  constructor(
    private readonly machine: SwitchMachine,
    private readonly io: RelayIo,
  ) {}

  /** A new round: the openings of the last one are void. */
  reset(): void {
    this.openings = new Map();
  }

  /** Opens the round of a switch below; one that does not take it sends nothing, and its clients stand by. */
  open(action: Extract<SwitchAction, { type: 'open-below' }>, opening: Record<string, unknown>): void {
    const { round, attempt, clients, weights, switch: sw } = action;
    const opened = this.tell(sw, '/s/round', { round, attempt, clients, weights, ...opening }).then((failure) => {
      if (failure) this.lostBelow(round, attempt, sw, clients, `its round could not be opened (${failure})`);
      return !failure;
    });
    this.openings.set(sw, opened);
  }

  /** Resolves true once the switch below took this round's opening (false when it did not, or had none). */
  opened(sw: string): Promise<boolean> {
    return this.openings.get(sw) ?? Promise.resolve(false);
  }

  /**
   * Sends the model on: to this switch's own selected clients still expected, and to every switch
   * below with selected clients, which does the same. A selected client must hear something, or it
   * waits for a model for ever and never checks in again: one dropped already (down a moment ago,
   * say) is told to stand by.
   */
  relay(body: Buffer, round: number, attempt: string, fitOf: (client: string) => unknown): void {
    const { clients: expected, received } = this.machine.state;
    for (const client of this.machine.selectedHere()) {
      // Each client's copy with its own part of the instructions (its share): it hears no other's.
      if (expected.includes(client)) void this.toClient(withMeta(body, { fit: fitOf(client) }), round, attempt, client);
      else if (!received.has(client)) this.standBy(round, attempt, [client]);
    }
    // Who is beneath each switch in this attempt, fixed now: by the time an answer comes another attempt may be open.
    for (const sw of this.machine.switchesInRound()) void this.toSwitch(body, round, attempt, sw, this.machine.selectedBelow(sw));
  }

  /**
   * A client that did not take the model (refused it, timed out, stopped meanwhile) is dropped, and
   * told to stand by: it checks in again, rather than wait for a model that is not coming. One that
   * had taken it after all is training, and the stand-by changes nothing there.
   */
  private async toClient(body: Buffer[], round: number, attempt: string, client: string): Promise<void> {
    if (this.machine.state.attempt !== attempt) return this.standBy(round, attempt, [client]);
    const failure = await this.tell(client, '/c/round', body, { 'Content-Type': WIRE_CONTENT_TYPE });
    if (!failure || this.io.isStopped()) return;
    this.io.drop(round, attempt, client, `did not take the model: ${failure}`);
    this.standBy(round, attempt, [client]);
  }

  private async toSwitch(body: Buffer, round: number, attempt: string, sw: string, beneath: string[]): Promise<void> {
    if (!(await this.opened(sw))) return;
    if (this.machine.state.attempt !== attempt) return this.standBy(round, attempt, beneath);
    const failure = await this.tell(sw, '/s/model', body, { 'Content-Type': WIRE_CONTENT_TYPE });
    if (failure) this.lostBelow(round, attempt, sw, beneath, `it did not take the model (${failure})`);
  }

  private lostBelow(round: number, attempt: string, sw: string, beneath: string[], reason: string): void {
    if (this.io.isStopped()) return;
    this.standBy(round, attempt, beneath);
    this.io.handle({ type: 'withheld', round, attempt, from: sw, reason });
  }

  standBy(round: number, attempt: string, clients: string[]): void {
    for (const client of clients) void this.tell(client, '/c/standby', { round, attempt });
  }

  /** A call down the tree that may fail without stopping the round; resolves with why it failed, or undefined. */
  tell(address: string, path: string, body: unknown, headers?: Record<string, string>): Promise<string | undefined> {
    return tryPost(this.io, address, path, body, headers);
  }
}
