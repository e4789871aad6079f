/**
 * A round's floor: how fast it could have been with the work it did, so a lab sees where its time
 * went. For each client whose update the round summed, its critical path: the model down and its
 * update up across each hop at that hop's link rate, and its own decrypting, training and encrypting
 * (not its queueing for a shared core); the slowest client's path, plus the aggregator's aggregation
 * and evaluation, is the floor. (The switches sum as updates arrive, beside the others' training.)
 * No machine's link can carry its bytes faster than its rate either: a switch that takes every
 * update of its rack over one link, or a machine of many clients, is a floor of its own. The round's
 * time over its floor is what the summary and the report show.
 *
 * Rates are config.json's `links` (as configured: a schedule's `link` event is not followed). On
 * loopback there are none, and the wire costs the floor nothing (gigabytes a second).
 */
import { canonicalAddress } from '../config/address';
import { topologyOf } from '../config/load';
import type { ExperimentConfig } from '../config/schema';
import { entryFor } from '../emulate/plan';
import type { NodeRecords } from '../log/cluster-log';
import type { IterationEntry } from '../log/iteration-log';
import type { RoundMetrics } from '../outputs';

/** Where each client sits and what each link carries: from config.json's tree and `links`. */
export interface Paths {
  /** Each client's switches on its way to the aggregator, nearest first. */
  above: Readonly<Record<string, readonly string[]>>;
  /** Each node's link rate in Mbit/s, where `links` gives one (the aggregator's too). */
  mbit: Readonly<Record<string, number>>;
  aggregator: string;
}

export interface RoundFloor {
  ms: number;
  /** The client whose path it is (absent when a link bound is the floor). */
  client?: string;
  /** What the floor is made of, in ms. */
  parts: { work: number; wire: number; aggregator: number };
  /** Its parts came to more than the round took (a clock, or a worker's word): the round is its own floor. */
  clamped?: true;
}

const num = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0);
/** Milliseconds to carry `bytes` at `mbit`; none without a rate. */
const wireMs = (bytes: number, mbit: number | undefined) => (mbit && Number.isFinite(mbit) ? (bytes * 8) / (mbit * 1000) : 0);
const hostOf = (address: string) => address.split(':')[0];

export function roundFloors(rows: readonly RoundMetrics[], records: readonly NodeRecords[], paths: Paths): Map<number, RoundFloor> {
  const entries = new Map(records.map((r) => [r.address, new Map(r.iteration.map((e) => [e.round, e]))]));
  const entry = (node: string, round: number): IterationEntry | undefined => entries.get(node)?.get(round);
  // A machine's link is its nodes' (several clients of one process share it): the slowest rate among them.
  const machineMbit = new Map<string, number>();
  for (const [node, mbit] of Object.entries(paths.mbit)) machineMbit.set(hostOf(node), Math.min(mbit, machineMbit.get(hostOf(node)) ?? Infinity));
  const rateOf = (node: string) => machineMbit.get(hostOf(node));
  const floors = new Map<number, RoundFloor>();
  for (const row of rows) {
    const aggregator = num(row.aggregation_ms) + num(row.evaluation_ms);
    const summed = records.filter((r) => r.role === 'client' && !row.missing.includes(r.address) && entry(r.address, row.round)?.train_ms !== undefined);
    let floor: RoundFloor = { ms: aggregator, parts: { work: 0, wire: 0, aggregator } };
    const consider = (candidate: RoundFloor) => (floor = candidate.ms > floor.ms ? candidate : floor);
    for (const { address } of summed) {
      const own = entry(address, row.round)!;
      // Its HE work counts any wait for its process's HE threads; its wait for a turn to train does not.
      const work = num(own.decrypt_ms) + num(own.train_ms) + num(own.encrypt_ms);
      const above = paths.above[address] ?? [];
      // The model down and the update up, across each hop at the slower end's rate.
      const bytes = num(own.byte_received) + num(own.byte_send);
      const hops = [address, ...above].map((lower, i) => [lower, [...above, paths.aggregator][i]]);
      const wire = hops.reduce((ms, ends) => ms + wireMs(bytes, Math.min(...ends.map((n) => rateOf(n) ?? Infinity))), 0);
      consider({ ms: work + wire + aggregator, client: address, parts: { work, wire, aggregator } });
    }
    // Each machine's link carries all its nodes send, and all they take, each way at its rate.
    const load = new Map<string, { sent: number; received: number }>([[hostOf(paths.aggregator), { sent: num(row.bytes_down), received: num(row.bytes_up) }]]);
    for (const r of records) {
      const e = entry(r.address, row.round);
      const host = load.get(hostOf(r.address)) ?? { sent: 0, received: 0 };
      load.set(hostOf(r.address), { sent: host.sent + num(e?.byte_send), received: host.received + num(e?.byte_received) });
    }
    for (const [host, { sent, received }] of load) {
      const wire = wireMs(Math.max(sent, received), machineMbit.get(host));
      consider({ ms: wire + aggregator, parts: { work: 0, wire, aggregator } });
    }
    // A floor past the round itself is a record that cannot be right (a clock, or a worker's word): the round is its own floor then.
    floors.set(row.round, floor.ms > row.round_ms ? { ...floor, ms: row.round_ms, clamped: true } : floor);
  }
  return floors;
}

/** A round's time over its floor, as the summary and the report print it. */
export const overFloor = (row: Pick<RoundMetrics, 'round_ms'>, floor: RoundFloor | undefined): string =>
  floor && floor.ms > 0 ? `${(row.round_ms / floor.ms).toFixed(2)}x` : '—';

/** A config's paths: each client's chain of switches (the topology's) and each node's link rate (`links`, keyed as the testbed reads it). */
export function pathsOf(config: ExperimentConfig): Paths {
  const topology = topologyOf(config);
  const nodes = Object.entries(config.others).map(([key, entry]) => ({ address: canonicalAddress(key), role: entry.type }));
  const above = Object.fromEntries(nodes.filter((n) => n.role === 'client').map((n) => [n.address, topology.chainOf(n.address)]));
  const mbit = Object.fromEntries(nodes.flatMap((n) => {
    const rate = entryFor(config.links, [n], (a, b) => b.rate_mbit - a.rate_mbit)?.rate_mbit;
    return rate ? [[n.address, rate]] : [];
  }));
  return { above, mbit, aggregator: topology.root };
}
