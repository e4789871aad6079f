/**
 * Where the round is, as the aggregator shows it (status, dashboard, progress bars), and when each
 * of its stages began: the round machine's selection and training, then the steps of its tail
 * (aggregation, evaluation, checkpoint). Also who held the round: its slowest clients, from the
 * median client's update to the last one in the sum (each as its switch saw it arrive), and the
 * clients that never reported, from the last update in the sum to the close.
 */
import type { RoundTimings } from '../../outputs';
import type { Stage } from '../../protocol/aggregator/events';
import { Arrivals, heldFields } from '../arrivals';

/** The machine's stages, with its closing shown step by step. */
export type RoundStage = Exclude<Stage, 'closing'> | TailStep;
export type TailStep = 'aggregation' | 'evaluation' | 'checkpoint';

export class RoundClock {
  private current: RoundStage = 'idle';
  private startedAt = 0;
  private readonly stageAt = new Map<RoundStage, number>();
  /** When the updates in the sum arrived, from the start of training. */
  private readonly arrivals = new Arrivals();

  constructor(private readonly now: () => number = () => performance.now()) {}

  get stage(): RoundStage {
    return this.current;
  }

  /** A stage begins; `newRound` when it is the first selection of a round (a retry keeps the round's start). */
  enter(stage: RoundStage, newRound = false): void {
    const now = this.now();
    if (newRound) {
      this.startedAt = now;
      this.stageAt.clear();
    }
    if (stage === 'training') this.arrivals.open(now);
    this.stageAt.set(stage, now);
    this.current = stage;
  }

  /** A report came in, with the updates of `clients` (Arrivals.took). */
  reported(waitedMs = 0, clients: readonly string[] = [], agesMs?: readonly number[]): void {
    this.arrivals.took(this.now(), clients, waitedMs, agesMs);
  }

  timings(missing: boolean): RoundTimings {
    const now = this.now();
    const at = (stage: RoundStage) => this.stageAt.get(stage) ?? now;
    const span = (from: RoundStage, to: RoundStage | undefined) => Math.max(0, Math.round((to ? at(to) : now) - at(from)));
    const closedAt = at('aggregation');
    const training = span('training', 'aggregation');
    const waiting = Math.min(training, this.arrivals.waitedUntil(closedAt, missing));
    const slowest = this.arrivals.slowest(training - waiting);
    const straggling = slowest?.ms ?? 0;
    return {
      round_ms: Math.round(now - this.startedAt),
      selection_ms: span('selection', 'training'),
      training_ms: training - waiting - straggling,
      ...heldFields(slowest),
      waiting_ms: waiting,
      aggregation_ms: span('aggregation', 'evaluation'),
      evaluation_ms: span('evaluation', 'checkpoint'),
    };
  }
}
