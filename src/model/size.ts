/**
 * A model's size from its settings alone, without building it: the config reader, the switches and
 * the command line need the count, not the model, and so never load TensorFlow.js (about 30 MB
 * resident, and 0.2 s of a process's start). model.ts and architectures.ts build the models from the
 * same constants; the tests check the two agree.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Settings } from '../config/schema';

export const LARGE_ARCHITECTURES = ['cifar_cnn', 'resnet18'] as const;
export type LargeArchitecture = (typeof LARGE_ARCHITECTURES)[number];

/** One sample's shape as [height, width, channels], and the classes told apart. */
export interface ImageInput {
  shape: number[];
  classes: number;
}

export const CIFAR_FILTERS = [32, 64];
export const CIFAR_UNITS = 256;

/** A 3x3 convolution's parameters, with its bias or without (before a batch norm). */
const conv = (size: number, cin: number, cout: number, bias: boolean) => size * size * cin * cout + (bias ? cout : 0);
/** A batch norm's: γ, β and the moving mean and variance, all exchanged (FedAvg averages the statistics too). */
const batchNorm = (channels: number) => 4 * channels;

/** An image input as [height, width, channels], or why `name` (a convolutional model) cannot take it. */
export function imageShape(input: ImageInput, name: string): [number, number, number] {
  const [height, width, channels = 1] = input.shape;
  if (input.shape.length < 2 || Math.min(height, width) < 16) {
    throw new Error(`${name} needs images of at least 16x16 (data.shape [height, width, channels]); data.shape is [${input.shape.join(', ')}]: use the MLP`);
  }
  return [height, width, channels];
}

export function largeParameterCount(name: LargeArchitecture, input: ImageInput): number {
  const [height, width, channels] = imageShape(input, name);
  if (name === 'cifar_cnn') {
    let cin = channels;
    let total = 0;
    for (const filters of CIFAR_FILTERS) {
      total += conv(3, cin, filters, true) + conv(3, filters, filters, true);
      cin = filters;
    }
    const flat = Math.floor(height / 4) * Math.floor(width / 4) * cin;
    return total + flat * CIFAR_UNITS + CIFAR_UNITS + CIFAR_UNITS * input.classes + input.classes;
  }
  let total = conv(3, channels, 64, false) + batchNorm(64);
  for (const block of resnetBlocks()) {
    total += conv(3, block.in, block.out, false) + batchNorm(block.out) + conv(3, block.out, block.out, false) + batchNorm(block.out);
    if (projects(block)) total += conv(1, block.in, block.out, false) + batchNorm(block.out);
  }
  return total + 512 * input.classes + input.classes;
}

export interface Block {
  in: number;
  out: number;
  stride: number;
}

/** ResNet-18's eight basic blocks after the stem. */
export function resnetBlocks(): Block[] {
  const blocks: Block[] = [];
  let cin = 64;
  for (const [out, stride] of [[64, 1], [128, 2], [256, 2], [512, 2]]) {
    blocks.push({ in: cin, out, stride }, { in: out, out, stride: 1 });
    cin = out;
  }
  return blocks;
}

/** A block whose shortcut must change shape: a 1x1 convolution (with its batch norm) carries it. */
export const projects = (block: Block) => block.stride !== 1 || block.in !== block.out;

type ModelSettings = Settings['model'];

/** What a model takes and tells apart: one sample's shape and the number of classes (`inputOf(settings.data)`). */
export type ModelInput = ImageInput;

export const isLarge = (architecture: string): architecture is LargeArchitecture => (LARGE_ARCHITECTURES as readonly string[]).includes(architecture);

export const DIGITS: ModelInput = { shape: [28, 28, 1], classes: 10 };
/** How many values one sample holds: the product of its shape. */
export const valuesPerSample = (input: ModelInput) => input.shape.reduce((a, b) => a * b, 1);

/** The small MLP for tables: a second hidden layer of half the first (at least 8). */
export const tabularSecond = (hidden: number) => Math.max(8, Math.floor(hidden / 2));

/** The CNN's two 5x5 convolutions, each followed by 2x2 pooling: the side after them. */
export function convolvedSide(side: number): number {
  return Math.floor((Math.floor((side - 4) / 2) - 4) / 2);
}

/** `path` names the folder, or its model.json. */
export const modelFolder = (path: string) => (basename(path) === 'model.json' ? dirname(path) : path);

/** What buildModel(spec, seed, input) holds, computed without building it. */
export function expectedParameterCount(spec: ModelSettings, input: ModelInput = DIGITS): number {
  if (spec.architecture === 'file') return fileParameterCount(modelFolder(spec.path!));
  if (isLarge(spec.architecture)) return largeParameterCount(spec.architecture, input);
  const h = spec.hidden_units;
  const classes = input.classes;
  if (spec.architecture === 'mlp') return valuesPerSample(input) * h + h + h * classes + classes;
  if (spec.architecture === 'tabular') {
    const second = tabularSecond(h);
    return valuesPerSample(input) * h + h + h * second + second + second * classes + classes;
  }
  const [height, across, channels] = imageShape(input, 'the CNN');
  const conv1 = 5 * 5 * channels * 8 + 8;
  const conv2 = 5 * 5 * 8 * 16 + 16;
  const flat = convolvedSide(height) * convolvedSide(across) * 16; // 28 -> conv 24 -> pool 12 -> conv 8 -> pool 4
  return conv1 + conv2 + flat * h + h + h * classes + classes;
}

/** The parameters a saved model holds, read off its model.json (every node, the switch too, needs the count at start). */
function fileParameterCount(dir: string): number {
  const file = join(dir, 'model.json');
  let manifest: { weightsManifest?: { weights: { shape: number[] }[] }[] };
  try {
    manifest = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: cannot read the model: ${(err as Error).message}`);
  }
  if (!Array.isArray(manifest.weightsManifest)) throw new Error(`${file}: not a TensorFlow.js layers model (no weightsManifest)`);
  return manifest.weightsManifest.flatMap((group) => group.weights).reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
}
