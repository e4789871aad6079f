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

/** What the record was timed for (a model and its batch); '' before it was. */
let timedFor = '';

/** Whether this process's steps were timed for `work` (a model and the batch it trains). */
export function stepsTimedFor(work: string): boolean {
  return work === timedFor;
}

/** Times `measure` as the steps of `work`, the record started afresh; it counts as timed once `measure` succeeds. */
export async function timeStepsFor(work: string, measure: () => Promise<void>): Promise<void> {
  timedFor = '';
  longest = 0;
  guess = 0;
  await measure();
  timedFor = work;
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
