/**
 * What the dashboard shows, read off the running aggregator: settings, topology and health, the
 * round in flight, the rounds so far, each node's costs, and the charts' specs with their data.
 */
import type { AggregatorRole, WorkerHealth } from '../roles/aggregator';
import { roundView } from '../roles/aggregator/view';
import { accuracyChart, bytesChart, phaseChart, roundsChart, type ChartName, type ChartSpec } from '../report/charts';
import { nodeRounds, type NodeRound } from '../report/data';
import { describeSettings } from '../report/report';
import type { RoundMetrics } from '../outputs';

/** The rounds the per-node views cover: the last few show what a round costs now. */
export const RECENT_ROUNDS = 5;

export interface DashboardNode {
  address: string;
  role: 'client' | 'switch' | 'aggregator';
  health: WorkerHealth | null;
  /** Its latest round's costs, once it shipped one. */
  last: NodeRound | null;
}

export interface DashboardState {
  experiment: string;
  aggregator: string;
  settings: [string, string][];
  encrypted: boolean;
  stage: string;
  round: number;
  rounds: number;
  rounds_done: number;
  finished: boolean;
  /** The round in flight: clients selected, and those whose update their switch took. */
  selected: number;
  reported: number;
  nodes: DashboardNode[];
  rows: RoundMetrics[];
  charts: Record<ChartName, ChartSpec>;
  updated_at: string;
}

export function dashboardState(role: AggregatorRole): DashboardState {
  const { config, outputs } = role;
  const rows = outputs.rows;
  const workers = role.cluster.records();
  const perNode = nodeRounds(config.address, rows, workers);
  const recentFrom = Math.max(1, (rows[rows.length - 1]?.round ?? 0) - RECENT_ROUNDS + 1);
  const recent = perNode.filter((r) => r.round >= recentFrom);

  const lastOf = new Map<string, NodeRound>();
  for (const r of perNode) if ((lastOf.get(r.node)?.round ?? 0) <= r.round) lastOf.set(r.node, r);
  const roles: [string, DashboardNode['role']][] = [[config.address, 'aggregator'], ...role.workers];
  const nodes = roles.map(([address, type]) => ({
    address,
    role: type,
    health: type === 'aggregator' ? { state: 'up' as const, since: '', reason: 'this process' } : (role.machine.members.healthOf(address) ?? null),
    last: lastOf.get(address) ?? null,
  }));

  const { accuracy: _, ...progress } = roundView(role, workers);
  return {
    experiment: config.experiment,
    aggregator: config.address,
    settings: [...describeSettings(config.settings, role.workers, undefined, config.attackers), ...spentSoFar(rows, config.settings.dp?.delta)],
    encrypted: config.settings.he.enabled,
    ...progress,
    nodes,
    rows,
    charts: {
      accuracy: accuracyChart(rows),
      rounds: roundsChart(rows, outputs.events()),
      bytes: bytesChart(perNode.filter((r) => r.round > (rows[rows.length - 1]?.round ?? 0) - 2 * RECENT_ROUNDS)),
      phases: phaseChart(recent, `Time per phase (mean of the last ${RECENT_ROUNDS} rounds)`),
    },
    updated_at: new Date().toISOString(),
  };
}

/** With DP on: what the run has spent so far, beside the settings. */
function spentSoFar(rows: readonly RoundMetrics[], delta: number | undefined): [string, string][] {
  const last = rows[rows.length - 1];
  return delta !== undefined && last?.epsilon !== undefined ? [['privacy spent', `ε ${last.epsilon.toFixed(2)} at δ ${delta} after ${rows.length} rounds`]] : [];
}
