/** One HE worker thread: its own SEAL instance, answering encrypt, sum and decrypt tasks, and keeping its range of running sums (held-sum.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { Ckks, type HeParams, type KeyMaterial } from './ckks';
import { handBack, unpack } from './packing';
import { outOfMemory, STARTED, type Reply, type Started, type Task } from './tasks';

const messageOf = (err: unknown) => (err as Error)?.message ?? String(err);

const { params, keys, testHooks } = workerData as { params: HeParams; keys: KeyMaterial; testHooks?: boolean };
const ready = Ckks.create(params, keys);
// A thread whose SEAL cannot start says why, then dies, whether or not tasks already wait on it (they
// are answered with the reason first), rather than answer every later task with the same error: the
// pool replaces it, and gives up on a thread that keeps dying.
ready.then(
  (ckks) => parentPort!.postMessage({ id: STARTED, result: { perCiphertext: ckks.perCiphertext } satisfies Started } satisfies Reply),
  (err) => {
    parentPort!.postMessage({ id: STARTED, error: messageOf(err) } satisfies Reply);
    process.nextTick(() => {
      throw err;
    });
  },
);

/** The running sums this thread keeps, by the pool's id for each (HeldSum), with how many updates each holds. */
const held = new Map<number, { ciphers: any[]; updates: number }>();

/** What one of the held-sum ops answers: nothing, or the sum (null when this thread holds none of it). */
function heldOp(ckks: Ckks, task: Extract<Task, { op: 'hold' | 'read-held' | 'drop-held' }>): Uint8Array[] | null | undefined {
  const sum = held.get(task.sum);
  if (task.op === 'read-held') return sum ? ckks.save(sum.ciphers) : null;
  if (task.op === 'drop-held' || (task.sign < 0 && sum?.updates === 1)) {
    // Taking out the only update it holds leaves nothing (SEAL would refuse the difference, an all-zero ciphertext).
    if (sum) ckks.free(sum.ciphers);
    return void held.delete(task.sum);
  }
  // Taking out what a dropped sum held: nothing is left to take it from.
  if (!sum && task.sign < 0) return undefined;
  const into = sum ?? { ciphers: [], updates: 0 };
  ckks.accumulate(into.ciphers, unpack(task.packed), task.sign);
  into.updates += task.sign;
  held.set(task.sum, into);
  return undefined;
}

/** `count` lists of equal length from one flat list. */
function regroup(flat: Uint8Array[], count: number): Uint8Array[][] {
  const each = flat.length / count;
  return Array.from({ length: count }, (_, k) => flat.slice(k * each, (k + 1) * each));
}

/** What an answer hands over: the ciphertexts it made (encrypt, sum, read-held), or the values it decrypted. */
function buffersOf(result: unknown): ArrayBuffer[] {
  if (Array.isArray(result)) return handBack(result);
  return ArrayBuffer.isView(result) ? [result.buffer as ArrayBuffer] : [];
}

/** Dies at once, outside any task's try, as a thread does on a bug or an abort. */
function crash(task: Extract<Task, { op: 'crash' }>): void {
  if (!testHooks) {
    parentPort!.postMessage({ id: task.id, error: "the 'crash' op is honoured only in a pool started with { testHooks: true }" } satisfies Reply);
    return;
  }
  if (task.how === 'exit') process.exit(task.code);
  throw new Error('crashed on purpose (test hook)');
}

async function answer(task: Exclude<Task, { op: 'crash' }>): Promise<void> {
  let ckks: Ckks;
  try {
    ckks = await ready;
  } catch (err) {
    return void parentPort!.postMessage({ id: task.id, error: messageOf(err), unable: true } satisfies Reply);
  }
  try {
    let result: unknown;
    if (task.op === 'encrypt') result = ckks.encrypt(task.values, task.factor, task.first, task.noise);
    else if (task.op === 'sum') result = ckks.sum(regroup(unpack(task.packed), task.lists));
    else if (task.op === 'prepare') result = ckks.prepare(task.count);
    else if (task.op === 'hold' || task.op === 'read-held' || task.op === 'drop-held') result = heldOp(ckks, task);
    else result = ckks.decrypt(unpack(task.packed), task.parameters, task.factor, task.first);
    // Handed over, not copied: a 100k-parameter update is 3 MB of ciphertexts the thread no longer needs.
    parentPort!.postMessage({ id: task.id, result } satisfies Reply, buffersOf(result));
  } catch (err) {
    // Memory this thread could not have is no fault of the ciphertexts it was given.
    parentPort!.postMessage({ id: task.id, error: messageOf(err), ...(outOfMemory(err) ? { unable: true } : {}) } satisfies Reply);
  }
}

parentPort!.on('message', (task: Task) => (task.op === 'crash' ? crash(task) : void answer(task)));
