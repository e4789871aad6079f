/**
 * What config.json may hold, and what a worker receives at POST /config.
 * Objects are strict so a misspelt key is reported instead of silently ignored.
 */
import { z } from 'zod';
import { addressProblem } from './address';
import { dataFilesSchema, dataSchema } from './data-schema';
import { clientsPerProcessSchema, computeSchema, computeTableSchema, eventsSchema, EVENT_KEYS, linkSchema, linksSchema } from './lab-schema';

export const address = z.string().superRefine((text, ctx) => {
  const problem = addressProblem(text);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const positiveInt = z.number().int().positive();

/**
 * The experiment's name is joined into paths (logs/<id>_<experiment>.json, outputs/<experiment>/,
 * logs/cluster/<experiment>/): one plain file-name component, never "..", "/" or a hidden name.
 */
export const experimentName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    'the experiment name must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit (it names folders and log files)',
  );

export const modelSchema = z
  .object({
    /** A built-in, or `file`: a TensorFlow.js layers model (`model.json` + weights) at `path`, the same on every node. */
    /** `tabular`: a small MLP for tables (two hidden layers, `hidden_units` and half of it); `cifar_cnn` (1.1M) and `resnet18` (11.2M) ignore hidden_units. */
    architecture: z.enum(['mlp', 'cnn', 'tabular', 'cifar_cnn', 'resnet18', 'file']).default('mlp'),
    hidden_units: positiveInt.max(4096).default(128),
    path: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((model, ctx) => {
    if (model.architecture === 'file' && !model.path) {
      ctx.addIssue({ code: 'custom', path: ['path'], message: 'needed with architecture "file": the folder holding model.json and its weights (or model.json itself)' });
    }
  });

/** Flower's names, lowercased. The robust ones read each client's update (plaintext; switches forward each, unsummed). */
export const STRATEGIES = ['fedavg', 'fedavgm', 'fedprox', 'scaffold', 'fedadam', 'fedyogi', 'fedadagrad', 'fedmedian', 'fedtrimmedavg', 'krum', 'multikrum', 'bulyan'] as const;
export const ROBUST_STRATEGIES: readonly string[] = ['fedmedian', 'fedtrimmedavg', 'krum', 'multikrum', 'bulyan'];

/** The most a config may ask of a client's training, and so the most any node may tell a client to do (wire/control.ts). */
export const TRAINING_LIMITS = { epochs: 100, batchSize: 10_000, learningRate: 10, proximalMu: 100 } as const;

export const trainingSchema = z
  .object({
    epochs: positiveInt.max(TRAINING_LIMITS.epochs).default(1),
    batch_size: positiveInt.max(TRAINING_LIMITS.batchSize).default(32),
    learning_rate: z.number().positive().max(TRAINING_LIMITS.learningRate).default(0.1),
    strategy: z.enum(STRATEGIES).default('fedavg'),
    server_momentum: z.number().min(0).max(0.999).default(0.9),
    /** fedprox: the weight μ of the proximal term μ/2·‖w − w_global‖² each client adds to its loss (Flower's proximal_mu). */
    proximal_mu: z.number().min(0).max(TRAINING_LIMITS.proximalMu).default(0.01),
    /** fedadam, fedyogi, fedadagrad: the server's learning rate and the optimizer's betas and τ (Flower's names; each strategy's Flower default when left out). */
    eta: z.number().positive().max(100).optional(),
    beta_1: z.number().min(0).lt(1).optional(),
    beta_2: z.number().min(0).lt(1).optional(),
    tau: z.number().positive().max(1).optional(),
    /** fedtrimmedavg: the fraction of each parameter's values cut at each end (Flower's beta). */
    beta: z.number().min(0).lt(0.5).default(0.2),
    /** krum, multikrum, bulyan: how many Byzantine clients the rule is to withstand (Flower's num_malicious_clients). */
    num_malicious_clients: z.number().int().min(0).default(0),
    /** multikrum: how many of the updates Krum ranks first are averaged (Flower's num_clients_to_keep). */
    num_clients_to_keep: positiveInt.optional(),
  })
  .strict();

/** Largest total coefficient modulus (bits) SEAL allows at 128-bit security, by polynomial degree. */
export const MAX_MODULUS_BITS: Record<number, number> = { 4096: 109, 8192: 218, 16384: 438, 32768: 881 };

/** Quantized packing (src/he/quantized.ts): values clipped to ±clip, rounded to `bits`, several to a coefficient, with headroom for `clients`. */
export const quantizeSchema = z
  .object({
    bits: z.number().int().min(2).max(24).default(8),
    /**
     * ±clip: one range for all, or one per weight tensor in the model's order, on what a client quantizes:
     * its change (key at the aggregator; default 0.25) or its weights (key at the clients; default 1).
     */
    clip: z.union([z.number().positive(), z.array(z.number().positive()).min(1)]).optional(),
    /** The most updates one sum holds; filled from clients_per_round (or the client count) when config.json is read. */
    clients: positiveInt.optional(),
    /** Room each value of a sum keeps for distributed DP's noise in whole steps: filled in from `dp` as config.json is read (noiseReserve). */
    noise_reserve: z.number().positive().finite().optional(),
  })
  .strict();

/** Quantized packing wants many bits a coefficient: three 60-bit data primes (and a special prime) at N = 8192. */
export const QUANTIZED_HE_DEFAULTS = { poly_modulus_degree: 8192, coeff_modulus_bits: [60, 60, 60, 38] };
const FLOAT_HE_DEFAULTS = { poly_modulus_degree: 4096, coeff_modulus_bits: [54] };

const heObject = z
  .object({
    enabled: z.boolean().default(false),
    /** Who holds the secret key: the aggregator (it decrypts only sums), or the clients (nobody else can decrypt). */
    key_holder: z.enum(['aggregator', 'clients']).default('aggregator'),
    /** Default 4096, or 8192 with quantize. */
    poly_modulus_degree: z
      .number()
      .int()
      .refine((n) => n in MAX_MODULUS_BITS, 'must be 4096, 8192, 16384 or 32768')
      .optional(),
    /**
     * Default one prime: the protocol only adds, so nothing is ever key-switched and SEAL needs no
     * special prime. Public-key encryption then works at one prime instead of two and skips the
     * modulus switch after it: 1.7x faster, same ciphertext size (bench/RESULTS.md, "before and
     * after"). Quantized packing defaults to QUANTIZED_HE_DEFAULTS.
     */
    coeff_modulus_bits: z.array(z.number().int().min(20).max(60)).min(1).max(8).optional(),
    scale_bits: z.number().int().min(20).max(58).default(45),
    quantize: quantizeSchema.optional(),
  })
  .strict();

export const heSchema = heObject
  .transform((he) => {
    const defaults = he.quantize ? QUANTIZED_HE_DEFAULTS : FLOAT_HE_DEFAULTS;
    // The same key order on every parse (a node's config is parsed twice on its way).
    const { enabled, key_holder, scale_bits, quantize } = he;
    const poly_modulus_degree = he.poly_modulus_degree ?? defaults.poly_modulus_degree;
    const coeff_modulus_bits = he.coeff_modulus_bits ?? defaults.coeff_modulus_bits;
    return { enabled, key_holder, poly_modulus_degree, coeff_modulus_bits, scale_bits, ...(quantize ? { quantize } : {}) };
  })
  .superRefine((he, ctx) => {
    const total = he.coeff_modulus_bits.reduce((a, b) => a + b, 0);
    const max = MAX_MODULUS_BITS[he.poly_modulus_degree];
    if (max !== undefined && total > max) {
      ctx.addIssue({
        code: 'custom',
        path: ['coeff_modulus_bits'],
        message: `${total} bits in all is insecure at poly_modulus_degree ${he.poly_modulus_degree}: 128-bit security allows at most ${max}`,
      });
    }
    // Values of up to 2^(prime - scale - 1) fit; weighted averages of weights need a few bits of that.
    const headroom = he.coeff_modulus_bits[0] - he.scale_bits;
    if (!he.quantize && headroom < 5) {
      ctx.addIssue({
        code: 'custom',
        path: ['scale_bits'],
        message: `scale 2^${he.scale_bits} leaves ${headroom} bits in a ${he.coeff_modulus_bits[0]}-bit data prime; sums would wrap. Use scale_bits <= ${he.coeff_modulus_bits[0] - 5}`,
      });
    }
  });

export const timeoutsSchema = z
  .object({
    push_ms: positiveInt.default(30_000),
    request_ms: positiveInt.min(100).max(86_400_000).default(30_000),
    round_ms: positiveInt.default(300_000),
    /** How often the aggregator checks each worker's health (and re-configures one that restarted). */
    heartbeat_ms: positiveInt.default(2000),
  })
  .strict();

/**
 * Client-level DP-FedAvg (McMahan et al. 2018; privacy/dp.ts): each client clips its change to L2
 * norm `clip` and weighs 1; the sum carries Gaussian noise of `noise_multiplier` times 2·`clip`, added
 * by the aggregator (`central`) or in shares by the clients (`distributed`). ε at `delta` is accounted
 * after every round (privacy/rdp.ts); the run stops before a round would take it past `max_epsilon`.
 */
export const dpSchema = z
  .object({
    mode: z.enum(['central', 'distributed']),
    clip: z.number().positive().finite(),
    noise_multiplier: z.number().positive().finite(),
    delta: z.number().gt(0).lt(1).default(1e-5),
    max_epsilon: z.number().positive().finite().optional(),
  })
  .strict();

export type DpSettings = z.infer<typeof dpSchema>;

/**
 * The deadline policy for stragglers (over-selection, as production systems do): a round selects
 * `over_select` times clients_per_round; a switch (and the aggregator, for the clients reporting to
 * it) closes once `close_fraction` of its selected clients are in (by default 1 / over_select: as
 * many as clients_per_round asks) and `grace_ms` more has passed. A late client's work is wasted.
 */
export const stragglersSchema = z
  .object({
    over_select: z.number().min(1).max(4).default(1),
    close_fraction: z.number().gt(0).max(1).optional(),
    grace_ms: z.number().int().min(0).max(3_600_000).default(0),
  })
  .strict();
export type StragglerPolicy = z.infer<typeof stragglersSchema>;

/** Settings every node of an experiment shares. */
export const settingsSchema = z
  .object({
    rounds: positiveInt.max(10_000).default(20),
    clients_per_round: positiveInt.optional(),
    min_report_fraction: z.number().gt(0).max(1).default(0.5),
    stragglers: stragglersSchema.optional(),
    model: modelSchema.prefault({}),
    training: trainingSchema.prefault({}),
    data: dataSchema.prefault({}),
    he: heSchema.prefault({}),
    timeouts: timeoutsSchema.prefault({}),
    dp: dpSchema.optional(),
  })
  .strict();

export type Settings = z.infer<typeof settingsSchema>;

// --- config.json -----------------------------------------------------------------

/**
 * A client built to attack, for robustness studies: it trains as the others do, then sends
 * `sign_flip` its change to the model reversed and times `scale`; `gaussian` a change of Gaussian
 * noise, standard deviation `scale`; `constant` a change of `scale` in every parameter; or
 * `label_flip` trains on its digits' labels flipped (class c as classes − 1 − c). Seeded.
 */
export const attackSchema = z
  .object({
    kind: z.enum(['sign_flip', 'gaussian', 'label_flip', 'constant']),
    scale: z.number().finite().optional(),
    seed: z.number().int().min(0).default(0),
  })
  .strict()
  .superRefine((attack, ctx) => {
    if (attack.kind === 'label_flip' && attack.scale !== undefined) ctx.addIssue({ code: 'custom', path: ['scale'], message: 'label_flip takes no scale: it trains on flipped labels' });
    if (attack.kind === 'gaussian' && attack.scale !== undefined && !(attack.scale > 0)) ctx.addIssue({ code: 'custom', path: ['scale'], message: `the noise's standard deviation is above 0, not ${attack.scale}` });
  });

export type Attack = z.infer<typeof attackSchema>;

/** The attack in a few words, for logs and reports: "sign_flip ×4", "gaussian σ 0.5", "label_flip". */
export function describeAttack(attack: Attack): string {
  const scale = attack.scale ?? 1;
  return { sign_flip: `sign_flip ×${scale}`, gaussian: `gaussian σ ${scale}`, constant: `constant ${scale}`, label_flip: 'label_flip' }[attack.kind] + (attack.seed ? ` (seed ${attack.seed})` : '');
}

const clientEntry = z
  .object({
    type: z.literal('client'),
    client_number: positiveInt,
    index: z.number().int().min(0),
    /** The switch this client reports to; absent: straight to the aggregator. */
    switch: address.optional(),
    /** This client's own files, where they differ from data.path. */
    data: dataFilesSchema.optional(),
    /** This client attacks (robustness studies): flagged wherever the run is shown. */
    attack: attackSchema.optional(),
  })
  .strict()
  .superRefine((entry, ctx) => {
    if (entry.index >= entry.client_number) {
      ctx.addIssue({
        code: 'custom',
        path: ['index'],
        message: `must be below client_number (${entry.client_number}): slice index of client_number, counted from 0; got ${entry.index}`,
      });
    }
  });

export { ROLES, type ComputeShare, type LabEvent, type LinkShape } from './lab-schema';

const switchEntry = z
  .object({
    type: z.literal('switch'),
    /** The switch this one reports to (a rack switch under a spine); absent: straight to the aggregator. */
    switch: address.optional(),
  })
  .strict();
const aggregatorEntry = z.object({ type: z.literal('aggregator') }).strict();

export const workerEntrySchema = z.discriminatedUnion('type', [clientEntry, switchEntry, aggregatorEntry], {
  error: (issue) =>
    issue.code === 'invalid_union' ? 'type must be "client", "switch" or "aggregator"' : undefined,
});

export const experimentConfigSchema = settingsSchema
  .extend({
    experiment: experimentName.default('experiment'),
    links: linksSchema.optional(),
    compute: computeTableSchema.optional(),
    events: eventsSchema.optional(),
    clients_per_process: clientsPerProcessSchema.default(1),
    /** Mutual TLS between nodes; absent: on, unless every node is on loopback. */
    tls: z.boolean().optional(),
    /** The folder `main.js certs` writes (relative to config.json's folder). */
    certs: z.string().min(1).default('certs'),
    others: z.record(address, workerEntrySchema),
  })
  .strict();

export type ExperimentConfig = z.infer<typeof experimentConfigSchema>;

/** Every key config.json may use, for "did you mean" hints. */
export const KNOWN_KEYS: readonly string[] = [
  ...new Set(
    [experimentConfigSchema, modelSchema, trainingSchema, dataSchema, heObject, quantizeSchema, timeoutsSchema, linkSchema, computeSchema, stragglersSchema]
      .flatMap((schema) => Object.keys(schema.shape))
      .concat(['type', 'client_number', 'index', 'switch', 'data', 'path', 'labels_path', ...EVENT_KEYS]),
  ),
];
