/**
 * Where the round is, as the aggregator shows it (status, dashboard, progress bars), and when each
 * of its stages began: the round machine's selection and training, then the steps of its tail
 * (aggregation, evaluation, checkpoint). Also how long the round waited for clients that never
 * reported: from the last update that made the sum (as its switch saw it) to the close.
 */
import type { RoundTimings } from '../../outputs';
import type { Stage } from '../../protocol/aggregator/events';

/** The machine's stages, with its closing shown step by step. */
export type RoundStage = Exclude<Stage, 'closing'> | TailStep;
export type TailStep = 'aggregation' | 'evaluation' | 'checkpoint';

export class RoundClock {
  private current: RoundStage = 'idle';
  private startedAt = 0;
  private readonly stageAt = new Map<RoundStage, number>();
  /** The latest moment an update in the sum reached its switch (or the aggregator). */
  private lastUseful = 0;

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
    if (stage === 'training') this.lastUseful = now;
    this.stageAt.set(stage, now);
    this.current = stage;
  }

  /** A report came in; its switch had waited `waitedMs` after its last update before forwarding. */
  reported(waitedMs = 0): void {
    this.lastUseful = Math.max(this.lastUseful, this.now() - waitedMs);
  }

  timings(missing: boolean): RoundTimings {
    const now = this.now();
    const at = (stage: RoundStage) => this.stageAt.get(stage) ?? now;
    const span = (from: RoundStage, to: RoundStage | undefined) => Math.max(0, Math.round((to ? at(to) : now) - at(from)));
    const closedAt = at('aggregation');
    const waiting = missing ? Math.max(0, Math.round(closedAt - this.lastUseful)) : 0;
    return {
      round_ms: Math.round(now - this.startedAt),
      selection_ms: span('selection', 'training'),
      training_ms: Math.max(0, span('training', 'aggregation') - waiting),
      waiting_ms: waiting,
      aggregation_ms: span('aggregation', 'evaluation'),
      evaluation_ms: span('evaluation', 'checkpoint'),
    };
  }
}
