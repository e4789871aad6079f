/**
 * How long this process may go silent while TensorFlow.js works: the longest single step it has
 * taken (a training batch, a scoring pass). A step runs on the event loop from end to end, so
 * nothing (a health check, a heartbeat's answer) is heard until it ends; a ResNet's batch of 32 takes
 * seconds on wasm. GET /health says it, and the aggregator waits that long (three times over) before
 * it counts a silent client as down (orchestrator/watch.ts).
 */
let longest = 0;
/** A step foreseen before one was taken (see guessStep); 0 once none is. */
let guess = 0;

/** What the record is of (a model and its batch): another starts it afresh. */
let recordOf = '';

/** Whether this process's steps are timed for `work` already; if not, the record starts afresh for it. */
export function stepsKnownFor(work: string): boolean {
  if (work === recordOf) return true;
  recordOf = work;
  longest = 0;
  guess = 0;
  return false;
}

/** Notes a step that held the event loop for `ms`. */
export function noteStep(ms: number): void {
  if (ms > longest) longest = ms;
}

/** A step not taken yet but about to be (a batch, from one sample's), said until it is taken; 0 clears it. */
export function guessStep(ms: number): void {
  guess = ms;
}

/** The longest step so far (or foreseen), in whole milliseconds; 0 before any. */
export function longestStepMs(): number {
  return Math.round(Math.max(longest, guess));
}

/** `work`, timed as one step. */
export function timedStep<T>(work: () => T): T {
  const started = performance.now();
  try {
    return work();
  } finally {
    noteStep(performance.now() - started);
  }
}
