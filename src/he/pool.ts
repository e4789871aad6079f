/**
 * HE work off the event loop: a few worker threads, each with its own SEAL instance (the wasm build
 * is single-threaded), so a node keeps answering /health and requests while it encrypts or decrypts.
 * A model's ciphertexts are split between the threads by ranges, so all cores work on one update.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Ckks, type HeParams, type KeyMaterial } from './ckks';
import { pack, unpack, type Packed } from './packing';
import type { Reply, Task } from './worker';

type Pending = { resolve: (value: any) => void; reject: (err: Error) => void };
type Payload<T> = T extends unknown ? Omit<T, 'id'> : never;

export class HePool {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  private constructor(
    private readonly workers: Worker[],
    readonly perCiphertext: number,
    readonly params: HeParams,
    readonly id: string,
  ) {
    for (const worker of workers) {
      worker.on('message', (reply: Reply) => {
        const waiting = this.pending.get(reply.id);
        this.pending.delete(reply.id);
        if (reply.error !== undefined) waiting?.reject(new Error(reply.error));
        else waiting?.resolve(reply.result);
      });
      worker.on('error', (err) => this.failAll(err));
      worker.unref();
    }
  }

  static async start(params: HeParams, keys: KeyMaterial = {}, threads = Math.min(availableParallelism(), 4)): Promise<HePool> {
    // Checks the parameters and keys here, where a mistake is reported, not in a thread.
    const probe = await Ckks.create(params, keys);
    const { perCiphertext, id } = probe;
    probe.dispose();
    const script = join(__dirname, 'worker.js');
    const workers = Array.from({ length: Math.max(1, threads) }, () => new Worker(script, { workerData: { params, keys } }));
    return new HePool(workers, perCiphertext, params, id);
  }

  chunksFor(parameters: number): number {
    return Math.ceil(parameters / this.perCiphertext);
  }

  /** Chunk ranges [from, to) for each thread that gets work. */
  private ranges(chunks: number): [number, number][] {
    const per = Math.ceil(chunks / this.workers.length);
    const out: [number, number][] = [];
    for (let from = 0; from < chunks; from += per) out.push([from, Math.min(chunks, from + per)]);
    return out;
  }

  /**
   * `handOver`: the task's buffer is a copy made for it (values sliced, ciphertexts packed), so it
   * moves to the thread instead of being copied again.
   */
  private run<T>(worker: Worker, task: Payload<Task>, handOver = false): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the HE pool is closed'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      const moved = !handOver ? [] : 'values' in task ? [task.values.buffer as ArrayBuffer] : 'packed' in task ? [task.packed.packed] : [];
      worker.postMessage({ ...task, id }, moved);
    }).finally(() => {
      if (![...this.pending.keys()].length) worker.unref();
    });
  }

  async encrypt(values: Float32Array | Float64Array, factor = 1): Promise<Uint8Array[]> {
    const parts = await Promise.all(
      this.ranges(this.chunksFor(values.length)).map(([from, to], i) =>
        this.run<Packed>(this.workers[i], { op: 'encrypt', values: values.slice(from * this.perCiphertext, to * this.perCiphertext), factor }, true).then(unpack),
      ),
    );
    return parts.flat();
  }

  /**
   * Makes ahead, in the threads, the encryptions of zero that encrypting `parameters` values will take
   * (public key only; see Ckks.prepare). Resolves with how many each thread holds.
   */
  async prepare(parameters: number): Promise<number[]> {
    return Promise.all(this.ranges(this.chunksFor(parameters)).map(([from, to], i) => this.run<number>(this.workers[i], { op: 'prepare', count: to - from })));
  }

  async sum(lists: Uint8Array[][]): Promise<Uint8Array[]> {
    if (lists.some((l) => l.length !== lists[0].length)) throw new Error('ciphertext lists of different lengths');
    const chunks = lists[0]?.length ?? 0;
    const parts = await Promise.all(
      this.ranges(chunks).map(([from, to], i) =>
        this.run<Packed>(this.workers[i], { op: 'sum', lists: lists.length, packed: pack(lists.flatMap((l) => l.slice(from, to))) }, true).then(unpack),
      ),
    );
    return parts.flat();
  }

  async decrypt(chunks: Uint8Array[], parameters: number, factor = 1): Promise<Float64Array> {
    const out = new Float64Array(parameters);
    await Promise.all(
      this.ranges(chunks.length).map(async ([from, to], i) => {
        const count = Math.min(parameters, to * this.perCiphertext) - from * this.perCiphertext;
        const part = await this.run<Float64Array>(this.workers[i], { op: 'decrypt', packed: pack(chunks.slice(from, to)), parameters: count, factor }, true);
        out.set(part, from * this.perCiphertext);
      }),
    );
    return out;
  }

  private failAll(err: Error): void {
    for (const waiting of this.pending.values()) waiting.reject(err);
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.failAll(new Error('the HE pool was closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
