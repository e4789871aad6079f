/** `agg --resume`: find the newest whole checkpoint of an experiment and check it fits the config. */
import { join } from 'node:path';
import { CHECKPOINTS_DIR, CheckpointStore, type Checkpoint, type CheckpointHeader } from '../checkpoint';
import { configFingerprint } from '../config/fingerprint';
import type { ExperimentConfig } from '../config/schema';

export class ResumeError extends Error {}

/** Settings a resumed experiment may change: how many rounds, how long to wait, how its nodes talk (TLS, the certificates) and are launched. */
const CHANGEABLE = new Set(['rounds', 'timeouts', 'tls', 'certs', 'clients_per_process']);

export function findCheckpoint(config: ExperimentConfig, outputsDir: string, print: (line: string) => void): Checkpoint | undefined {
  const store = new CheckpointStore(join(outputsDir, config.experiment, CHECKPOINTS_DIR));
  const { checkpoint, skipped } = store.latest();
  for (const s of skipped) print(`resume: skipping ${s.reason}`);
  if (!checkpoint) {
    if (skipped.length) throw new ResumeError(`resume: no readable checkpoint in ${store.dir} (${skipped.length} damaged)`);
    print(`resume: no checkpoint in ${store.dir} yet; starting from round 1`);
    return undefined;
  }
  const header = checkpoint.header as unknown as CheckpointHeader;
  const { experiment, others, ...settings } = config;
  const changed = Object.keys({ ...settings, ...header.settings }).filter(
    // Compared whatever their key order: settings that went through a node's config arrive reordered.
    (key) => !CHANGEABLE.has(key) && configFingerprint(settings[key as keyof typeof settings] ?? null) !== configFingerprint(header.settings[key as keyof typeof settings] ?? null),
  );
  if (changed.length) {
    throw new ResumeError(`resume: ${checkpoint.file} was made with other settings (${changed.join(', ')} differ); resume with the config it was made with`);
  }
  if (config.rounds < checkpoint.round) {
    throw new ResumeError(`resume: ${checkpoint.round} rounds are done already, but rounds is ${config.rounds}`);
  }
  return checkpoint;
}
