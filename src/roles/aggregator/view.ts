/** What the aggregator shows of itself: GET /a/status, and the round the dashboard and progress bars follow. */
import type { NodeRecords } from '../../log/cluster-log';
import { chainOf } from '../../protocol/aggregator/state';
import type { AggregatorRole } from './index';

export function statusView(role: AggregatorRole) {
  const { switches, clients, experiment, settings } = role.config;
  const { stage, round, pool, selected, reported, retries, attempt, down } = role.machine.state;
  return {
    role: 'aggregator',
    experiment,
    stage,
    round,
    rounds: settings.rounds,
    strategy: settings.training.strategy,
    waiting_clients: pool.length,
    selected: selected.length,
    reports: reported.size,
    retries,
    attempt,
    down: [...down],
    failed: Object.fromEntries(role.failed),
    switches,
    clients: Object.keys(clients).length,
    backend: role.backend ?? null,
    last: role.outputs.rows.at(-1) ?? null,
    rounds_done: role.outputs.rows.length,
  };
}

/** Each worker with what it last said: for lines that name who a round waits for. */
export function describeWorkers(role: AggregatorRole, addresses: string[]): string {
  if (!addresses.length) return 'no one in particular';
  const { topology } = role.machine;
  const { pool } = role.machine.state;
  const why = (reason?: string) => reason ?? 'no reason given';
  return addresses
    .map((address) => {
      const said = role.health.get(address);
      const upstream = chainOf(topology, address).find((sw) => role.health.get(sw) && role.health.get(sw)!.state !== 'up');
      const behind = upstream ? role.health.get(upstream) : undefined;
      if (said && said.state !== 'up') return `${address} (${said.state}: ${why(said.reason)})`;
      if (behind) return `${address} (its switch ${upstream} is ${behind.state}: ${why(behind.reason)})`;
      if (pool.includes(address)) return `${address} (ready)`;
      return `${address} (up${said?.reason ? `, ${said.reason}` : ''}; has not checked in)`;
    })
    .join(', ');
}

/** Where the experiment stands: for the page's header and the command line's progress bars. */
export function roundView(role: AggregatorRole, records: readonly NodeRecords[] = role.cluster.records()) {
  const { stage, round, selected } = role.machine.state;
  const rows = role.outputs.rows;
  const selectedSet = new Set(selected);
  // A client's shipped entry for this round says whether its switch took the update.
  const reported = records.filter((w) => selectedSet.has(w.address) && w.iteration.some((e) => e.round === round && e.outcome === 'accepted')).length;
  return {
    stage,
    round: Math.min(round, role.config.settings.rounds),
    rounds: role.config.settings.rounds,
    rounds_done: rows.length,
    finished: role.isFinished,
    selected: selected.length,
    reported,
    accuracy: rows[rows.length - 1]?.accuracy ?? null,
  };
}
