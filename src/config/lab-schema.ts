/**
 * What config.json says of the testbed's machines rather than the experiment: each machine's link
 * (`links`), its compute (`compute`), and a schedule of what happens to them (`events`). The testbed
 * driver (`npm run testbed`) carries these out; the nodes never receive them.
 */
import { z } from 'zod';

/** The roles a node may take (and a `links`, `compute` or event's `on` key may name). */
export const ROLES = ['client', 'switch', 'aggregator'] as const;

/**
 * A link's shape on the emulated testbed (`testbed up --emulate`), the same both ways. The rate is
 * shaped with tbf; delay and loss need the kernel's netem, which not every kernel has.
 */
export const linkSchema = z
  .object({
    rate_mbit: z.number().positive().max(100_000),
    delay_ms: z.number().min(0).max(10_000).optional(),
    loss_percent: z.number().min(0).max(100).optional(),
  })
  .strict();
export type LinkShape = z.infer<typeof linkSchema>;

/** Keyed by role ("client", "switch", "aggregator") or by one node's address; an address wins over its role. */
export const linksSchema = z.record(z.string(), linkSchema);

/** CFS bandwidth control has a 1 ms floor per 100 ms period: a share below 0.01 cannot be set. */
const cpuShare = z.number().min(0.01).max(64);

/**
 * A machine's compute (cgroup v1, root): `cpu` in cores (0.25: a quarter of one core, as a
 * CFS quota of 25 ms in every 100 ms), `memory_mb` its memory limit (beyond it the kernel kills it).
 */
export const computeSchema = z
  .object({
    cpu: cpuShare.optional(),
    memory_mb: z.number().int().min(64).max(1_048_576).optional(),
  })
  .strict()
  .refine((c) => c.cpu !== undefined || c.memory_mb !== undefined, { message: 'give cpu (cores), memory_mb, or both' });
export type ComputeShare = z.infer<typeof computeSchema>;

/**
 * How many clients a launcher starts in one worker process, of those on the same machine (host):
 * they share its TensorFlow.js backend, data file and HE threads, each still its own node.
 */
export const clientsPerProcessSchema = z.number().int().min(1).max(256);

/** Keyed as `links` is: by role, or by a node's address or a machine's IP; an address wins over its role. */
export const computeTableSchema = z.record(z.string(), computeSchema);

/** When an event happens: as round N opens (`at_round`), or `at_s` seconds after round 1 opened. */
const when = {
  at_round: z.number().int().min(1).optional(),
  at_s: z.number().min(0).max(7 * 86_400).optional(),
  /** A role (every node of it), a node's address, or a machine's IP (every node on it). */
  on: z.string().min(1),
};

const eventSchema = z
  .discriminatedUnion('do', [
    z.object({ ...when, do: z.literal('kill') }).strict(),
    z.object({ ...when, do: z.literal('stop'), for_s: z.number().positive().max(86_400) }).strict(),
    z.object({ ...when, do: z.literal('start') }).strict(),
    z.object({ ...when, do: z.literal('link'), rate_mbit: linkSchema.shape.rate_mbit }).strict(),
    z.object({ ...when, do: z.literal('cpu'), cpu: cpuShare }).strict(),
  ], { error: (issue) => (issue.code === 'invalid_union' ? 'do must be "kill", "stop", "start", "link" or "cpu"' : undefined) })
  .refine((e) => (e.at_round === undefined) !== (e.at_s === undefined), { message: 'give exactly one of at_round and at_s' });
export type LabEvent = z.infer<typeof eventSchema>;

/** The schedule the testbed driver carries out, in order of when each is due. */
export const eventsSchema = z.array(eventSchema).max(1000);

/** The keys an event may use, for "did you mean" hints. */
export const EVENT_KEYS = ['at_round', 'at_s', 'on', 'do', 'for_s', 'cpu'] as const;
