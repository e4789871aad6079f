/**
 * Every JSON control message between nodes, as a schema the receiver checks it with. Models and
 * updates travel in the binary codec (codec.ts); everything else that steers a round is here:
 *   a switch's round opened (POST /s/round), a client dropped from it (/s/drop), a switch that
 *   forwards nothing (/a/withheld, /s/withheld), a client ready for a round (/a/checkin), a client
 *   not in this round (/c/standby), a client that cannot use the model it took (/a/declined), and
 *   a sealed model's scores (/c/evaluate, /s/evaluate).
 */
import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { describeIssues } from '../config/issues';
import { TRAINING_LIMITS } from '../config/schema';
import { badRequest } from '../net/errors';
import { ATTEMPT_PATTERN, attemptProblem } from './attempt';

const round = z.number().int().positive();
/** One opening of a round (attempt.ts): `<session>:<round>.<retry>`, of the message's own round. */
const attempt = z.string().regex(ATTEMPT_PATTERN, 'an attempt is <session>:<round>.<retry>');
/** A node's address as the config names it. */
const address = z.string().min(1).max(300);
/** Samples a client trains on: its weight in the round's average. */
const samples = z.number().int().positive().max(1e9);

/** A message's attempt must be an opening of the round it names. */
const ofItsRound = (message: { round: number; attempt: string }, ctx: z.RefinementCtx) => {
  const problem = attemptProblem(message.round, message.attempt);
  if (problem) ctx.addIssue({ code: 'custom', path: ['attempt'], message: problem });
};

/**
 * How a client trains a round (strategy.ts ClientInstructions): no more than a config may ask, so a
 * node above a client cannot hold its process's turns with a training no experiment has.
 */
const instructionFields = {
  epochs: z.number().int().min(1).max(TRAINING_LIMITS.epochs),
  batchSize: z.number().int().min(1).max(TRAINING_LIMITS.batchSize),
  learningRate: z.number().positive().max(TRAINING_LIMITS.learningRate),
  /** FedProx: the proximal term's weight (0 or absent: plain local SGD). */
  proximalMu: z.number().min(0).max(TRAINING_LIMITS.proximalMu).optional(),
};

/** What a client checks in with (protocol/client.ts): the aggregator alone learns it. */
const ticket = z.string().regex(/^[0-9a-f]{32}$/, 'a ticket is 32 hex digits');
/** What a model a client is selected for carries (selectionPass). */
const pass = z.string().regex(/^[0-9a-f]{32}$/, 'a pass is 32 hex digits');

/**
 * What proves to a client that the aggregator selected it for an opening: the opening's attempt
 * signed with the ticket the client checked in with (HMAC-SHA-256). The switches that carry it learn
 * neither the ticket nor a pass for any other opening.
 */
export const selectionPass = (ticket: string, attempt: string): string => createHmac('sha256', ticket).update(`fl-selected\0${attempt}`).digest('hex').slice(0, 32);

/**
 * One client's part of a round's instructions (strategy.ts ClientFit): its share of the round (its
 * weight over the round's; at most 1, and no round is so large that a share is below 1e-9), its pass
 * for the opening, and any instruction it follows otherwise than the rest.
 */
export const clientFitSchema = z
  .object({ share: z.number().min(1e-9).max(1), pass: pass.optional(), ...z.object(instructionFields).partial().shape })
  .strict();
export type ClientFit = z.infer<typeof clientFitSchema>;

/** What a strategy tells one client otherwise than the rest (strategy.ts FitPlan's `each`). */
export const instructionOverridesSchema = z.object(instructionFields).partial().strict();
export type InstructionOverrides = z.infer<typeof instructionOverridesSchema>;

/**
 * An opening's instructions for its clients' copies of the model, kept by the aggregator and by each
 * switch until the model comes: the round's samples, and by client what the strategy tells it
 * otherwise (none for most) and its pass.
 */
export interface RoundInstructions {
  samples: number;
  overrides: Record<string, InstructionOverrides>;
  passes: Record<string, string>;
}

/**
 * A client's part of a round's instructions, made where its copy of the model is sent from (its
 * switch, or the aggregator): its share, its weight over the round's samples, its pass, and what the
 * strategy tells it otherwise. The opening carries the round's samples once, not a share a client.
 */
export function clientFit(client: string, weight: number, { samples, overrides, passes }: RoundInstructions): ClientFit {
  return { ...overrides[client], share: weight / samples, ...(passes[client] ? { pass: passes[client] } : {}) };
}

/** What an opening for `clients` carries of the round's instructions: the samples, and their own overrides and passes. */
export function openingInstructions({ samples, overrides, passes }: RoundInstructions, clients: readonly string[]): { samples: number; fit?: Record<string, InstructionOverrides>; passes?: Record<string, string> } {
  const fit = pick(overrides, clients);
  const theirs = pick(passes, clients);
  return { samples, ...(fit ? { fit } : {}), ...(theirs ? { passes: theirs } : {}) };
}

/** The entries of `record` for `keys` that it has, or undefined when it has none of them. */
function pick<T>(record: Record<string, T>, keys: readonly string[]): Record<string, T> | undefined {
  const had = keys.filter((key) => record[key] !== undefined);
  return had.length ? Object.fromEntries(had.map((key) => [key, record[key]])) : undefined;
}

