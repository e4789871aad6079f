/**
 * A round's updates, added up as they arrive, behind one interface that switches and the aggregator
 * share:
 * - `PlaintextAccumulator` keeps each sender's update and sums them in sender order (UpdateBuffer),
 *   so network timing cannot change the model's bits;
 * - `EncryptedAccumulator` adds ciphertexts it cannot read, in the HE threads, which keep the running
 *   sum (HeldSum): an update is read into SEAL once, and the sum written out once, when the round is
 *   over. Addition is exact, so order does not matter, and an update the round refuses
 *   after it was added is subtracted out again, exactly.
 *
 * The round decides what is taken, through a `Gate`: the accumulator asks before its slow work,
 * asks again after it (the round may have moved on meanwhile), and stores an update only once the
 * round took it.
 */
import type { HeSession } from '../he/keys';
import { HeldSum } from '../he/held-sum';
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
  /** What was taken this round; undefined before anything was. Waits for the additions under way to be taken or refused. */
  total(): Promise<Total | undefined>;
  /** Milliseconds spent adding this round (HE sums; none in plaintext). */
  readonly addMs: number;
  /** A new round (or a retried one) starts from nothing. */
  reset(): void;
  /** The role is closing: what it holds is freed, and nothing more is taken. */
  close(): void;
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

  async total(): Promise<Total | undefined> {
    if (!this.buffer.senders.length) return undefined;
    const { sum, weight, contributors } = this.buffer.total();
    return { kind: 'plain', sum, weight, contributors, updates: this.buffer.clientUpdates() };
  }

  reset(): void {
    this.buffer = new UpdateBuffer(this.parameters);
  }

  close(): void {
    this.reset();
  }
}

export class EncryptedAccumulator implements Accumulator {
  private held: HeldSum;
  /** Why the sum cannot be used (an update the round refused could not be taken out); reading it then throws. */
  private broken?: string;
  private weight = 0;
  private contributors = 0;
  /** Additions under way, each settled (taken or refused) when its promise is, and whose they are. */
  private readonly adding = new Set<Promise<void>>();
  private readonly senders = new Set<string>();
  /** Milliseconds during which at least one addition was under way this round (the sum's final read is the forward's). */
  private addedMs = 0;
  private busySince = 0;
  private closed = false;

  constructor(
    private readonly he: HeSession,
    /** Whose sum this is, for the refusals it names ("the switch could not add…"). */
    private readonly holder: 'switch' | 'aggregator',
  ) {
    this.held = new HeldSum(he.pool);
  }

  get addMs(): number {
    return this.addedMs + (this.adding.size ? performance.now() - this.busySince : 0);
  }

  add(arrival: Arrival, gate: Gate): Promise<void> {
    const { sender, round } = arrival;
    // A second copy from a sender whose first is being added would cost HE work only to be refused.
    if (this.senders.has(sender)) return Promise.reject(conflict(`${sender} already sent its update for round ${round}`));
    if (!this.adding.size) this.busySince = performance.now();
    this.senders.add(sender);
    const adding: Promise<void> = this.addOne(arrival, gate).finally(() => {
      this.adding.delete(adding);
      this.senders.delete(sender);
      if (!this.adding.size) this.addedMs += performance.now() - this.busySince;
    });
    this.adding.add(adding);
    return adding;
  }

  async total(): Promise<Total | undefined> {
    const held = this.held;
    // Read with nothing under way (an update added but not yet judged may still be taken out), in
    // the same turn of the event loop as the check: no addition starts in between.
    while (this.adding.size) await Promise.allSettled([...this.adding]);
    if (held !== this.held) throw new Error('a new round began while this one was being summed');
    if (this.broken) throw new Error(this.broken);
    if (!this.contributors) return undefined;
    const { weight, contributors } = this;
    return { kind: 'encrypted', ciphertexts: await this.held.read(), weight, contributors };
  }

  close(): void {
    this.closed = true;
    this.held.drop();
  }

  reset(): void {
    this.held.drop();
    this.held = new HeldSum(this.he.pool);
    this.broken = undefined;
    this.weight = 0;
    this.contributors = 0;
    this.addedMs = 0;
    this.busySince = performance.now();
  }

  /**
   * Judged before the HE work and again after it (the round may have moved on meanwhile): an update
   * the round refuses then is taken out of the sum again. Updates are added side by side.
   */
  private async addOne(arrival: Arrival, gate: Gate): Promise<void> {
    if (this.closed) throw new HttpError(503, 'closing', `the ${this.holder} is closing`);
    gate.check();
    const held = this.held;
    const ciphertexts = arrival.ciphertexts!;
    try {
      await held.add(ciphertexts);
    } catch (err) {
      // Not the update's fault: its sender hears this node cannot add now (a 5xx: it may send again).
      if (err instanceof HePoolFailure) throw new HttpError(503, 'HE unavailable', `the ${this.holder} could not add the update: ${err.message}`);
      throw new HttpError(400, 'bad ciphertext', `the update does not parse under this experiment's HE parameters: ${(err as Error).message}`);
    }
    // A new round (or attempt) began while it was added: that sum is gone; it is judged again for this one.
    if (held !== this.held) return this.addOne(arrival, gate);
    let stored = false;
    try {
      gate.commit(() => {
        stored = true;
        this.weight += arrival.weight;
        this.contributors += arrival.contributors;
      });
    } catch (err) {
      if (!stored) {
        await held.takeOut(ciphertexts).catch((why) => {
          if (held === this.held) this.broken = `the sum holds an update the round refused, and it could not be taken out: ${(why as Error).message}`;
        });
      }
      throw err;
    }
  }
}
