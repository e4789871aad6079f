/** What an HE pool (pool.ts) and its threads (worker.ts) say to each other. */
import type { Packed } from './packing';

export type Task =
  /** `first`: the index of values[0] in the model (a quantized layout clips by tensor). */
  | { id: number; op: 'encrypt'; values: Float32Array | Float64Array; factor: number; first: number; noise: number }
  /** `lists` lists of the same length, one after the other in `packed`. */
  | { id: number; op: 'sum'; lists: number; packed: Packed }
  | { id: number; op: 'decrypt'; packed: Packed; parameters: number; factor: number; first: number }
  | { id: number; op: 'prepare'; count: number }
  /** A running sum this thread keeps (HeldSum, pool.ts): add (1) or take out (-1) one update's ciphertexts, read it, drop it. */
  | { id: number; op: 'hold'; sum: number; sign: 1 | -1; packed: Packed }
  | { id: number; op: 'read-held'; sum: number }
  | { id: number; op: 'drop-held'; sum: number }
  /** Test only, honoured by threads of a pool started with { testHooks: true }: see HePool.crashThreadForTest. */
  | { id: number; op: 'crash'; how: 'throw' | 'exit'; code: number };

/** `unable`: the error is the thread's, not the task's (its SEAL did not start, memory it could not have). */
export type Reply = { id: number; result?: unknown; error?: string; unable?: boolean };

/** The id of the reply a thread sends unasked once its SEAL is up (or could not start): no task has it. */
export const STARTED = 0;
/** What that reply carries: what the pool cannot know without a SEAL of its own. */
export interface Started {
  perCiphertext: number;
}

/**
 * Memory that could not be had, in V8's words (a buffer, a typed array) or SEAL's (its wasm heap could
 * not grow, and C++ threw std::bad_alloc): no fault of the data being worked on. A ciphertext is
 * refused beyond the size its parameters allow before SEAL reads it (seal.ts loadCiphertext).
 */
export const outOfMemory = (err: unknown): boolean => err instanceof Error && /allocation failed|out of memory|bad_alloc/i.test(err.message);
