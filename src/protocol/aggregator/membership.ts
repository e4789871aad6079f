/**
 * Who can take part, as the aggregator knows it: each worker's health as the health checks, the
 * push and the check-ins last saw it (the one record of it: the round's choices, the dashboard and
 * /metrics all read it here), and the clients that checked in and wait to be selected.
 */
import type { Topology } from '../../topology/tree';

export type HealthState = 'up' | 'down' | 'failed';

export interface Health {
  state: HealthState;
  /** When it came to this state (ISO time). */
  since: string;
  reason?: string;
}

export class Membership {
  private readonly health = new Map<string, Health>();
  /** Clients that checked in and wait to be selected, in arrival order, with the samples each holds. */
  private readonly pool = new Map<string, number>();
  /** Clients that were waiting when they went down: back in the pool if the same process answers again. */
  private readonly parked = new Map<string, number>();
  /** Nodes left out for spoiling sums: out for the rest of the experiment, whatever they answer (a restart is theirs to fake). */
  private readonly leftOut = new Set<string>();

  constructor(
    private readonly topology: Topology,
    private readonly now: () => string = () => new Date().toISOString(),
  ) {}

  healthOf(node: string): Health | undefined {
    return this.health.get(node);
  }

  /** Every worker something was said of (up, down or failed), with what was said last. */
  records(): ReadonlyMap<string, Health> {
    return this.health;
  }

  isDown(node: string): boolean {
    const state = this.health.get(node)?.state;
    return state === 'down' || state === 'failed';
  }

  /** A client is free for a round. It answered: it is up, whatever the last health check said. */
  checkIn(client: string, samples: number): void {
    if (this.isDown(client)) this.note(client, 'up', 'checked in');
    this.parked.delete(client);
    this.pool.set(client, samples);
  }

  /**
   * A worker stopped answering, or its role cannot work (`failed`). A client that dies loses its
   * check-in (it checks in again once started anew); one that only hung keeps it, parked, for when
   * it answers again. True when it was up until now.
   */
  down(node: string, reason: string, failed = false): boolean {
    const wasUp = !this.isDown(node);
    // A role that cannot work stays failed when it also stops answering: its reason is the one to show.
    if (failed || this.health.get(node)?.state !== 'failed') this.note(node, failed ? 'failed' : 'down', reason);
    const samples = this.pool.get(node);
    if (samples !== undefined) this.parked.set(node, samples);
    this.pool.delete(node);
    return wasUp;
  }

  /**
   * It answers again; `resumed`: the same process (it had hung). True when it was down until now. A
   * failed one (its role cannot work) answering again is still that process: only one started anew
   * is up again. One left out for spoiling sums is never up again.
   */
  up(node: string, reason?: string, resumed = false): boolean {
    if (this.leftOut.has(node) || (resumed && this.health.get(node)?.state === 'failed')) return false;
    const wasDown = this.isDown(node);
    this.note(node, 'up', reason);
    const samples = this.parked.get(node);
    this.parked.delete(node);
    if (wasDown && resumed && samples !== undefined && !this.pool.has(node)) this.pool.set(node, samples);
    return wasDown;
  }

  /** Found to spoil the round's sums: failed with why, for the rest of the experiment. */
  leaveOut(node: string, reason: string): void {
    this.down(node, reason, true);
    this.leftOut.add(node);
  }

  /** The clients waiting to be selected, in check-in order. */
  waiting(): string[] {
    return [...this.pool.keys()];
  }

  /** Those of the waiting clients that can take part now. */
  ready(): string[] {
    return this.canTakePart(this.pool.keys());
  }

  /** Selected: out of the pool, with the samples each said it holds. */
  take(clients: readonly string[]): Map<string, number> {
    const taken = new Map(clients.map((client) => [client, this.pool.get(client) ?? 0]));
    for (const client of clients) this.pool.delete(client);
    return taken;
  }

  /** Clients that can take part now: neither they nor a switch they report through is down. */
  canTakePart(clients: Iterable<string> = this.topology.clients): string[] {
    return this.topology.reachable(clients, (node) => this.isDown(node));
  }

  /** Clients neither failed themselves nor beneath a failed switch: those that may still take part. */
  notFailed(): string[] {
    return this.topology.reachable(this.topology.clients, (node) => this.health.get(node)?.state === 'failed');
  }

  private note(node: string, state: HealthState, reason?: string): void {
    this.health.set(node, { state, since: this.now(), reason });
  }
}
