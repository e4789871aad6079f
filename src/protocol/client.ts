/**
 * A client's stage, apart from IO. It prepares (data, model, keys), then waits for a model; a model
 * starts its round: training, then reporting the update upstream. Once the update is sent (taken or
 * not) or the round failed, it is free again and checks in. While it waits, a stand-by (not in this
 * round) or a config pushed again (the aggregator may be new) makes it check in again, which costs
 * nothing when it is still queued and puts it back when it was not.
 */

export type ClientStage = 'preparing' | 'waiting' | 'training' | 'reporting';

export type ClientEvent =
  | { type: 'prepared' }
  /** A model for `round`; `missing`: it came as a reference to a model this client does not keep. */
  | { type: 'model'; round: number; missing?: string }
  | { type: 'trained' }
  /** The update went upstream (taken or not), or the round failed: free again. */
  | { type: 'round-over' }
  | { type: 'standby' }
  | { type: 'reconnected' };

export type ClientAction =
  | { type: 'refuse'; status: number; reason: string; kind?: string }
  | { type: 'train'; round: number }
  /** The model it kept (the sealed one it scored) is not the one named: it keeps none now. */
  | { type: 'forget-kept' }
  | { type: 'check-in' };

export class ClientMachine {
  private current: ClientStage = 'preparing';
  private latest = 0;

  get stage(): ClientStage {
    return this.current;
  }

  /** The round it last took a model for. */
  get round(): number {
    return this.latest;
  }

  handle(event: ClientEvent): ClientAction[] {
    switch (event.type) {
      case 'prepared':
        return this.free();
      case 'model':
        return this.model(event);
      case 'trained':
        if (this.current === 'training') this.current = 'reporting';
        return [];
      case 'round-over':
        return this.free();
      case 'standby':
      case 'reconnected':
        return this.current === 'waiting' ? [{ type: 'check-in' }] : [];
    }
  }

  /** The refusal a model gets now (still preparing, or busy with a round), or undefined. */
  refusalFor(event: Extract<ClientEvent, { type: 'model' }>): Extract<ClientAction, { type: 'refuse' }> | undefined {
    if (this.current === 'preparing') return { type: 'refuse', status: 503, reason: 'this client is still loading its data; try again shortly' };
    if (this.current !== 'waiting') return { type: 'refuse', status: 409, kind: 'busy', reason: `this client is still working on round ${this.latest}` };
    if (event.missing !== undefined) return { type: 'refuse', status: 409, reason: `this client keeps no model ${event.missing} to train from; it checks in again for the whole model` };
    return undefined;
  }

  private model(event: Extract<ClientEvent, { type: 'model' }>): ClientAction[] {
    const refusal = this.refusalFor(event);
    // Started anew since it scored that model: it checks in saying it keeps none, and is sent the whole model next time.
    if (refusal && event.missing !== undefined && this.current === 'waiting') return [{ type: 'forget-kept' }, { type: 'check-in' }, refusal];
    if (refusal) return [refusal];
    this.current = 'training';
    this.latest = event.round;
    return [{ type: 'train', round: event.round }];
  }

  private free(): ClientAction[] {
    this.current = 'waiting';
    return [{ type: 'check-in' }];
  }
}
