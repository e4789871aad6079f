/**
 * HE work off the event loop: a few worker threads, each with its own SEAL instance (the wasm build
 * is single-threaded), so a node keeps answering /health and requests while it encrypts or decrypts.
 * A model's ciphertexts are split between the threads by ranges, so all cores work on one update.
 *
 * A thread that dies (an uncaught error, a wasm abort, process.exit, out of memory) fails the tasks it
 * was given, and only those, with "the HE thread N died (why)" (and takes with it the ranges of the
 * running sums it kept: see held-sum.ts), and is replaced by a fresh one started
 * the same way, so later tasks work. A replaced thread has no encryptions of zero stocked (see prepare):
 * encrypting makes them on the spot. A thread that dies MAX_DEATHS times within DEATH_WINDOW_MS (memory
 * making every start fail, say) is not replaced again: the pool gives up and fails every later task
 * with the reason, rather than starting threads that die forever. Keys or parameters that do not fit
 * fail start() itself: the first thread to say its SEAL could not start decides it.
 */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { paramsId, type HeParams, type KeyMaterial } from './ckks';
import { pack } from './packing';
import { outOfMemory, STARTED, type Reply, type Started, type Task } from './tasks';

/** The deaths of one thread within DEATH_WINDOW_MS after which it is not replaced (the last of them not). */
export const MAX_DEATHS = 3;
export const DEATH_WINDOW_MS = 60_000;

export interface PoolOptions {
  /** Test only: the threads honour the 'crash' op, so a test can kill one (see crashThreadForTest). */
  testHooks?: boolean;
}

/** One worker thread and the ids of the tasks it was given and has not answered. */
interface Thread {
  readonly index: number;
  readonly worker: Worker;
  readonly tasks: Set<number>;
  /** Died (or the pool closed): its events are no longer acted on. */
  gone: boolean;
}

/** A thread as a HeldSum sees it: which slot, and whether it died. */
export type PoolThread = Pick<Thread, 'index' | 'gone'>;
type Pending = { resolve: (value: any) => void; reject: (err: Error) => void; thread: Thread };
type Payload<T> = T extends unknown ? Omit<T, 'id'> : never;
export type PoolTask = Payload<Task>;
type WorkerData = { params: HeParams; keys: KeyMaterial; testHooks: boolean };

/**
 * The pool itself cannot do the work (a thread died, could not start SEAL, or was not handed the task;
 * the pool gave up, or was closed; no memory for the task): not the input's fault.
 */
export class HePoolFailure extends Error {}

/** `work`, with memory it could not have (this thread's or SEAL's) said as the pool's failure, not the data's. */
export async function orNoMemory<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof HePoolFailure) && outOfMemory(err)) throw new HePoolFailure(`no memory for the HE work now: ${(err as Error).message}`);
    throw err;
  }
}

export class HePool {
  /** The pools of this process by parameters and keys: the clients of one worker share one (HePool.shared). */
  private static readonly registry = new Map<string, Promise<HePool>>();
  /** Its entry in the registry, when shared. */
  private sharedAs?: string;
  /** The nodes holding it: close() ends it when the last of them lets go. */
  private users = 1;
  private nextId = 1;
  private nextSumId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly threads: Thread[];
  /** When each thread slot's thread died, within the last DEATH_WINDOW_MS. */
  private readonly deaths: number[][];
  private closed = false;
  /** Set when a thread died too often to be replaced: every task then fails with it. */
  private failure?: string;
  /** Values per ciphertext, as the first thread up reported it (start waits for it). */
  private values = 0;
  /** Settled by the first thread to start its SEAL, or to fail to. */
  private readonly started: Promise<Started>;
  private settleStart!: { resolve: (started: Started) => void; reject: (err: Error) => void };
  readonly id: string;

