/** One HE worker thread: its own SEAL instance, answering encrypt, sum and decrypt tasks. */
import { parentPort, workerData } from 'node:worker_threads';
import { Ckks, type HeParams, type KeyMaterial } from './ckks';

export type Task =
  | { id: number; op: 'encrypt'; values: Float32Array | Float64Array; factor: number }
  | { id: number; op: 'sum'; lists: Uint8Array[][] }
  | { id: number; op: 'decrypt'; chunks: Uint8Array[]; parameters: number; factor: number }
  | { id: number; op: 'prepare'; count: number };

export type Reply = { id: number; result?: unknown; error?: string };

const { params, keys } = workerData as { params: HeParams; keys: KeyMaterial };
const ready = Ckks.create(params, keys);

function buffersOf(result: unknown): ArrayBuffer[] {
  const views = Array.isArray(result) ? result : [result];
  return [...new Set(views.filter((v): v is ArrayBufferView => ArrayBuffer.isView(v)).map((v) => v.buffer as ArrayBuffer))];
}

parentPort!.on('message', async (task: Task) => {
  try {
    const ckks = await ready;
    let result: unknown;
    if (task.op === 'encrypt') result = ckks.encrypt(task.values, task.factor);
    else if (task.op === 'sum') result = ckks.sum(task.lists);
    else if (task.op === 'prepare') result = ckks.prepare(task.count);
    else result = ckks.decrypt(task.chunks, task.parameters, task.factor);
    // Handed over, not copied: a 100k-parameter update is 3 MB of ciphertexts the thread no longer needs.
    parentPort!.postMessage({ id: task.id, result } satisfies Reply, buffersOf(result));
  } catch (err) {
    parentPort!.postMessage({ id: task.id, error: (err as Error)?.message ?? String(err) } satisfies Reply);
  }
});
