/** A config's fingerprint: the same for equal configs whatever their key order, so two nodes can compare. */
import { createHash } from 'node:crypto';

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
  }
  return value;
}

export const configFingerprint = (config: unknown): string =>
  createHash('sha256').update(JSON.stringify(canonical(config))).digest('hex').slice(0, 32);
