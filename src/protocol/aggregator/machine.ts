/** Routes each event to the phase that handles it. No IO here: the aggregator role carries out the actions. */
import { onAggregated, onCheckpointed, onEvaluated } from './evaluation';
import { onDown, onUp } from './liveness';
import { onReport, onTrainingDeadline, onUndelivered, onWithheld, reportRefusal } from './reporting';
import { beginSelection, onCheckin, onSelectionDeadline } from './selection';
import { initialState, type Action, type Event, type RoundRules, type RoundState, type Topology } from './state';

export class RoundMachine {
  readonly state: RoundState = initialState();

  constructor(
    readonly rules: RoundRules,
    readonly topology: Topology,
    /** The round to start from (a resumed experiment starts after its last checkpoint). */
    firstRound = 1,
  ) {
    this.state.round = firstRound;
  }

  /** The refusal a report would get now, without handling it (to check before slow validation). */
  refusalFor(event: Extract<Event, { type: 'report' }>): Extract<Action, { type: 'refuse' }> | undefined {
    return reportRefusal(this.state, event);
  }

  handle(event: Event): Action[] {
    const { state, rules, topology } = this;
    switch (event.type) {
      case 'start':
        return state.stage === 'idle' ? beginSelection(state, rules, topology) : [];
      case 'checkin':
        return onCheckin(state, rules, topology, event.client);
      case 'deadline':
        return event.phase === 'selection'
          ? onSelectionDeadline(state, rules, topology, event.attempt)
          : onTrainingDeadline(state, rules, topology, event.attempt);
      case 'report':
        return onReport(state, rules, topology, event);
      case 'withheld':
        return onWithheld(state, rules, topology, event);
      case 'node-down':
        return onDown(state, rules, topology, event.node);
      case 'node-up':
        return onUp(state, rules, topology, event.node, event.resumed);
      case 'undelivered':
        return onUndelivered(state, rules, topology, event);
      case 'aggregated':
        return onAggregated(state, event.round);
      case 'evaluated':
        return onEvaluated(state, event.round);
      case 'checkpointed':
        return onCheckpointed(state, rules, topology, event.round);
    }
  }
}
