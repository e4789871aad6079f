/**
 * A switch's work down the tree: it opens the round of each switch below that has selected clients,
 * and relays the round's model, once, to its own clients and to those switches (each once its round
 * is open there). What goes wrong comes back as events for the switch's round machine: a client that
 * does not take the model is dropped; a switch below that takes neither its opening nor its model
 * sends nothing, and the clients beneath it are told to stand by.
 */
import { tryPost, type CallerIo } from '../net/peers';
import type { SwitchAction, SwitchEvent, SwitchMachine } from '../protocol/switch';
import { WIRE_CONTENT_TYPE } from '../wire/codec';

export interface RelayIo extends CallerIo {
  /** An event for the round machine; one it refuses (a round that is over) is ignored. */
  handle(event: SwitchEvent): void;
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
    const { round, attempt, clients, switch: sw } = action;
    const opened = this.tell(sw, '/s/round', { round, attempt, clients, ...opening }).then((failure) => {
      if (failure) this.lostBelow(round, attempt, sw, `its round could not be opened (${failure})`);
      return !failure;
    });
    this.openings.set(sw, opened);
  }

  /** Resolves true once the switch below took this round's opening (false when it did not, or had none). */
  opened(sw: string): Promise<boolean> {
    return this.openings.get(sw) ?? Promise.resolve(false);
  }

  /** Sends the model to every client still expected: to this switch's own, and through the switches below. */
  relay(body: Buffer, round: number, attempt: string): void {
    const expected = this.machine.state.clients;
    const below = new Set(expected.map((c) => this.machine.switchOf(c)));
    for (const client of expected.filter((c) => !this.machine.switchOf(c))) void this.toClient(body, round, attempt, client);
    for (const sw of below) if (sw) void this.toSwitch(body, round, attempt, sw);
  }

  private async toClient(body: Buffer, round: number, attempt: string, client: string): Promise<void> {
    if (this.machine.state.attempt !== attempt) return this.standBy(round, [client]);
    const failure = await this.tell(client, '/c/round', body, { 'Content-Type': WIRE_CONTENT_TYPE });
    if (failure && !this.io.isStopped()) this.io.handle({ type: 'drop', round, attempt, client, why: `did not take the model: ${failure}` });
  }

  private async toSwitch(body: Buffer, round: number, attempt: string, sw: string): Promise<void> {
    if (!(await this.opened(sw))) return;
    if (this.machine.state.attempt !== attempt) return this.standBy(round, this.machine.selectedBelow(sw));
    const failure = await this.tell(sw, '/s/model', body, { 'Content-Type': WIRE_CONTENT_TYPE });
    if (failure) this.lostBelow(round, attempt, sw, `it did not take the model (${failure})`);
  }

  private lostBelow(round: number, attempt: string, sw: string, reason: string): void {
    if (this.io.isStopped()) return;
    this.standBy(round, this.machine.selectedBelow(sw));
    this.io.handle({ type: 'withheld', round, attempt, from: sw, reason });
  }

  standBy(round: number, clients: string[]): void {
    for (const client of clients) void this.tell(client, '/c/standby', { round });
  }

  /** A call down the tree that may fail without stopping the round; resolves with why it failed, or undefined. */
  tell(address: string, path: string, body: unknown, headers?: Record<string, string>): Promise<string | undefined> {
    return tryPost(this.io, address, path, body, headers);
  }
}
