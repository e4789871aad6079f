/**
 * What a worker receives at POST /config: the experiment's settings, its own address and role, and
 * what the role needs of the tree (a client its upstream, a switch the tree beneath it, the
 * aggregator the whole tree). Made from config.json by `resolveNodeConfigs` (load.ts).
 */
import { z } from 'zod';
import { shippedTreeProblem } from '../topology/checks';
import { Topology } from '../topology/tree';
import { dataFilesSchema } from './data-schema';
import { address, attackSchema, experimentName, positiveInt, settingsSchema } from './schema';

const nodeBase = {
  experiment: experimentName,
  /** This node's own address as config.json names it. */
  address,
  aggregator: address,
  settings: settingsSchema,
};

export const clientNodeSchema = z
  .object({
    ...nodeBase,
    type: z.literal('client'),
    client_number: positiveInt,
    index: z.number().int().min(0),
    /** Where updates go: the switch, or the aggregator when the client has no switch. */
    upstream: address,
    /** The switches between this client and the aggregator, nearest first (stand-bys may come from any of them). */
    above: z.array(address).default([]),
    data: dataFilesSchema.optional(),
    attack: attackSchema.optional(),
  })
  .strict()
  .refine((c) => c.index < c.client_number, { path: ['index'], message: 'must be below client_number' })
  .refine((c) => c.data?.path === undefined || c.settings.data.train_size === undefined, {
    path: ['settings', 'data', 'train_size'],
    message: 'slices one shared data set; this client reads files of its own (data.path) and trains on all of them',
  });

/** Every node beneath a switch (all workers, for the aggregator) and the node it reports to. */
const tree = z.record(address, address);

/** A node config's tree must be one, rooted at the node: every node in it reaches the node, and it has a client. */
function rootedTree(config: { type: string; address: string; tree: Record<string, string> }, ctx: z.RefinementCtx): void {
  const topology = new Topology(config.address, config.tree);
  if (config.type === 'switch' && !topology.childrenOf(config.address).length) {
    return void ctx.addIssue({ code: 'custom', path: ['tree'], message: 'a switch needs a client or a switch beneath it' });
  }
  const problem = shippedTreeProblem(topology);
  if (problem) ctx.addIssue({ code: 'custom', path: ['tree'], message: `not a tree beneath ${config.address}: ${problem}` });
}

export const switchNodeSchema = z
  .object({
    ...nodeBase,
    type: z.literal('switch'),
    /** The part of the tree beneath this switch: its clients, the switches below it and theirs. */
    tree,
    /** Where the sum goes: the switch above, or the aggregator. */
    upstream: address,
  })
  .strict()
  .superRefine(rootedTree);

export const aggregatorNodeSchema = z
  .object({
    ...nodeBase,
    type: z.literal('aggregator'),
    /** Every switch and client, and where it reports: a switch, or this aggregator. */
    tree,
    /** The clients config.json has attack, and how: flagged in every round line, metrics.json and the report. */
    attackers: z.record(address, attackSchema).optional(),
  })
  .strict()
  .superRefine(rootedTree);

export const nodeConfigSchema = z.discriminatedUnion('type', [clientNodeSchema, switchNodeSchema, aggregatorNodeSchema], {
  error: (issue) =>
    issue.code === 'invalid_union' ? 'type must be "client", "switch" or "aggregator"' : undefined,
});

export type ClientNodeConfig = z.infer<typeof clientNodeSchema>;
export type SwitchNodeConfig = z.infer<typeof switchNodeSchema>;
export type AggregatorNodeConfig = z.infer<typeof aggregatorNodeSchema>;
export type NodeConfig = z.infer<typeof nodeConfigSchema>;
export type RoleType = NodeConfig['type'];
