/**
 * A round's updates, added up as they arrive, behind one interface that switches and the aggregator
 * share:
 * - `PlaintextAccumulator` keeps each sender's update and sums them in sender order (UpdateBuffer),
 *   so network timing cannot change the model's bits;
 * - `EncryptedAccumulator` adds ciphertexts it cannot read, in the HE threads. Addition is exact, so
 *   order does not matter. A switch adds every update that arrived while the last sum ran in one
 *   batch: the running sum is read and written once per batch, not once per update (its main cost).
 *
 * The round decides what is taken, through a `Gate`: the accumulator asks before its slow work,
 * asks again after it (the round may have moved on meanwhile), and stores an update only once the
 * round took it.
 */
import type { HeSession } from '../he/keys';
import { HePoolFailure } from '../he/pool';
import { conflict, HttpError } from '../net/errors';
import type { NamedUpdate } from '../wire/receive';
import { UpdateBuffer } from './update-buffer';

export interface Arrival {
  round: number;
  sender: string;
  weight: number;
  contributors: number;
  /** A switch's sum is weighted already; one client's plain update is weighted by `weight` here. */
  preScaled: boolean;
  values?: Float32Array;
  /** A switch's bundle: each client's own update, kept as if the client had sent it here (plaintext). */
  bundle?: NamedUpdate[];
  ciphertexts?: Uint8Array[];
}

/**
 * How the round judges an arrival. `check` throws the refusal it would get now, changing nothing.
 * `commit` hands the round the update (throwing its refusal) and runs `store` once it is taken,
 * before anything the round does next: a forward or an aggregation reads the total.
 */
export interface Gate {
  check(): void;
  commit(store: () => void): void;
}

export type Total =
  | { kind: 'plain'; sum: Float64Array; weight: number; contributors: number; updates: NamedUpdate[] }
  | { kind: 'encrypted'; ciphertexts: Uint8Array[]; weight: number; contributors: number };

export interface Accumulator {
  /** Resolves once the update is in the total; rejects with the refusal (an HttpError) otherwise. */
  add(arrival: Arrival, gate: Gate): Promise<void>;
  /** Resolves once every addition under way is taken or refused. */
  settled(): Promise<void>;
  /** What was taken this round; undefined before anything was. */
  total(): Total | undefined;
  /** Milliseconds spent adding this round (HE sums; none in plaintext). */
  readonly addMs: number;
  /** A new round (or a retried one) starts from nothing. */
  reset(): void;
}

export class PlaintextAccumulator implements Accumulator {
  private buffer: UpdateBuffer;
  readonly addMs = 0;

  constructor(private readonly parameters: number) {
    this.buffer = new UpdateBuffer(parameters);
  }

  async add(arrival: Arrival, gate: Gate): Promise<void> {
    const { sender, values, weight, contributors, preScaled, bundle } = arrival;
    // Each bundled update by its client, so the sum runs in client order whatever the tree.
    const store = bundle ? () => bundle.forEach((u) => this.buffer.add(u.client, { values: u.values, weight: u.weight, contributors: 1, preScaled: false })) : () => this.buffer.add(sender, { values: values!, weight, contributors, preScaled });
    gate.commit(store);
  }

  settled(): Promise<void> {
    return Promise.resolve();
  }

  total(): Total | undefined {
    if (!this.buffer.senders.length) return undefined;
    const { sum, weight, contributors } = this.buffer.total();
    return { kind: 'plain', sum, weight, contributors, updates: this.buffer.clientUpdates() };
  }

  reset(): void {
    this.buffer = new UpdateBuffer(this.parameters);
  }
}

