/**
 * What the config push and the health checks say of the workers, turned into round-machine events:
 * the machine's Membership keeps the one record of each worker's health, which the round's choices,
 * the dashboard and /metrics all read. A worker whose role cannot work ends the experiment once too
 * few clients are left for a round.
 */
import type { Logger } from '../../log/logger';
import type { Event } from '../../protocol/aggregator/events';
import type { HealthState } from '../../protocol/aggregator/membership';
import type { RoundMachine } from '../../protocol/aggregator/machine';
import { quorum } from '../../config/quorum';

export interface HealthIo {
  machine: RoundMachine;
  dispatch(event: Event): void;
  /** A worker's health changed (the dashboard redraws). */
  changed(): void;
  /** An error the experiment cannot go on from. */
  fail(what: string, err: unknown): void;
  logger: Logger;
  print?: (line: string) => void;
}

export class WorkerHealthReports {
  constructor(private readonly io: HealthIo) {}

  down(address: string, reason = 'not answering'): void {
    this.io.dispatch({ type: 'node-down', node: address, reason });
    this.io.changed();
  }

  /** `resumed`: the same process answers again (it had hung); a client waiting then is selectable again at once. */
  up(address: string, how?: string, resumed = false): void {
    this.io.dispatch({ type: 'node-up', node: address, reason: how, resumed });
    this.io.changed();
  }

  /**
   * The push configured it: up, unless its role failed since (a check-in that did not fit, while
   * other pushes went on). The push is older news than that.
   */
  configured(address: string, detail: string): void {
    if (this.io.machine.members.healthOf(address)?.state === 'failed') return;
    this.up(address, `configured (${detail})`);
  }

  /** Its role cannot work: the experiment goes on without it while the quorum holds, and stops when it does not. */
  failed(address: string, reason: string, announce = true): void {
    this.io.dispatch({ type: 'node-down', node: address, reason, failed: true });
    this.goingOnWithout(address, announce);
  }

  /** The round machine left it out (it spoiled the sums): as for one whose role failed. */
  leftOut(address: string): void {
    this.goingOnWithout(address, true);
  }

  private goingOnWithout(address: string, announce: boolean): void {
    const { machine, logger, print } = this.io;
    this.io.changed();
    const { goal, minFraction } = machine.rules;
    const able = machine.members.notFailed();
    const needed = quorum(goal, minFraction);
    if (able.length < needed) {
      const failed = [...machine.members.records()].filter(([, said]) => said.state === 'failed');
      const why = failed.map(([worker, said]) => `  - ${worker}: ${said.reason}`).join('\n');
      this.io.fail('the experiment cannot go on', new Error(`${able.length} clients can still take part, a round needs ${needed}; out of the experiment:\n${why}`));
      return;
    }
    if (!announce) return;
    const line = `going on without ${address} (${able.length} clients can still take part, a round needs ${needed})`;
    logger.warn(line);
    print?.(line);
  }

  /** Each worker's health as last seen, for /metrics. */
  states(): ReadonlyMap<string, HealthState> {
    return new Map([...this.io.machine.members.records()].map(([address, said]) => [address, said.state]));
  }
}
