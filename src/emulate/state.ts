/** What `up --emulate` leaves in the state folder for `status`, `exec`, the schedule and `down`: the plan it built, and what it measured. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestbedPlan } from './plan';
import type { MeasuredRate } from './rate';
import { EmulateError } from './system';

export interface EmulatedState {
  config: string;
  dir: string;
  plan: TestbedPlan;
  netem: boolean;
  measured: Record<string, MeasuredRate>;
  /** Under mutual TLS, the folder of certificates the launcher hands out. */
  certs?: string;
}

export const stateFile = (state: string) => join(state, 'emulate.json');

export function readEmulatedState(state: string): EmulatedState {
  const file = stateFile(state);
  if (!existsSync(file)) throw new EmulateError(`no emulated testbed in ${state} (start one with \`npm run testbed -- up --emulate\`)`);
  return JSON.parse(readFileSync(file, 'utf8'));
}