interface Pending {
  arrival: Arrival;
  gate: Gate;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class EncryptedAccumulator implements Accumulator {
  private sum?: Uint8Array[];
  /** Why the sum cannot be used (see remake); reading it then throws. */
  private broken?: string;
  private weight = 0;
  private contributors = 0;
  addMs = 0;
  private waiting: Pending[] = [];
  private draining?: Promise<void>;

  constructor(
    private readonly he: HeSession,
    /** Whose sum this is, for the refusals it names ("the switch could not add…"). */
    private readonly holder: 'switch' | 'aggregator',
    /**
     * Whether the updates that wait while a sum runs are added in one sum: a switch's main cost is
     * reading and writing the running sum. The aggregator adds one at a time: it gets a sum a
     * switch, few to batch.
     */
    private readonly batches: boolean,
  ) {}

  add(arrival: Arrival, gate: Gate): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ arrival, gate, resolve, reject });
      this.drain();
    });
  }

  settled(): Promise<void> {
    return this.draining ?? Promise.resolve();
  }

  total(): Total | undefined {
    if (this.broken) throw new Error(this.broken);
    return this.sum && { kind: 'encrypted', ciphertexts: this.sum, weight: this.weight, contributors: this.contributors };
  }

  reset(): void {
    this.sum = undefined;
    this.broken = undefined;
    this.weight = 0;
    this.contributors = 0;
    this.addMs = 0;
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = (async () => {
      while (this.waiting.length) {
        const batch = this.batches ? this.waiting.splice(0) : this.waiting.splice(0, 1);
        await this.addBatch(batch).catch((err) => batch.forEach((p) => p.reject(err)));
      }
    })().finally(() => (this.draining = undefined));
  }

  private async addBatch(batch: Pending[]): Promise<void> {
    const accepted = this.withoutRefused(batch);
    if (!accepted.length) return;
    const before = this.sum;
    const started = performance.now();
    let sum: Uint8Array[];
    try {
      sum = await this.he.pool.sum([...(before ? [before] : []), ...accepted.map((p) => p.arrival.ciphertexts!)]);
    } catch (err) {
      if (err instanceof HePoolFailure) {
        // Not the updates' fault: each sender hears this node cannot add now (a 5xx: it may send again).
        const unavailable = new HttpError(503, 'HE unavailable', `the ${this.holder} could not add the update: ${err.message}`);
        return accepted.forEach((p) => p.reject(unavailable));
      }
      // One of them does not parse: added one by one, only it is refused.
      if (accepted.length > 1) return this.oneByOne(accepted);
      return accepted[0].reject(new HttpError(400, 'bad ciphertext', `the update does not parse under this experiment's HE parameters: ${(err as Error).message}`));
    }
    this.addMs += performance.now() - started;
    // The round may have closed or moved on while the sum ran: then each is judged again alone.
    if (this.sum !== before || accepted.some((p) => refusalOf(p.gate))) return this.oneByOne(accepted);
    let stored = false;
    const taken: Pending[] = [];
    for (const pending of accepted) {
      try {
        pending.gate.commit(() => {
          if (!stored) this.sum = sum;
          stored = true;
          this.weight += pending.arrival.weight;
          this.contributors += pending.arrival.contributors;
        });
        taken.push(pending);
      } catch (err) {
        pending.reject(err);
      }
    }
    // Taking one may close the round for the rest (a sum from below may name clients dropped here
    // meanwhile, whose absence the others' updates complete). The stored sum then holds updates the
    // round refused: it is made again from those it took before anything reads it (a forward waits).
    if (stored && taken.length < accepted.length) await this.remake(before, taken);
    taken.forEach((p) => p.resolve());
  }

  private async remake(before: Uint8Array[] | undefined, taken: Pending[]): Promise<void> {
    const started = performance.now();
    try {
      this.sum = await this.he.pool.sum([...(before ? [before] : []), ...taken.map((p) => p.arrival.ciphertexts!)]);
    } catch (err) {
      this.broken = `the sum holds an update the round refused, and could not be made again without it: ${(err as Error).message}`;
    } finally {
      this.addMs += performance.now() - started;
    }
  }

  private async oneByOne(batch: Pending[]): Promise<void> {
    for (const pending of batch) await this.addBatch([pending]);
  }

  /** Answers the refused ones (a stale round, a stranger, a sender twice, even within the batch) and keeps the rest. */
  private withoutRefused(batch: Pending[]): Pending[] {
    const senders = new Set<string>();
    return batch.filter((pending) => {
      const { sender, round } = pending.arrival;
      const refusal = refusalOf(pending.gate) ?? (senders.has(sender) ? conflict(`${sender} already sent its update for round ${round}`) : undefined);
      senders.add(sender);
      if (refusal) pending.reject(refusal);
      return !refusal;
    });
  }
}

/** The refusal a gate would give now, or undefined. */
function refusalOf(gate: Gate): unknown {
  try {
    gate.check();
    return undefined;
  } catch (err) {
    return err;
  }
}
