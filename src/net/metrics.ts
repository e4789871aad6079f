/**
 * GET /metrics: what a node has done and what it holds, in Prometheus' text format (prom-client).
 * Each node has a Registry of its own, not prom-client's global one, so that nodes sharing a process
 * (as in tests) keep their numbers apart. Nothing in it is secret: a scraper may hold a token of its
 * own instead of the cluster's (see worker.ts).
 *
 *   fl_rounds_total{role}                       rounds this node closed its part of (iteration-log entries)
 *   fl_round_phase_seconds{role,phase}          histogram of each phase a round's entry times (its *_ms fields)
 *   fl_peer_sent_bytes_total{peer}              experiment bytes on the wire, by peer (see WireMeter)
 *   fl_peer_received_bytes_total{peer}
 *   fl_he_queue_depth                           HE tasks handed to the pool's threads, not answered yet
 *   fl_peer_health{peer,state}                  the aggregator's view of each worker: 1 for its state, 0 for the others
 *   process_*, nodejs_*                         prom-client's defaults: RSS, heap, event loop lag, GC …
 */
import type { RequestHandler } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RoleType } from '../config/node-config';
import type { IterationEntry } from '../log/iteration-log';
import type { WireMeter } from './wire-meter';

export const PEER_STATES = ['up', 'down', 'failed'] as const;
export type PeerState = (typeof PEER_STATES)[number];

/** What the mounted role knows that a scrape shows; read at each scrape, so never stale. */
export interface RoleReadings {
  heQueueDepth(): number;
  /** Each peer whose health this node checks, with what the last check said. */
  peerHealth(): ReadonlyMap<string, PeerState>;
}

export interface NodeMetrics {
  readonly registry: Registry;
  /** Tokens besides the cluster token that may read /metrics (and nothing else). */
  readonly scrapeTokens: readonly string[];
  /** A round's entry in the node's iteration log: counted, and its phases timed. */
  roundEnded(role: RoleType, entry: IterationEntry): void;
  /** Where the gauges of whichever role is mounted are read. */
  readRoleFrom(current: () => RoleReadings | undefined): void;
  /** Answers GET /metrics (authorization comes before it). */
  readonly serve: RequestHandler;
}

export interface MetricsOptions {
  meter: WireMeter;
  /** A token that may scrape but not drive the node: Prometheus need not hold the cluster token. */
  scrapeToken?: string;
}

/** From a few milliseconds (a switch's sum) to minutes (a round of a big encrypted model). */
const PHASE_BUCKETS = [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600];
const PHASE_FIELD = /^(.+)_ms$/;

export function createNodeMetrics(options: MetricsOptions): NodeMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let currentRole: () => RoleReadings | undefined = () => undefined;

  const rounds = new Counter({ name: 'fl_rounds_total', help: 'Rounds this node closed its part of (a switch counts each attempt it closed).', labelNames: ['role'], registers: [registry] });
  const phases = new Histogram({ name: 'fl_round_phase_seconds', help: 'How long each phase of a round took, as the round log times it.', labelNames: ['role', 'phase'], buckets: PHASE_BUCKETS, registers: [registry] });
  peerByteCounters(registry, options.meter);
  new Gauge({
    name: 'fl_he_queue_depth',
    help: 'HE tasks handed to the worker threads and not answered yet.',
    registers: [registry],
    collect() {
      this.set(currentRole()?.heQueueDepth() ?? 0);
    },
  });
  new Gauge({
    name: 'fl_peer_health',
    help: "Each checked peer's health as last seen: 1 for its state, 0 for the others.",
    labelNames: ['peer', 'state'],
    registers: [registry],
    collect() {
      this.reset(); // a peer of an earlier experiment is not one of this one's
      for (const [peer, now] of currentRole()?.peerHealth() ?? []) for (const state of PEER_STATES) this.set({ peer, state }, state === now ? 1 : 0);
    },
  });

  return {
    registry,
    scrapeTokens: options.scrapeToken ? [options.scrapeToken] : [],
    roundEnded(role, entry) {
      rounds.inc({ role });
      for (const [field, value] of Object.entries(entry)) {
        const phase = PHASE_FIELD.exec(field)?.[1];
        if (phase && typeof value === 'number' && Number.isFinite(value)) phases.observe({ role, phase }, value / 1000);
      }
    },
    readRoleFrom(current) {
      currentRole = current;
    },
    serve: async (_req, res) => {
      res.type(registry.contentType).send(await registry.metrics());
    },
  };
}

/** The meter's running totals, as counters: set from them at each scrape rather than counted twice. */
function peerByteCounters(registry: Registry, meter: WireMeter): void {
  const counter = (name: string, help: string, pick: (sum: { sent: number; received: number }) => number) =>
    new Counter({
      name,
      help,
      labelNames: ['peer'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [peer, sum] of meter.perPeer()) this.inc({ peer }, pick(sum));
      },
    });
  counter('fl_peer_sent_bytes_total', 'Experiment bytes sent to each peer (monitoring left out): the address dialled, or the remote host of a connection accepted.', (s) => s.sent);
  counter('fl_peer_received_bytes_total', 'Experiment bytes received from each peer (monitoring left out): the address dialled, or the remote host of a connection accepted.', (s) => s.received);
}
