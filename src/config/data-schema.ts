/**
 * What config.json's `data` may hold: where samples come from (the shipped digits, or files on each
 * machine), how they are split among the clients, and how many are held out and trained on.
 */
import { z } from 'zod';

const count = z.number().int().positive();

/** Where a node's data is on its machine; `{index}` in a path is the client's index. */
export const dataFilesSchema = z
  .object({
    path: z.string().min(1).optional(),
    /** IDX only: the labels file beside the images file. */
    labels_path: z.string().min(1).optional(),
  })
  .strict();
export type DataFiles = z.infer<typeof dataFilesSchema>;

export const DATA_SOURCES = ['mnist', 'idx', 'cifar', 'csv', 'png'] as const;
/** The digits the `mnist` package ships. */
const MNIST_SAMPLES = 10_000;

export const dataSchema = z
  .object({
    dataset: z.literal('mnist').default('mnist'),
    /**
     * Where samples come from: the digits the `mnist` package ships (every node has them), or files
     * on each node's machine: IDX (images + labels), CIFAR-10 binary batches (a file or a folder of
     * them), CSV with a label column, or a folder of PNG images with a sub-folder per class.
     */
    source: z.enum(DATA_SOURCES).default('mnist'),
    path: z.string().min(1).optional(),
    labels_path: z.string().min(1).optional(),
    label_column: z.string().min(1).default('label'),
    /** One sample's shape and the number of classes: what the model is built for, checked on every node's data. */
    shape: z.array(count).min(1).max(3).optional(),
    classes: count.max(256).optional(),
    /** Class names in label order (CSV labels that are names, PNG sub-folders): every client numbers its own files alike. */
    class_names: z.array(z.string().min(1)).min(1).max(256).optional(),
    /** The aggregator's held-out set, when clients read files of their own (else held out of the shared file). */
    test: dataFilesSchema.optional(),
    split: z.enum(['iid', 'dirichlet', 'classes']).default('iid'),
    alpha: z.number().positive().default(0.5),
    classes_per_client: count.max(10).default(2),
    seed: z.number().int().min(0).default(42),
    test_size: count.max(100_000).default(2000),
    /**
     * How many of the shared samples not held out the clients train on, all together (default: every
     * one): fewer make a quicker run, or a study of how much data a model needs. The held-out set is
     * the same whatever it is. Not with files of each client's own: each trains on all of its own.
     */
    train_size: count.max(1_000_000).optional(),
  })
  .strict()
  .superRefine((data, ctx) => {
    if (data.train_size !== undefined && data.path?.includes('{index}')) {
      ctx.addIssue({ code: 'custom', path: ['train_size'], message: 'slices one shared data set; with files of each client\'s own ({index} in data.path) each trains on all of its own' });
    }
    if (data.source === 'mnist') {
      if (data.train_size !== undefined && data.test_size + data.train_size > MNIST_SAMPLES) {
        ctx.addIssue({ code: 'custom', path: ['train_size'], message: `${data.train_size} with test_size ${data.test_size} needs ${data.test_size + data.train_size} digits; the mnist package ships ${MNIST_SAMPLES}` });
      }
      for (const key of ['path', 'labels_path', 'shape', 'classes', 'class_names', 'test'] as const) {
        if (data[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'is for files of your own (data.source idx, cifar, csv or png); the mnist package\'s digits are [28, 28, 1] in 10 classes' });
      }
      return;
    }
    if (data.class_names && data.classes !== undefined && data.class_names.length !== data.classes) {
      ctx.addIssue({ code: 'custom', path: ['class_names'], message: `names ${data.class_names.length} classes, data.classes says ${data.classes}` });
    }
    const need = (key: 'shape' | 'classes', example: string) =>
      data[key] === undefined && ctx.addIssue({ code: 'custom', path: [key], message: `needed with source "${data.source}" (${example})` });
    // data.path (and labels_path), which others[addr].data may give per client instead, is checked with others (load.ts).
    need('shape', 'one sample\'s shape, e.g. [28, 28, 1], [32, 32, 3] or [49] for 49 columns');
    need('classes', 'how many classes the labels name, e.g. 10');
    if (data.path?.includes('{index}') && !data.test) {
      ctx.addIssue({ code: 'custom', path: ['test'], message: 'needed when every client reads files of its own ({index} in data.path): the aggregator\'s held-out files' });
    }
  });

/** What the model is built for: one sample's shape and the classes; the shipped digits unless the config says otherwise. */
export function inputOf(data: Pick<z.infer<typeof dataSchema>, 'shape' | 'classes'>): { shape: number[]; classes: number } {
  return { shape: data.shape ?? [28, 28, 1], classes: data.classes ?? 10 };
}
