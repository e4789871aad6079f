/**
 * A running sum kept in the HE threads. Each thread keeps the sum of its range of the ciphertexts (the
 * ranges every pool task splits a model by), so an update is split between the threads, each reads
 * its range into SEAL once and adds it, and the sum is written out once, when read: one copy of it in
 * all, where a sum kept by the caller was read and written in full for every batch it added.
 *
 * A range lives in the thread that held it at the sum's first addition: a thread that dies takes its
 * range with it, and the sum then refuses more (HePoolFailure) and cannot be read.
 */
import { HePoolFailure, orNoMemory, type HePool, type PoolTask, type PoolThread } from './pool';
import { pack } from './packing';

export class HeldSum {
  private readonly id: number;
  /** The thread holding each range, as the pool's slots were at the first addition. */
  private holders: readonly PoolThread[] = [];
  /** Ciphertexts per update, from the first: how the ranges fall. */
  private chunks?: number;
  private dropped = false;
  /** Why it can no longer be trusted: it holds part of an update that could not be taken out again. */
  private spoiled?: string;

  constructor(private readonly pool: HePool) {
    this.id = pool.newSumId();
  }

  /** Adds one update's ciphertexts. All or nothing: one that does not load (or cancels the sum out) leaves the sum as it was, and rejects. */
  async add(ciphertexts: Uint8Array[]): Promise<void> {
    if (this.dropped) throw new Error('this sum was dropped');
    if (this.spoiled) throw new HePoolFailure(this.spoiled);
    if (this.chunks !== undefined && ciphertexts.length !== this.chunks) throw new Error(`${ciphertexts.length} ciphertexts, not the ${this.chunks} of the sum`);
    if (this.chunks === undefined) this.holders = this.pool.currentThreads();
    this.chunks = ciphertexts.length;
    const lost = this.holders.find((thread) => thread.gone);
    if (lost) throw lostWith(lost);
    const outcomes = await Promise.allSettled(await orNoMemory(async () => this.post(ciphertexts, 1)));
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (!failed) return;
    // The ranges other threads added are taken out again; if that fails too, part of the update stays, and the sum is spoiled.
    const added = outcomes.map((o) => o.status === 'fulfilled');
    try {
      await orNoMemory(() => Promise.all(this.post(ciphertexts, -1, added)));
    } catch (err) {
      this.spoiled = `the sum holds part of an update it refused, which could not be taken out again (${(err as Error).message}): it takes and gives no more`;
      throw new HePoolFailure(this.spoiled);
    }
    throw failed.reason;
  }

  /** Takes out an update added before (the round refused it once it was in): exact, as addition is. */
  async takeOut(ciphertexts: Uint8Array[]): Promise<void> {
    await Promise.all(this.post(ciphertexts, -1));
  }

  /**
   * The sum of every update added and not taken out before this call: its reads go to the threads at
   * once, behind whatever was handed to them before, ahead of anything after.
   */
  async read(): Promise<Uint8Array[]> {
    if (this.spoiled) throw new HePoolFailure(this.spoiled);
    if (this.chunks === undefined) throw new Error('the sum holds nothing');
    const parts = await Promise.all(this.pool.rangesOf(this.chunks).map((_, i) => this.run<Uint8Array[] | null>(i, { op: 'read-held', sum: this.id })));
    if (parts.every((p) => p === null)) throw new Error('the sum holds nothing');
    if (parts.some((p) => p === null)) throw new Error('the sum holds some ranges of the model and not others');
    return parts.flatMap((p) => p!);
  }

  /** Frees its ranges; it takes nothing more. */
  drop(): void {
    this.dropped = true;
    this.holders.forEach((_, i) => this.run(i, { op: 'drop-held', sum: this.id }).catch(() => undefined));
  }

  /**
   * Posts each range of `ciphertexts` (those `only` marks) to its thread, at once. Each range is
   * copied for its thread before any is posted: a copy that fails (no memory) fails them all, before
   * one thread has added its range and left the sum holding part of an update.
   */
  private post(ciphertexts: Uint8Array[], sign: 1 | -1, only?: boolean[]): Promise<unknown>[] {
    const packed = this.pool.rangesOf(ciphertexts.length).map(([from, to], i) => (only && !only[i] ? undefined : pack(ciphertexts.slice(from, to))));
    return packed.map((range, i) => (range ? this.run(i, { op: 'hold', sum: this.id, sign, packed: range }) : Promise.resolve()));
  }

  private run<T>(range: number, task: PoolTask): Promise<T> {
    const thread = this.holders[range];
    if (thread.gone) return Promise.reject(lostWith(thread));
    return this.pool.runOnThread<T>(thread, task);
  }
}

const lostWith = (thread: PoolThread) => new HePoolFailure(`the HE thread ${thread.index} died holding part of the sum`);
