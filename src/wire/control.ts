/**
 * Every JSON control message between nodes, as a schema the receiver checks it with. Models and
 * updates travel in the binary codec (codec.ts); everything else that steers a round is here:
 *   a switch's round opened (POST /s/round), a client dropped from it (/s/drop), a switch that
 *   forwards nothing (/a/withheld, /s/withheld), a client ready for a round (/a/checkin), a client
 *   not in this round (/c/standby), and a sealed model's scores (/c/evaluate, /s/evaluate).
 */
import { z } from 'zod';
import { describeIssues } from '../config/issues';
import { badRequest } from '../net/errors';

const round = z.number().int().positive();
const attempt = z.string().min(1).max(200);

/** POST /s/round: the switch above, or the aggregator, opens a switch's round. */
export const openRoundSchema = z
  .object({
    round,
    attempt,
    clients: z.array(z.string()).min(1),
    deadline_ms: z.number().int().positive(),
    parameters: z.number().int().positive(),
    model_id: z.number().int().min(0),
  })
  .strict();

/** POST /s/drop: the round stops waiting for this client. */
export const dropSchema = z.object({ round, attempt, client: z.string().min(1) }).strict();

/** POST /a/withheld, /s/withheld: a switch's notice upstream that it forwards nothing this round. */
export const withheldSchema = z.object({ round, attempt, switch: z.string(), clients: z.array(z.string()), reason: z.string().max(500) }).strict();

/** POST /a/checkin: a client is ready for a round, and says what it holds. */
export const checkinSchema = z
  .object({
    client: z.string(),
    samples: z.number().int().min(0).default(0),
    /** One sample's shape, and how many of its samples each class has: checked against the model, kept for the report. */
    shape: z.array(z.number().int().positive()).max(3).optional(),
    histogram: z.array(z.number().int().min(0)).max(256).optional(),
    /** Its model's id (layer shapes): every node must have loaded the same model. */
    model: z.number().int().min(0).optional(),
    /** The sealed model it scored and keeps (key at the clients): it is then sent a reference, not the model again. */
    keeps: z.string().max(100).optional(),
  })
  .strict();
export type Checkin = z.infer<typeof checkinSchema>;

/** POST /c/standby: not in this round. */
export const standbySchema = z.object({ round }).strict();

/** A client's score of the sealed model on its share of the held-out digits (POST /c/evaluate's answer). */
export const scoreSchema = z.object({ accuracy: z.number().min(0).max(1), loss: z.number().finite().min(0), samples: z.number().int().min(0) });

/** A switch's answer to POST /s/evaluate: the scores of the clients beneath it, and who gave none. */
export const evaluationsSchema = z.object({ results: z.array(scoreSchema.extend({ client: z.string() })), failures: z.array(z.string()) });

/** How long a switch asked to evaluate without a `within` takes to answer. */
const DEFAULT_EVALUATION_MS = 20_000;

/** POST /s/evaluate's query: the clients beneath the switch to ask, and how long it has to answer. */
export const evaluationQuery = (clients: string[], withinMs: number) => `clients=${encodeURIComponent(clients.join(','))}&within=${Math.floor(withinMs)}`;

/** The query read back; a string naming what is wrong when it is not one. */
export function readEvaluationQuery(query: { clients?: unknown; within?: unknown }): { clients: string[]; withinMs: number } | string {
  const clients = typeof query.clients === 'string' && query.clients ? [...new Set(query.clients.split(','))] : [];
  if (!clients.length) return 'name the clients to ask: ?clients=<address>,<address>';
  const withinMs = Number(query.within ?? DEFAULT_EVALUATION_MS);
  if (!Number.isInteger(withinMs) || withinMs < 100 || withinMs > 600_000) return `within: milliseconds to answer in, 100 to 600000; got ${String(query.within)}`;
  return { clients, withinMs };
}

/** A control message read with its schema; a 400 naming what was `expected`, and each problem, otherwise. */
export function readControl<S extends z.ZodType>(schema: S, body: unknown, expected: string): z.infer<S> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw badRequest(expected, describeIssues(parsed.error.issues));
  return parsed.data;
}
