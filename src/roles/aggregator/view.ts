/**
 * What the aggregator shows of itself: GET /a/status, the round the dashboard and progress bars
 * follow, the workers named in lines that say who a round waits for, and the console's round line.
 */
import { plannedRounds } from '../../privacy/dp';
import type { AggregatorNodeConfig } from '../../config/node-config';
import type { ClusterLog, NodeRecords } from '../../log/cluster-log';
import { recordWords, type EventRecord, type ExperimentOutputs, type RoundMetrics } from '../../outputs';
import type { RoundMachine } from '../../protocol/aggregator/machine';
import type { RoundStage } from './round-clock';

/** What changed, for whoever shows the experiment live (dashboard, progress bars). */
export type Change = 'stage' | 'round' | 'logs' | 'health';

/** What the views read off the aggregator role. */
export interface Observed {
  config: AggregatorNodeConfig;
  machine: RoundMachine;
  outputs: ExperimentOutputs;
  cluster: ClusterLog;
  stage: RoundStage;
  isFinished: boolean;
  backend: string | undefined;
}

export function statusView(role: Observed) {
  const { config, machine, outputs } = role;
  const { topology, members } = machine;
  const health = [...members.records()];
  return {
    role: 'aggregator',
    experiment: config.experiment,
    stage: role.stage,
    round: machine.round,
    rounds: plannedRounds(config.settings),
    strategy: config.settings.training.strategy,
    waiting_clients: members.waiting().length,
    selected: machine.selected.length,
    reports: machine.reports,
    retries: machine.retries,
    attempt: machine.attempt,
    down: health.filter(([, said]) => said.state !== 'up').map(([address]) => address),
    failed: Object.fromEntries(health.filter(([, said]) => said.state === 'failed').map(([address, said]) => [address, said.reason])),
    switches: Object.fromEntries(topology.switches.map((sw) => [sw, topology.upstreamOf(sw)])),
    clients: topology.clients.length,
    backend: role.backend ?? null,
    last: outputs.rows.at(-1) ?? null,
    rounds_done: outputs.rows.length,
  };
}

/** Each worker with what it last said: for lines that name who a round waits for. */
export function describeWorkers(machine: RoundMachine, addresses: string[]): string {
  if (!addresses.length) return 'no one in particular';
  const { topology, members } = machine;
  const waiting = members.waiting();
  const why = (reason?: string) => reason ?? 'no reason given';
  return addresses
    .map((address) => {
      const said = members.healthOf(address);
      const upstream = topology.chainOf(address).find((sw) => members.healthOf(sw) && members.healthOf(sw)!.state !== 'up');
      const behind = upstream ? members.healthOf(upstream) : undefined;
      if (said && said.state !== 'up') return `${address} (${said.state}: ${why(said.reason)})`;
      if (behind) return `${address} (its switch ${upstream} is ${behind.state}: ${why(behind.reason)})`;
      if (waiting.includes(address)) return `${address} (ready)`;
      return `${address} (up${said?.reason ? `, ${said.reason}` : ''}; has not checked in)`;
    })
    .join(', ');
}

/** The round in hand and its stage, no more: what the testbed's schedule follows, cheap to ask often (GET /dashboard/round). */
export function roundProgress(role: Observed) {
  return { experiment: role.config.experiment, round: role.machine.round, rounds: plannedRounds(role.config.settings), stage: role.stage, finished: role.isFinished };
}

/** Where the experiment stands: for the page's header and the command line's progress bars. */
export function roundView(role: Observed, records: readonly NodeRecords[] = role.cluster.records()) {
  const { machine, config } = role;
  const rows = role.outputs.rows;
  const selected = new Set(machine.selected);
  const round = machine.round;
  // A client's shipped entry for this round says whether its switch took the update.
  const reported = records.filter((w) => selected.has(w.address) && w.iteration.some((e) => e.round === round && e.outcome === 'accepted')).length;
  return {
    stage: role.stage,
    round: Math.min(round, plannedRounds(config.settings)),
    rounds: plannedRounds(config.settings),
    rounds_done: rows.length,
    finished: role.isFinished,
    selected: selected.size,
    reported,
    accuracy: rows[rows.length - 1]?.accuracy ?? null,
  };
}

/** The line the console prints for each round. */
export function roundLine(m: RoundMetrics, rounds: number, events: readonly EventRecord[] = []): string {
  const waiting = m.waiting_ms ? `  (${(m.waiting_ms / 1000).toFixed(1)} s waiting for ${m.missing.length} missing)` : '';
  // A slowest client that held the round a second or more past the median one.
  const held = m.held_by && (m.straggling_ms ?? 0) >= 1000 ? `  (held ${(m.straggling_ms! / 1000).toFixed(1)} s by ${m.held_by})` : '';
  const attacked = m.attackers?.length ? `  [${m.attackers.length} attacking]` : '';
  const partly = m.scored_by ? `  (scored by ${m.scored_by.clients} of ${m.scored_by.of} clients)` : '';
  const privacy = m.epsilon !== undefined ? `  ε ${m.epsilon.toFixed(2)}` : '';
  // What the testbed's schedule did as the round went: its cost is in this line.
  const scheduled = events.length ? `  [schedule: ${events.map(recordWords).join('; ')}]` : '';
  return (
    `round ${String(m.round).padStart(3)}/${rounds}  accuracy ${(m.accuracy * 100).toFixed(2)}%  loss ${m.loss.toFixed(4)}${partly}  ` +
    `${m.clients} clients  ${(m.round_ms / 1000).toFixed(1)} s  up ${(m.bytes_up / 1e6).toFixed(1)} MB  down ${(m.bytes_down / 1e6).toFixed(1)} MB${privacy}${held}${waiting}${attacked}${scheduled}`
  );
}
