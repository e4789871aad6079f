/**
 * 15, by parameters: models of 100k, 1M and 10M parameters (an MLP of 32 units, the built-in CIFAR
 * CNN, ResNet-18) on 32x32x3 images, each in plaintext, under HE and under quantized HE (8 bits),
 * the key at the aggregator: two clients under a switch. Round time, its ratio to plaintext, each
 * role's peak memory, round over its floor; and a switch's throughput on quantized 100k updates.
 * The images are digits made CIFAR records (src/data/sample-files.ts), 100 to a client: a round is
 * one pass over them, so ResNet-18's rounds stay minutes, not hours, on wasm.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { someDigits, writeCifar } from '../src/data/sample-files';
import { fixed, log, megabytes } from './common';
import { switchThroughput, type SwitchThroughput } from './switch';
import { testbedRun, type TestbedRun } from './testbed-runs';

/**
 * ResNet-18's batch of 32 holds a client 20 s on wasm here, and a minute while the other client's HE
 * threads encrypt beside it on the two cores: two rounds (one steady), and heartbeats of 30 s, so the
 * aggregator does not count a client down before it has said how long its steps are (GET /health).
 */
const MODELS = [
  { label: '100k', model: { architecture: 'mlp', hidden_units: 32 }, rounds: 3, heartbeat_ms: 2000 },
  { label: '1M', model: { architecture: 'cifar_cnn' }, rounds: 3, heartbeat_ms: 2000 },
  { label: '10M', model: { architecture: 'resnet18' }, rounds: 2, heartbeat_ms: 30_000 },
] as const;
const MODES = [
  { mode: 'plaintext', he: { enabled: false } },
  { mode: 'HE', he: { enabled: true, key_holder: 'aggregator' } },
  { mode: 'quantized HE', he: { enabled: true, key_holder: 'aggregator', quantize: { bits: 8 } } },
] as const;
const CLIENTS = 2;
const PER_CLIENT = 100;
const TEST = 200;

export interface ModelRow extends TestbedRun {
  label: string;
  mode: string;
  /** Round time over plaintext's, same model. */
  ratio: number;
}

export interface ModelResults {
  command: string;
  date: string;
  rows: ModelRow[];
  /** A switch taking quantized 100k updates, 24 and 120 to a round. */
  switches: SwitchThroughput[];
}

export async function modelRuns(quick: boolean, command: string): Promise<ModelResults> {
  const data = writeCifar(join(mkdtempSync(join(tmpdir(), 'fl-bench-models-')), 'digits.bin'), someDigits(CLIENTS * PER_CLIENT + TEST));
  const rows: ModelRow[] = [];
  for (const { label, model, rounds, heartbeat_ms } of quick ? MODELS.slice(0, 2) : MODELS) {
    let plaintext = 0;
    for (const { mode, he } of MODES) {
      log(`  ${label} parameters (${model.architecture}), ${mode}`);
      const run = await testbedRun({
        name: `model-${label}-${mode.replace(' ', '-')}`,
        clients: CLIENTS,
        switches: 1,
        rounds: quick ? 2 : rounds,
        he: he.enabled,
        heSettings: he,
        base: '127.0.6',
        edit: (config) => {
          config.model = model;
          config.data = { ...config.data, source: 'cifar', path: data, shape: [32, 32, 3], classes: 10, test_size: TEST };
          config.training = { ...config.training, learning_rate: 0.01 };
          config.timeouts = { ...config.timeouts, round_ms: 3_600_000, heartbeat_ms };
        },
      });
      if (mode === 'plaintext') plaintext = run.round_s;
      rows.push({ ...run, label, mode, ratio: run.round_s / plaintext });
    }
  }
  log('  switch throughput, quantized 100k updates');
  const switches = [await switchThroughput(quick ? 1 : 3, 8, 24), await switchThroughput(quick ? 1 : 3, 8, 120)];
  return { command, date: new Date().toISOString(), rows, switches };
}

export function formatModels(results: ModelResults | undefined): string[] {
  const head = ['### By parameters: 100k, 1M and 10M', ''];
  if (!results) return [...head, 'Not run yet: `npm run bench -- models`.', ''];
  const mb = (value: number | undefined) => (value === undefined ? '—' : fixed(value));
  return [
    ...head,
    `Made by \`${results.command}\` on ${results.date.slice(0, 10)}. Two clients under a switch on loopback, ${PER_CLIENT} images of 32x32x3 each (digits as CIFAR records), 3 rounds (ResNet-18: 2), medians of rounds 2 on; the key at the aggregator, learning rate 0.01. One run of each. Memory is each process's peak resident (VmHWM, MiB): the largest client, the switch, the aggregator.`,
    '',
    '| parameters | model | mode | s / round | ÷ plaintext | ÷ floor | update MB | client MiB | switch MiB | aggregator MiB |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...results.rows.map(
      (r) =>
        `| ${fixed(r.parameters)} | ${r.label} | ${r.mode} | ${r.round_s.toFixed(2)} | ${r.ratio.toFixed(2)}x | ${r.over_floor?.toFixed(2) ?? '—'} | ${megabytes(r.update_bytes)} | ${mb(r.process_rss_mb_max?.client)} | ${mb(r.process_rss_mb_max?.switch)} | ${mb(r.aggregator_hwm_mb)} |`,
    ),
    '',
    'A switch taking quantized (8-bit) updates of 101,770 parameters from 6 senders at once, the senders in a thread of their own (section 2\'s method); beside it, a bare Express app taking the same bodies from the same senders (it reads each and answers), the most this event loop takes:',
    '',
    '| updates a round | updates / s | MB / s of ciphertext | bare Express, updates / s |',
    '| --- | --- | --- | --- |',
    ...results.switches.map((s) => `| ${s.updates_per_round} | ${s.updates_per_s.toFixed(0)} | ${s.mb_per_s.toFixed(0)} | ${s.bare_http_updates_per_s?.toFixed(0) ?? '—'} |`),
    '',
  ];
}