  private constructor(
    private readonly script: string,
    private readonly workerData: WorkerData,
    threads: number,
  ) {
    this.id = paramsId(workerData.params);
    this.started = new Promise((resolve, reject) => (this.settleStart = { resolve, reject }));
    // Until then the threads keep the process up (they are unref'd when idle): start() is waited on.
    this.started.then(
      ({ perCiphertext }) => {
        this.values = perCiphertext;
        this.threads.forEach((t) => t.tasks.size || t.worker.unref());
      },
      () => undefined,
    );
    this.threads = Array.from({ length: threads }, (_, index) => this.spawn(index));
    this.deaths = this.threads.map(() => []);
  }

  /**
   * Starts the threads, and resolves once one has its SEAL up: rejects with SEAL's reason when the
   * parameters or keys do not fit (any thread's start error before one is up: a fault that hit only
   * one thread then fails the start too, as it would have failed a check on this thread). The threads
   * are a node's only SEAL instances but for making a key pair: a probe on the calling thread cost
   * each node another context (a third of a second at N=8192) and its memory.
   */
  static async start(params: HeParams, keys: KeyMaterial = {}, threads = Math.min(availableParallelism(), 4), options: PoolOptions = {}): Promise<HePool> {
    // A copy: replacement threads start from it, whatever the caller later does with its buffers.
    const workerData: WorkerData = structuredClone({ params, keys, testHooks: options.testHooks === true });
    const pool = new HePool(join(__dirname, 'worker.js'), workerData, Math.max(1, threads));
    try {
      await pool.started;
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** Whether it gave up (a thread kept dying): every task fails now. HePool.shared hands out none that did; a client's KeyHolder starts a fresh one. */
  get gaveUp(): boolean {
    return this.failure !== undefined;
  }

  get params(): HeParams {
    return this.workerData.params;
  }

  get perCiphertext(): number {
    return this.values;
  }

  /**
   * The process's pool for these parameters and keys, started if it has none: the nodes of one
   * process (several clients in one worker) share its threads rather than each starting its own,
   * which would multiply the SEAL instances (and their memory) by the clients. Each caller close()s
   * it once; the last close ends it.
   */
  static async shared(params: HeParams, keys: KeyMaterial = {}): Promise<HePool> {
    const name = createHash('sha256').update(JSON.stringify(params)).update(keys.publicKey ?? '').update('|').update(keys.secretKey ?? '').digest('hex');
    for (let entry = HePool.registry.get(name); entry; entry = HePool.registry.get(name)) {
      const held = await entry.catch(() => undefined);
      // One that gave up (threads that kept dying) is not handed out again: newcomers, and clients renewing theirs, start afresh.
      if (held && !held.closed && !held.gaveUp) {
        held.users++;
        return held;
      }
      if (HePool.registry.get(name) === entry) HePool.registry.delete(name);
    }
    const starting = HePool.start(params, keys).then((pool) => Object.assign(pool, { sharedAs: name }));
    HePool.registry.set(name, starting);
    starting.catch(() => HePool.registry.get(name) === starting && HePool.registry.delete(name));
    return starting;
  }

  private spawn(index: number): Thread {
    const worker = new Worker(this.script, { workerData: this.workerData });
    const thread: Thread = { index, worker, tasks: new Set(), gone: false };
    worker.on('message', (reply: Reply) => {
      if (reply.id === STARTED) {
        if (reply.error === undefined) this.settleStart.resolve(reply.result as Started);
        else this.settleStart.reject(new Error(reply.error));
        return;
      }
      const waiting = this.take(reply.id);
      if (reply.error !== undefined) waiting?.reject(reply.unable ? new HePoolFailure(`the HE thread ${index} could not do it: ${reply.error}`) : new Error(reply.error));
      else waiting?.resolve(reply.result);
    });
    // An uncaught error is followed by 'exit' (code 1); process.exit and terminate give 'exit' alone.
    worker.on('error', (err) => this.died(thread, `uncaught error: ${err instanceof Error ? err.message : String(err)}`));
    worker.on('exit', (code) => this.died(thread, `exit code ${code}`));
    if (this.values) worker.unref();
    return thread;
  }

  /** The task `id`, no longer waited for; its thread lets the process exit once it has none left. */
  private take(id: number): Pending | undefined {
    const waiting = this.pending.get(id);
    if (!waiting) return undefined;
    this.pending.delete(id);
    waiting.thread.tasks.delete(id);
    if (!waiting.thread.tasks.size && this.values) waiting.thread.worker.unref();
    return waiting;
  }

  /** Fails the tasks `thread` held, and replaces it unless it died too often (see MAX_DEATHS). */
  private died(thread: Thread, why: string): void {
    if (thread.gone || this.closed) return;
    thread.gone = true;
    const now = Date.now();
    const recent = [...this.deaths[thread.index].filter((t) => now - t < DEATH_WINDOW_MS), now];
    this.deaths[thread.index] = recent;
    const givingUp = recent.length >= MAX_DEATHS && this.failure === undefined;
    if (givingUp) {
      this.failure = `the HE pool gave up: its thread ${thread.index} died ${recent.length} times within ${DEATH_WINDOW_MS / 1000} s (last: ${why}), so it is not replaced again`;
    }
    const error = new HePoolFailure(`the HE thread ${thread.index} died (${why})${givingUp ? `; ${this.failure}` : ''}`);
    // Before any thread started: start() fails now rather than wait for threads no longer started.
    if (givingUp) this.settleStart.reject(error);
    for (const id of [...thread.tasks]) this.take(id)?.reject(error);
    // A pool that gave up (on this thread or another) starts no more threads.
    if (this.failure === undefined) this.threads[thread.index] = this.spawn(thread.index);
  }

  /** Tasks handed to the threads and not answered yet: how far behind HE work is (GET /metrics). */
  get queued(): number {
    return this.pending.size;
  }

  chunksFor(parameters: number): number {
    return Math.ceil(parameters / this.perCiphertext);
  }

  /** Chunk ranges [from, to) for each thread that gets work. */
  private ranges(chunks: number): [number, number][] {
    const per = Math.ceil(chunks / this.threads.length);
    const out: [number, number][] = [];
    for (let from = 0; from < chunks; from += per) out.push([from, Math.min(chunks, from + per)]);
    return out;
  }

  /**
   * Runs `task` on the thread now in slot `index`. `handOver`: the task's buffer is a copy made for it
   * (values sliced, ciphertexts packed), so it moves to the thread instead of being copied again.
   */
  private run<T>(index: number, task: PoolTask, handOver = false): Promise<T> {
    return this.runOn<T>(this.threads[index], task, handOver);
  }

  /** As run, on `thread` itself, failing if it died: a held sum's range lives there, and nowhere else. */
  private runOn<T>(thread: Thread, task: PoolTask, handOver = false): Promise<T> {
    if (this.closed) return Promise.reject(new HePoolFailure('the HE pool is closed'));
    if (this.failure !== undefined) return Promise.reject(new HePoolFailure(this.failure));
    if (thread.gone) return Promise.reject(new HePoolFailure(`the HE thread ${thread.index} died`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, thread });
      thread.tasks.add(id);
      thread.worker.ref();
      const moved = !handOver ? [] : 'values' in task ? [task.values.buffer as ArrayBuffer] : 'packed' in task ? [task.packed.packed] : [];
      try {
        thread.worker.postMessage({ ...task, id }, moved);
      } catch (err) {
        this.take(id);
        reject(new HePoolFailure(`the task could not be handed to the HE thread ${thread.index}: ${(err as Error).message}`));
      }
    });
  }