/** POST /s/round: the switch above, or the aggregator, opens a switch's round. */
export const openRoundSchema = z
  .object({
    round,
    attempt,
    clients: z.array(address).min(1).max(100_000),
    /** Each client's weight in the round, as the aggregator assigned it from the client's check-in: its update must carry the same. */
    weights: z.record(address, samples),
    /** The round's selected samples (every client's, not only these): a client's share is its weight over it. */
    samples: z.number().int().positive().max(1e15),
    /** What the strategy tells a client otherwise than the rest (none for most): with its share, added to that client's copy of the model. */
    fit: z.record(address, instructionOverridesSchema).optional(),
    /** Each client's pass for this opening: its copy of the model carries it. */
    passes: z.record(address, pass).optional(),
    deadline_ms: z.number().int().positive(),
    parameters: z.number().int().positive(),
    model_id: z.number().int().min(0),
  })
  .strict()
  .superRefine(ofItsRound)
  .superRefine((opening, ctx) => {
    const inRound = new Set(opening.clients);
    const unweighed = opening.clients.filter((c) => opening.weights[c] === undefined);
    if (unweighed.length) ctx.addIssue({ code: 'custom', path: ['weights'], message: `no weight for ${unweighed.slice(0, 3).join(', ')}${unweighed.length > 3 ? ' …' : ''}` });
    for (const field of ['weights', 'fit', 'passes'] as const) {
      const strangers = Object.keys(opening[field] ?? {}).filter((c) => !inRound.has(c));
      if (strangers.length) ctx.addIssue({ code: 'custom', path: [field], message: `${field} for clients not in the round: ${strangers.slice(0, 3).join(', ')}` });
    }
    const these = Object.values(opening.weights).reduce((sum, w) => sum + w, 0);
    if (opening.samples < these) ctx.addIssue({ code: 'custom', path: ['samples'], message: `the round's ${opening.samples} samples are fewer than these clients' ${these}: a share would be more than 1` });
  });

/** POST /s/drop: the round stops waiting for this client. */
export const dropSchema = z.object({ round, attempt, client: address }).strict().superRefine(ofItsRound);

/**
 * Why, as another node says it: shown in the aggregator's output and logs, so on one line (a node
 * cannot write lines of its own into them).
 */
const said = (max: number) =>
  z
    .string()
    .max(max)
    .transform((text) => text.replace(/[\u0000-\u001f\u007f]/g, ' '));

/** POST /a/withheld, /s/withheld: a switch's notice upstream that it forwards nothing this round. */
export const withheldSchema = z.object({ round, attempt, switch: address, clients: z.array(address).max(100_000), reason: said(500) }).strict().superRefine(ofItsRound);

/** POST /a/declined: a client that took a round's model and cannot use it (it says so at once, rather than let the round wait for it). */
export const declinedSchema = z.object({ round, attempt, client: address, reason: said(500) }).strict().superRefine(ofItsRound);

/** POST /a/checkin: a client is ready for a round, and says what it holds. */
export const checkinSchema = z
  .object({
    client: address,
    /** Its weight in a round that selects it. */
    samples,
    /** One sample's shape, and how many of its samples each class has: checked against the model, kept for the report. */
    shape: z.array(z.number().int().positive()).max(3).optional(),
    histogram: z.array(z.number().int().min(0)).max(256).optional(),
    /** Its model's id (layer shapes): every node must have loaded the same model. */
    model: z.number().int().min(0).optional(),
    /** The sealed model it scored and keeps (key at the clients): it is then sent a reference, not the model again. */
    keeps: z.string().max(100).optional(),
    /** What the pass of the model it is selected for is made with (selectionPass): made anew each time it takes a model. */
    ticket,
  })
  .strict();
export type Checkin = z.infer<typeof checkinSchema>;

/**
 * A round's model carries the instructions in its meta: how to train, which opening of the round it
 * is, the recipient's own part (`fit`: its share, which scales an encrypted update), and what
 * encryption needs (the model's factor, the key's id).
 */
export const roundMetaSchema = z
  .object({
    ...instructionFields,
    attempt,
    /** The recipient's own part (a switch adds it to each client's copy): its share, and what it does otherwise. */
    fit: clientFitSchema.optional(),
    /** An encrypted model decrypts to the average once multiplied by this. */
    factor: z.number().positive().finite().optional(),
    he_key: z.string().max(100).optional(),
    model_tag: z.string().max(100).optional(),
    /** SCAFFOLD: the last round each selected client's update was counted in (a client keeps its new control variate only then). */
    counted: z.record(z.string().max(300), z.number().int().min(1)).refine((c) => Object.keys(c).length <= 100_000, 'at most 100,000 clients').optional(),
  })
  .loose();
export type RoundMeta = z.infer<typeof roundMetaSchema>;

/** POST /c/standby: not in this opening of the round (not selected, or the model could not reach it): check in again. */
export const standbySchema = z.object({ round, attempt }).strict().superRefine(ofItsRound);

/** A client's score of the sealed model on its share of the held-out digits (POST /c/evaluate's answer). */
export const scoreSchema = z.object({ accuracy: z.number().min(0).max(1), loss: z.number().finite().min(0), samples: z.number().int().min(0) });

/** The error of a client's 422 for a sealed model it cannot use (it does not decrypt to one the clients could have made). */
export const UNUSABLE_MODEL = 'unusable model';

/** A switch's answer to POST /s/evaluate: the scores of the clients beneath it, who gave none, and who said the model is unusable (and why). */
export const evaluationsSchema = z.object({
  results: z.array(scoreSchema.extend({ client: address })).max(100_000),
  failures: z.array(address).max(100_000),
  unusable: z.array(z.object({ client: address, reason: said(1000) })).max(100_000).default([]),
});

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

/** A control message read with its schema; a 400 naming what was `expected` and the first problem (each in its details), otherwise. */
export function readControl<S extends z.ZodType>(schema: S, body: unknown, expected: string): z.infer<S> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const problems = describeIssues(parsed.error.issues);
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  throw badRequest(`${expected}: ${problems[0]}${more}`, problems);
}
