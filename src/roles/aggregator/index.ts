/**
 * The aggregator role, as wiring: HTTP calls and health reports become round-machine events, which
 * `RoundExecutor` carries out; `Notices` reads check-ins (judged by `CheckIns`), declines and
 * withheld notices, `readInbound` the updates that go into the round's accumulator; `prepare` sets up the model, keys and strategy; `RoundTail` closes each round
 * (aggregate, evaluate, checkpoint); `RoundClock` says where the round is and what each stage took.
 */
import { plannedRounds, PrivacyLedger } from '../../privacy/dp';
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { CHECKPOINTS_DIR, CheckpointStore, type Checkpoint } from '../../checkpoint';
import { describeIssues } from '../../config/issues';
import type { AggregatorNodeConfig } from '../../config/node-config';
import { selectedPerRound } from '../../config/quorum';
import { logBatchSchema } from '../../log/central';
import { ClusterLog, type WorkerRole } from '../../log/cluster-log';
import { actingAsItself } from '../../net/callers';
import { HttpError, refused } from '../../net/errors';
import type { Caller } from '../../net/identity';
import { ExperimentOutputs, type RoundMetrics } from '../../outputs';
import type { HealthState } from '../../protocol/aggregator/membership';
import { RoundMachine } from '../../protocol/aggregator/machine';
import { leastToForward } from '../../protocol/switch';
import { Topology } from '../../topology/tree';
import { plainLimits, updateKinds } from '../../wire/receive';
import { askToEvaluate } from '../federated-evaluation';
import { Role, type NodeContext } from '../role';
import { CheckIns } from './checkins';
import { WorkerHealthReports } from './health';
import { RoundExecutor } from './executor';
import { readInbound } from './inbound';
import { Notices } from './notices';
import { prepare, restore, type Prepared } from './preparation';
import type { RoundStage } from './round-clock';
import { Rounds } from './rounds';
import { statusView, type Change } from './view';

export { CHECKPOINTS_DIR, KEY_PAIR_FILE, type CheckpointHeader } from '../../checkpoint';
export type { Health as WorkerHealth } from '../../protocol/aggregator/membership';

export interface ExperimentSummary {
  experiment: string;
  rounds: RoundMetrics[];
  outputs: string;
}

export type { Change } from './view';

export class AggregatorRole extends Role<AggregatorNodeConfig> {
  readonly topology = new Topology(this.config.address, this.config.tree);
  readonly machine: RoundMachine;
  readonly outputs: ExperimentOutputs;
  readonly checkpoints: CheckpointStore;
  /** Resolves when the last round is checkpointed. */
  readonly finished: Promise<ExperimentSummary>;
  /** Every worker of the experiment, by address, with its role. */
  readonly workers: ReadonlyMap<string, WorkerRole>;
  /** Every worker's records, shipped here as rounds finish. */
  readonly cluster: ClusterLog;
  readonly checkins = new CheckIns(this.config.settings);
  /** POST /a/checkin, /a/declined, /a/withheld. */
  readonly notices: Notices;
  /** What the push and the health checks say of the workers. */
  readonly health: WorkerHealthReports;
  readonly changes = new EventEmitter<{ change: [Change] }>();
  private resolveFinished!: (summary: ExperimentSummary) => void;
  private rejectFinished!: (err: Error) => void;
  private readonly executor: RoundExecutor;
  private prepared?: Prepared;
  /** The round's work: models down, switches opened, the tail, the clock. */
  private readonly rounds: Rounds;
  private done = false;