  /** For a HeldSum: an id for a new sum, unique in this pool (its nodes share the threads). */
  newSumId(): number {
    return this.nextSumId++;
  }

  /** For a HeldSum: the threads now in the slots, range i's in slot i (see ranges). */
  currentThreads(): readonly PoolThread[] {
    return [...this.threads];
  }

  /** For a HeldSum: how `chunks` ciphertexts are split between the slots. */
  rangesOf(chunks: number): [number, number][] {
    return this.ranges(chunks);
  }

  /** For a HeldSum: a task on `thread` itself, which holds its range of a sum (none if it was replaced). */
  runOnThread<T>(thread: PoolThread, task: PoolTask): Promise<T> {
    return this.runOn<T>(thread as Thread, task, 'packed' in task);
  }

  /** `noise`: distributed DP's share, added in the quantized packing's integer steps (Ckks.encrypt). */
  async encrypt(values: Float32Array | Float64Array, factor = 1, noise = 0): Promise<Uint8Array[]> {
    const parts = await orNoMemory(() =>
      Promise.all(
        this.ranges(this.chunksFor(values.length)).map(([from, to], i) =>
          this.run<Uint8Array[]>(i, { op: 'encrypt', values: values.slice(from * this.perCiphertext, to * this.perCiphertext), factor, first: from * this.perCiphertext, noise }, true),
        ),
      ),
    );
    return parts.flat();
  }

