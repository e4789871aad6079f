/** What every role shares: its config, the node's tools, and a clean stop. */
import { setMaxListeners } from 'node:events';
import { type NodeConfig, type RoleType } from '../config/node-config';
import { vectorLength } from '../model/layout';
import type { Logger } from '../log/logger';
import { IterationLog } from '../log/iteration-log';
import { LogShipper } from '../log/shipper';
import { parseAddress } from '../config/address';
import { linkCounterFor } from '../net/link-counters';
import { describeFailure } from '../net/peers';
import type { Credentials } from '../net/identity';
import type { Peers } from '../net/peers';
import type { NodeMetrics, PeerState, RoleReadings } from '../net/metrics';
import type { TlsMaterial } from '../net/tls';
import type { WireMeter } from '../net/wire-meter';

export const ROLE_PREFIX: Record<RoleType, string> = { client: '/c', switch: '/s', aggregator: '/a' };

/** What a node gives the role it mounts. */
export interface NodeContext {
  nodeId: string;
  /** Who this node is, and how it knows its callers. */
  credentials: Credentials;
  logger: Logger;
  peers: Peers;
  meter: WireMeter;
  /** What GET /metrics shows; each role counts its rounds in it. */
  metrics: NodeMetrics;
  logsDir: string;
  outputsDir: string;
  /** Where a client finds the HE secret key when clients hold it (--he-key). */
  heKeyFile?: string;
  /** Progress lines for the person running the node (the aggregator prints each round). */
  print?: (line: string) => void;
  /** This node's CA, certificate and key under mutual TLS; absent: plain HTTP. */
  tls?: TlsMaterial;
}

export abstract class Role<C extends NodeConfig = NodeConfig> implements RoleReadings {
  /** The experiment's vector, from its settings: every model and update carries this many values (model/layout.ts). */
  readonly parameters: number;
  /** Whether updates travel encrypted (CKKS). */
  readonly encrypted: boolean;
  readonly iterations: IterationLog;
  /** Workers send their records to the aggregator's central log; the aggregator keeps its own. */
  protected readonly shipper?: LogShipper;
  protected readonly abort = new AbortController();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private stopping?: Promise<void>;
  private failureReason?: string;
  /** The preparation `start` began (data, model, keys): settled once the role can work, or has failed. */
  private preparing: Promise<unknown> = Promise.resolve();

  constructor(
    readonly config: C,
    protected readonly node: NodeContext,
  ) {
    this.parameters = vectorLength(config.settings);
    this.encrypted = config.settings.he.enabled;
    this.iterations = new IterationLog(node.logsDir, node.nodeId, config.experiment, node.meter, linkCounterFor(parseAddress(config.address).host));
    if (config.type !== 'aggregator') {
      const { address, aggregator, experiment, type: role } = config;
      const shipper = new LogShipper(node.peers, { node: node.nodeId, address, aggregator, experiment, role }, (message) => node.logger.warn(message));
      node.logger.add(shipper.transport);
      this.shipper = shipper;
    }
    this.iterations.onEntry = (entry) => {
      node.metrics.roundEnded(config.type, entry);
      this.shipper?.iteration(entry);
    };
    // Every request in flight listens on this signal; a round has more than the default 10.
    setMaxListeners(0, this.abort.signal);
  }

  get type(): C['type'] {
    return this.config.type;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * Called once the role's routes are mounted. Checks that can fail at once (a key file that is not
   * there) belong here and throw: the push that mounted the role hears why. Slower preparation goes
   * on after it returns and reports a failure with `markFailed`.
   */
  start(): void {}

  /** The slower preparation `start` began: the push waits for it a while, so it hears a failure from it. */
  protected preparingWith(work: Promise<unknown>): void {
    this.preparing = work.catch(() => undefined);
  }

  /** Whether the role's preparation settled (it can work, or `failure` says why not) within `ms`; not when it is stopped meanwhile. */
  async settled(ms: number): Promise<boolean> {
    if (this.stopped) return false;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const stopped = new Promise<false>((resolve) => this.abort.signal.addEventListener('abort', () => resolve(false), { once: true }));
    try {
      return await Promise.race([this.preparing.then(() => true as const), late, stopped]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Why the role cannot work, once it knows: GET /health shows it, and the aggregator prints it. */
  get failure(): string | undefined {
    return this.failureReason;
  }

  markFailed(reason: string): void {
    this.failureReason ??= reason;
    this.node.logger.error(`the ${this.type} role cannot work: ${reason}`);
  }

  /** Its config arrived again, unchanged: the aggregator may have restarted and forgotten this node. */
  reconnected(): void {}

  /** HE tasks waiting on the role's pool, for /metrics; a role with a pool says. */
  heQueueDepth(): number {
    return 0;
  }

  /** The health of the peers the role checks, for /metrics; only the aggregator checks any. */
  peerHealth(): ReadonlyMap<string, PeerState> {
    return new Map();
  }

  /** What GET /<prefix>/status shows. */
  abstract status(): Record<string, unknown>;

  /** Ends everything the role started: timers, requests in flight. Stopping twice stops once. */
  stop(): Promise<void> {
    return (this.stopping ??= this.close());
  }

  /** What stopping does; a role that holds more (a model, HE threads) releases it here too, after this. */
  protected async close(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    if (this.shipper) {
      this.node.logger.remove(this.shipper.transport);
      await this.shipper.stop();
    }
  }

  /** A timer the role owns, cleared on stop. */
  protected after(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.stopped) return;
      try {
        fn();
      } catch (err) {
        // A timer's callback has no caller to catch for it: an escape would end the process.
        this.node.logger.error(`a timer of the ${this.type} role failed: ${(err as Error)?.stack ?? err}`);
      }
    }, ms);
    timer.unref(); // the server keeps the process alive; a pending deadline need not
    this.timers.add(timer);
    return timer;
  }

  /**
   * Calls a peer until it answers: retried with backoff while it is unreachable or answers 5xx (not
   * up yet, still preparing); a 4xx is final and thrown. Ends quietly (undefined) if the role stops.
   */
  protected async persist<T>(call: () => Promise<T>): Promise<T | undefined> {
    for (let delay = 200; !this.stopped; delay = Math.min(delay * 2, 5000)) {
      try {
        return await call();
      } catch (err) {
        const failure = describeFailure(err);
        if (this.stopped) return undefined;
        if (failure.kind === 'refused' && failure.status! < 500) throw err;
        await new Promise((resolve) => this.after(delay, () => resolve(undefined)));
      }
    }
    return undefined;
  }

  /** Cancels a timer made by `after`. */
  protected cancel(timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    this.timers.delete(timer);
  }
}