  constructor(
    config: AggregatorNodeConfig,
    node: NodeContext,
    /** A checkpoint to go on from (`agg --resume`); without one the experiment starts over. */
    private readonly resumeFrom?: Checkpoint,
  ) {
    super(config, node);
    const { settings } = this.config;
    const rules = {
      rounds: plannedRounds(settings),
      goal: selectedPerRound(settings, this.topology.clients.length),
      wanted: Math.min(settings.clients_per_round ?? this.topology.clients.length, this.topology.clients.length),
      minFraction: settings.min_report_fraction,
      deadlineMs: settings.timeouts.round_ms,
      session: randomBytes(4).toString('hex'),
      leastPerSwitch: leastToForward(settings.he, true),
      stragglers: settings.stragglers,
    };
    // The strategy chooses among the ready clients; it exists once the role has prepared.
    const select = (round: number, ready: readonly string[], goal: number) => this.prepared!.strategy.selectClients(round, ready, goal);
    this.machine = new RoundMachine(rules, this.topology, select, (resumeFrom?.round ?? 0) + 1);
    this.outputs = new ExperimentOutputs(node.outputsDir, this.config.experiment);
    this.checkpoints = new CheckpointStore(join(this.outputs.dir, CHECKPOINTS_DIR));
    const isStopped = () => this.isStopped;
    this.rounds = new Rounds({
      config: this.config,
      parameters: this.parameters,
      machine: this.machine,
      prepared: () => this.prepared!,
      iterations: this.iterations,
      outputs: this.outputs,
      checkpoints: this.checkpoints,
      changes: this.changes,
      print: node.print,
      isStopped,
      finish: () => this.finish(),
      fail: (what, err) => this.fail(what, err),
      leaveOut: (node) => this.health.leftOut(node),
      ticketOf: (client) => this.checkins.ticketOf(client),
    });
    const io = { peers: node.peers, logger: node.logger, signal: this.abort.signal, print: node.print, isStopped };
    this.executor = new RoundExecutor(this.machine, { ...io, after: (ms, fn) => this.after(ms, fn), cancel: (timer) => this.cancel(timer) }, this.rounds);
    this.workers = new Map([...this.topology.switches.map((s) => [s, 'switch'] as const), ...this.topology.clients.map((c) => [c, 'client'] as const)]);
    this.cluster = new ClusterLog(node.logsDir, this.config.experiment, this.workers, resumeFrom !== undefined, (message) => node.logger.warn(message));
    this.health = new WorkerHealthReports({
      machine: this.machine,
      dispatch: (event) => this.executor.dispatch(event),
      changed: () => this.changes.emit('change', 'health'),
      fail: (what, err) => this.fail(what, err),
      logger: node.logger,
      print: node.print,
    });
    this.notices = new Notices({ machine: this.machine, dispatch: (event) => this.executor.dispatch(event), checkins: this.checkins, health: this.health, prepared: () => this.prepared });
    this.changes.setMaxListeners(0); // one per dashboard page open
    this.finished = new Promise((resolve, reject) => {
      this.resolveFinished = resolve;
      this.rejectFinished = reject;
    });
    this.finished.catch(() => undefined); // observed by whoever awaits it; not an unhandled rejection
  }

  override start(): void {
    void this.prepare()
      .then(() => {
        if (this.isStopped) return;
        if (this.machine.round > this.machine.rules.rounds || this.budgetSpent()) this.finish();
        else this.executor.dispatch({ type: 'start' });
      })
      .catch((err) => this.fail('the aggregator failed to prepare', err));
  }

  /** Resumed after the DP budget stopped the run (rounds run again had released more): nothing is left to run. */
  private budgetSpent(): boolean {
    const { settings } = this.config;
    return settings.dp !== undefined && this.outputs.rows.length > 0 && !PrivacyLedger.fromRows(settings, this.outputs.rows).affordsAnother();
  }

  get backend(): string | undefined {
    return this.prepared?.backend;
  }

  get isFinished(): boolean {
    return this.done;
  }

  /** Where the round is, as the dashboard and /a/status show it. */
  get stage(): RoundStage {
    return this.rounds.stage;
  }

  /** The workers whose updates are in the latest aggregated round: switches, and clients in their sums. */
  get participants(): string[] {
    return this.rounds.participants;
  }

  /** Each client's samples per class, as it said at check-in: the report's class chart. */
  get histograms(): ReadonlyMap<string, number[]> {
    return this.checkins.histograms;
  }

  override peerHealth(): ReadonlyMap<string, HealthState> {
    return this.health.states();
  }

  override heQueueDepth(): number {
    return this.prepared?.he?.pool.queued ?? 0;
  }

  // ---- HTTP ----

  /** POST /a/logs: a worker's iteration entries, warnings and errors (central logging). */
  receiveLogs(body: unknown, caller: Caller): { taken: number; duplicates: number } {
    const parsed = logBatchSchema.safeParse(body);
    if (!parsed.success) throw new HttpError(400, 'invalid log batch', 'the batch failed validation; nothing was written', describeIssues(parsed.error.issues));
    actingAsItself(caller, 'the batch\'s address', parsed.data.address);
    const outcome = this.cluster.receive(parsed.data);
    if (outcome.taken) this.changes.emit('change', 'logs');
    return outcome;
  }

  status() {
    return statusView(this);
  }

  /** GET /a/he/public-key: what clients encrypt with when the aggregator holds the key. */
  publicKey(): Buffer {
    const he = this.config.settings.he;
    if (!he.enabled || he.key_holder !== 'aggregator') throw new HttpError(404, 'not found', 'this experiment has no aggregator-held HE key');
    const key = this.prepared?.he?.publicKey;
    if (!key) throw new HttpError(503, 'not ready', 'the aggregator is still making its keys');
    return Buffer.from(key);
  }

