/**
 * The process's TensorFlow.js work, one piece at a time. The nodes of one process (several clients
 * in one worker) share its backend, and the engine's state (its scopes, the wasm heap) is the
 * process's: two models training at once would interleave on it batch by batch and each take twice
 * as long anyway. A turn waits for those asked before it; how long it waited is the client's
 * queueing on the shared core, which the round table shows.
 */
let last: Promise<void> = Promise.resolve();

/** `signal`: its node stopped meanwhile (a new config, a shutdown): its turn is skipped, not run for nobody. */
export async function inTurn<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<{ value: T; waitedMs: number }> {
  const asked = performance.now();
  const before = last;
  let done!: () => void;
  last = new Promise<void>((resolve) => (done = resolve));
  await before; // never rejects: each turn's promise is resolved, whatever its work did
  const waitedMs = performance.now() - asked;
  try {
    if (signal?.aborted) throw new Error('stopped before its turn');
    return { value: await work(), waitedMs };
  } finally {
    done();
  }
}
