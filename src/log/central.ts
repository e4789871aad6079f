/**
 * Central logging, the wire format both ends share: a worker ships its iteration-log entries and its
 * warnings and errors to the aggregator (POST /a/logs) as rounds finish, so the aggregator's logs/
 * holds the whole cluster's records even where nobody can ssh to a worker.
 *
 * Every entry carries a sequence number within the worker's boot: a batch sent again after a lost
 * answer is recognised and not written twice.
 */
import { z } from 'zod';

/** One worker process's run: sequence numbers restart with it. */
export const bootIdPattern = /^[A-Za-z0-9-]{1,64}$/;
const nodeIdPattern = /^[A-Za-z0-9._-]{1,100}$/;

const ENTRY_FIELDS = 64;

const iterationEntry = z
  .object({
    round: z.number().int().min(1),
    start_time: z.string().max(64),
    end_time: z.string().max(64),
    byte_received: z.number().min(0),
    byte_send: z.number().min(0),
  })
  .catchall(z.union([z.string().max(2000), z.number(), z.boolean(), z.null(), z.array(z.string().max(200)).max(1000)]))
  // A worker's own entries have a few dozen fields; the bytes a worker may keep at the aggregator are capped apart (cluster-log.ts).
  .refine((entry) => Object.keys(entry).length <= ENTRY_FIELDS, { message: `an iteration entry has at most ${ENTRY_FIELDS} fields` });

const shippedEntry = z.discriminatedUnion('kind', [
  z.object({ seq: z.number().int().min(0), kind: z.literal('iteration'), entry: iterationEntry }).strict(),
  z
    .object({
      seq: z.number().int().min(0),
      kind: z.literal('log'),
      level: z.enum(['error', 'warn']),
      /** As the worker's logger stamps it (ISO 8601): it starts the line at the aggregator, so no line break nor space of its own. */
      time: z.string().regex(/^[\w:.+-]{1,64}$/, 'a time as ISO 8601 writes it'),
      message: z.string().max(20_000),
    })
    .strict(),
]);

export const logBatchSchema = z
  .object({
    /** The sender's node id (its log files' name), and its address as config.json names it. */
    node: z.string().regex(nodeIdPattern, 'a node id of letters, digits, ".", "_" and "-"'),
    address: z.string().max(300),
    role: z.enum(['client', 'switch']),
    experiment: z.string().min(1).max(64),
    boot: z.string().regex(bootIdPattern),
    entries: z.array(shippedEntry).max(5000),
  })
  .strict();

export type LogBatch = z.infer<typeof logBatchSchema>;
export type ShippedEntry = LogBatch['entries'][number];
type WithoutSeq<E> = E extends unknown ? Omit<E, 'seq'> : never;
/** What a batch carries before sequence numbers are given (each kind of entry without its seq). */
export type UnnumberedEntry = WithoutSeq<ShippedEntry>;