  /** POST /a/receive: a switch's weighted sum, or a direct client's update. */
  async receive(body: unknown, caller: Caller): Promise<{ round: number }> {
    const prepared = this.prepared;
    if (!prepared) throw new HttpError(503, 'not ready', 'the aggregator is still preparing');
    const { update, sum } = updateKinds(this.config.settings);
    const he = prepared.he && { id: prepared.he.id, chunks: prepared.he.chunks };
    const expect = { kinds: [sum, update], update, modelId: prepared.modelId, parameters: this.parameters, he, limits: plainLimits(this.config.settings.he) };
    const { report, arrival, waitedMs, agesMs } = readInbound(body, expect, this.topology, caller);
    await prepared.accumulator.add(arrival, {
      check: () => {
        const refusal = this.machine.refusalFor(report);
        if (refusal) throw refused(refusal);
      },
      commit: (store) =>
        this.executor.dispatch(report, () => {
          store();
          this.rounds.reported(waitedMs, report.clients, agesMs);
        }),
    });
    return { round: report.round };
  }

  // ---- preparing, and resuming ----

  private async prepare(): Promise<void> {
    if (!this.resumeFrom) {
      // Starting over: an earlier run's checkpoints and rounds must not mix with this one's.
      this.checkpoints.clear();
      this.outputs.clearRounds();
      this.iterations.keepRounds(0);
    }
    const prepared = await prepare({
      settings: this.config.settings,
      parameters: this.parameters,
      checkpointsDir: this.checkpoints.dir,
      resuming: this.resumeFrom !== undefined,
      isStopped: () => this.isStopped,
      askToEvaluate: (round, message, clients) => this.askToEvaluate(round, message, clients),
      clientsUp: () => this.machine.members.canTakePart(),
      // Its share of the shared held-out digits, or a tenth of its own data: never more than it trains on, or its share.
      scoreCap: (client) => Math.max(this.checkins.samplesOf(client) ?? 0, Math.ceil(this.config.settings.data.test_size / this.topology.clients.length) + 1),
      log: (line) => this.node.logger.info(line),
    });
    if (!prepared) return;
    this.prepared = prepared;
    // Clients that checked in while this node prepared: their models are checked now.
    for (const [client, reason] of this.checkins.otherModels(prepared.modelId)) this.health.failed(client, reason);
    if (this.resumeFrom) this.resume(prepared, this.resumeFrom);
    this.node.logger.info(prepared.summary);
    this.node.print?.(prepared.summary);
  }

  private resume(prepared: Prepared, checkpoint: Checkpoint): void {
    const { rows, counted } = restore(prepared, checkpoint);
    this.outputs.restoreRounds(rows as RoundMetrics[]);
    this.rounds.restoreCounted(counted ?? {});
    this.iterations.keepRounds(checkpoint.round);
    const line = `resumed from ${checkpoint.file}: ${checkpoint.round} rounds done, going on with round ${checkpoint.round + 1}`;
    this.node.logger.info(line);
    this.node.print?.(line);
  }

  /** The sealed model goes once to each switch under the aggregator, which asks the clients beneath it. */
  private askToEvaluate(round: number, message: Buffer, clients: string[]) {
    const within = this.config.settings.timeouts.request_ms;
    return askToEvaluate(this.node, this.abort.signal, round, message, clients, (client) => this.topology.reporterOf(client), within);
  }

  finish(): void {
    this.done = true;
    this.changes.emit('change', 'stage');
    this.node.logger.info(`experiment ${this.config.experiment} finished after ${this.outputs.rows.length} rounds`);
    this.resolveFinished({ experiment: this.config.experiment, rounds: this.outputs.rows, outputs: this.outputs.dir });
  }

  /** An error the experiment cannot go on from: logged, and the experiment ends with it. */
  fail(what: string, err: unknown): void {
    this.node.logger.error(`${what}: ${(err as Error)?.stack ?? err}`);
    this.cluster.flush(); // the process may end now, without close()
    this.rejectFinished(new Error(`${what}: ${(err as Error)?.message ?? err}`));
  }

  protected override async close(): Promise<void> {
    this.cluster.flush(); // the workers' .json copies, from their journals: before a forced exit can come
    try {
      await super.close();
    } finally {
      this.cluster.flush(); // and what came meanwhile
    }
    this.prepared?.model.dispose();
    this.prepared?.accumulator.close(); // frees the sum its HE threads keep: the pool may be shared on
    await this.prepared?.he?.pool.close();
  }
}
