/**
 * Holds the one role a node plays. A new config replaces the old role whole: the old one is
 * stopped (its timers and requests end) before the new router takes over, so nothing is mounted twice.
 */
import { Router, type RequestHandler } from 'express';
import type { Checkpoint } from '../checkpoint';
import { configFingerprint } from '../config/fingerprint';
import type { NodeConfig } from '../config/node-config';
import { ROLE_PREFIX, type NodeContext, type Role } from '../roles/role';
import { HttpError } from '../net/errors';

interface Mounted {
  role: Role;
  router: Router;
  /** Routes open without the token (the aggregator's dashboard), mounted at the root. */
  publicRouter?: Router;
  fingerprint: string;
}

/**
 * How long a config push waits for the role to prepare (data, model, keys), so that one that cannot
 * is reported failed with its reason, not configured; one slower than this answers while it prepares.
 */
const PREPARE_WAIT_MS = 15_000;

export interface ApplyResult {
  status: 'mounted' | 'replaced' | 'unchanged';
  /** Still preparing when the push was answered (slower than PREPARE_WAIT_MS); a failure after shows at /health. */
  preparing?: true;
  role: NodeConfig['type'];
  prefix: string;
  experiment: string;
}

export interface MountOptions {
  /** For an aggregator: the checkpoint to go on from. */
  resume?: Checkpoint;
}

/**
 * The role's modules are loaded as it is mounted, not with the worker: a switch never loads what a
 * client trains with (TensorFlow.js, about 30 MB resident and 0.2 s of a process's start).
 */
function mount(config: NodeConfig, node: NodeContext, options: MountOptions): { role: Role; routes: Router; publicRoutes?: Router } {
  switch (config.type) {
    case 'client': {
      const { ClientRole } = require('../roles/client') as typeof import('../roles/client');
      const { clientBlueprint } = require('../blueprints/client') as typeof import('../blueprints/client');
      const role = new ClientRole(config, node);
      return { role, routes: clientBlueprint(role) };
    }
    case 'switch': {
      const { SwitchRole } = require('../roles/switch') as typeof import('../roles/switch');
      const { switchBlueprint } = require('../blueprints/switch') as typeof import('../blueprints/switch');
      const role = new SwitchRole(config, node);
      return { role, routes: switchBlueprint(role) };
    }
    case 'aggregator': {
      const { AggregatorRole } = require('../roles/aggregator') as typeof import('../roles/aggregator');
      const { aggregatorBlueprint } = require('../blueprints/aggregator') as typeof import('../blueprints/aggregator');
      const { dashboardBlueprint } = require('../blueprints/dashboard') as typeof import('../blueprints/dashboard');
      const role = new AggregatorRole(config, node, options.resume);
      return { role, routes: aggregatorBlueprint(role), publicRoutes: dashboardBlueprint(role) };
    }
  }
}

/** A role mounted but unable to work: the config push answers with why (and /health keeps saying it). */
export class RoleFailed extends HttpError {
  constructor(reason: string) {
    super(422, 'role failed to start', reason);
  }
}

/** A start that throws leaves the role mounted and marked failed, so the node keeps answering with the reason. */
function startRole(role: Role): void {
  try {
    role.start();
  } catch (err) {
    role.markFailed((err as Error)?.message ?? String(err));
  }
}

export class RoleHost {
  private mounted?: Mounted;
  /** The config being mounted now: /health shows it while the old role stops, never "no config". */
  private incoming?: string;
  /** Configs are applied one at a time, in the order they arrive. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly node: NodeContext) {}

  get role(): Role | undefined {
    return this.mounted?.role;
  }

  /** Routes requests to the mounted role's router, or on to 404 when none is mounted. */
  readonly dispatch: RequestHandler = (req, res, next) => {
    const mounted = this.mounted;
    if (mounted?.role.failure) next(new HttpError(503, 'role failed to start', mounted.role.failure));
    else if (mounted) mounted.router(req, res, next);
    else next();
  };

  /** The mounted role's routes that need no token, if it has any. */
  readonly dispatchPublic: RequestHandler = (req, res, next) => {
    const publicRouter = this.mounted?.publicRouter;
    if (publicRouter) publicRouter(req, res, next);
    else next();
  };

  /** Why the mounted role cannot work, if it cannot. */
  get failure(): string | undefined {
    return this.incoming ? undefined : this.mounted?.role.failure;
  }

  /** The fingerprint of the mounted config (GET /health shows it, so the aggregator can tell who needs one). */
  get fingerprint(): string | undefined {
    return this.incoming ?? this.mounted?.fingerprint;
  }

  apply(config: NodeConfig, options: MountOptions = {}): Promise<ApplyResult> {
    const next = this.queue.then(() => this.replace(config, options));
    this.queue = next.catch(() => undefined);
    return next;
  }

  async unmount(): Promise<void> {
    // A push may be waiting for this role to prepare: stopped now, it need not wait for that.
    void this.mounted?.role.stop();
    await this.queue;
    const old = this.mounted;
    this.mounted = undefined;
    await old?.role.stop();
  }

  private async replace(config: NodeConfig, options: MountOptions): Promise<ApplyResult> {
    const prefix = ROLE_PREFIX[config.type];
    const fingerprint = configFingerprint(config);
    const result = { role: config.type, prefix, experiment: config.experiment };
    // The same config again (an aggregator re-pushing after a restart) must not reset a role mid-round;
    // the role only hears that its aggregator may be new.
    if (this.mounted?.fingerprint === fingerprint && !this.mounted.role.failure) {
      const { role } = this.mounted;
      role.reconnected();
      return { status: 'unchanged', ...(await this.prepared(role)), ...result };
    }

    const old = this.mounted;
    this.mounted = undefined;
    this.incoming = fingerprint;
    let role: Role;
    try {
      if (old) await old.role.stop();
      const mounted = mount(config, this.node, options);
      // The experiment's request_ms, for every call this node makes from now on.
      this.node.peers.requestMs = config.settings.timeouts.request_ms;
      role = mounted.role;
      const router = Router();
      router.use(prefix, mounted.routes);
      this.mounted = { role, router, publicRouter: mounted.publicRoutes, fingerprint };
      startRole(role);
    } finally {
      this.incoming = undefined;
    }
    const preparing = await this.prepared(role);
    this.node.logger.info(`${old ? 'replaced' : 'mounted'} role ${config.type} under ${prefix} for experiment ${config.experiment}`);
    return { status: old ? 'replaced' : 'mounted', ...preparing, ...result };
  }

  /** Waits for the role to prepare, a while: a failure is thrown (the push reports it), a role still preparing says so. */
  private async prepared(role: Role): Promise<{ preparing?: true }> {
    const settled = await role.settled(PREPARE_WAIT_MS);
    if (role.failure) throw new RoleFailed(role.failure);
    return settled ? {} : { preparing: true };
  }
}