  /**
   * Makes ahead, in the threads, the encryptions of zero that encrypting `parameters` values will take
   * (public key only; see Ckks.prepare). Resolves with how many each thread holds. A thread replaced
   * after a death starts with none; encrypting does without.
   */
  async prepare(parameters: number): Promise<number[]> {
    // Shared, for two of the nodes holding it: they encrypt one after another (they train so), and the
    // next is made while one encrypts; more would hold a model's worth of ciphertexts per client.
    return Promise.all(this.ranges(this.chunksFor(parameters)).map(([from, to], i) => this.run<number>(i, { op: 'prepare', count: (to - from) * Math.min(this.users, 2) })));
  }

  async sum(lists: Uint8Array[][]): Promise<Uint8Array[]> {
    if (lists.some((l) => l.length !== lists[0].length)) throw new Error('ciphertext lists of different lengths');
    const chunks = lists[0]?.length ?? 0;
    const parts = await orNoMemory(() =>
      Promise.all(this.ranges(chunks).map(([from, to], i) => this.run<Uint8Array[]>(i, { op: 'sum', lists: lists.length, packed: pack(lists.flatMap((l) => l.slice(from, to))) }, true))),
    );
    return parts.flat();
  }

  async decrypt(chunks: Uint8Array[], parameters: number, factor = 1): Promise<Float64Array> {
    return orNoMemory(async () => {
      const out = new Float64Array(parameters);
      await Promise.all(
        this.ranges(chunks.length).map(async ([from, to], i) => {
          const count = Math.min(parameters, to * this.perCiphertext) - from * this.perCiphertext;
          const part = await this.run<Float64Array>(i, { op: 'decrypt', packed: pack(chunks.slice(from, to)), parameters: count, factor, first: from * this.perCiphertext }, true);
          out.set(part, from * this.perCiphertext);
        }),
      );
      return out;
    });
  }

  /**
   * Test only, in a pool started with { testHooks: true }: the thread now in slot `index` dies as it
   * reads this, by an uncaught error ('throw': the pool sees 'error', then 'exit') or by
   * process.exit(code) ('exit': 'exit' alone). Rejects as the thread's other tasks do.
   */
  crashThreadForTest(index: number, how: 'throw' | 'exit', code = 7): Promise<never> {
    if (!this.workerData.testHooks) return Promise.reject(new Error('crashThreadForTest needs a pool started with { testHooks: true }'));
    return this.run<never>(index, { op: 'crash', how, code });
  }

  async close(): Promise<void> {
    if (this.closed || --this.users > 0) return;
    const name = this.sharedAs;
    const entry = name === undefined ? undefined : HePool.registry.get(name);
    // Only its own entry: one that gave up may have been replaced by a fresh pool meanwhile.
    void entry?.then((pool) => pool === this && HePool.registry.get(name!) === entry && HePool.registry.delete(name!), () => undefined);
    this.closed = true;
    const error = new HePoolFailure('the HE pool was closed');
    for (const id of [...this.pending.keys()]) this.take(id)?.reject(error);
    for (const thread of this.threads) thread.gone = true;
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }
}

