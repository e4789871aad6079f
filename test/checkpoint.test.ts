/** Checkpoints and what a resume rests on: torn files found, the right one chosen, state carried over. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import request from 'supertest';
import { asFloat32, CheckpointError, CheckpointStore, decodeCheckpoint, encodeCheckpoint, float32Bytes } from '../src/checkpoint';
import { parseExperimentConfig, resolveNodeConfigs } from '../src/config/load';
import { nodeConfigSchema } from '../src/config/schema';
import { testbedConfig } from '../src/config/testbed';
import { IterationLog } from '../src/log/iteration-log';
import { WireMeter } from '../src/net/wire-meter';
import { createWorkerApp } from '../src/node/worker';
import { findCheckpoint, ResumeError } from '../src/orchestrator/resume';
import { CHECKPOINTS_DIR } from '../src/roles/aggregator';
import { FedAvgM } from '../src/strategy/strategy';
import { nodeContext, TOKEN } from './helpers/node-context';

const temp = () => mkdtempSync(join(tmpdir(), 'fl-ckpt-'));
const weights = (seed: number, n = 1000) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1000 + i));

describe('checkpoint files', () => {
  it('read back exactly what was written', () => {
    const global = weights(1);
    const bytes = encodeCheckpoint(4, { rows: [{ round: 4 }] }, { global: float32Bytes(global), extra: Uint8Array.from([1, 2, 3]) });
    const back = decodeCheckpoint(bytes);
    assert.equal(back.round, 4);
    assert.deepEqual(back.header, { rows: [{ round: 4 }] });
    assert.deepEqual(asFloat32(back.blobs.global), global);
    assert.deepEqual([...back.blobs.extra], [1, 2, 3]);
  });

  const damage: [string, (b: Buffer) => Buffer, RegExp][] = [
    ['cut short (a torn write)', (b) => b.subarray(0, b.length - 100), /checksum mismatch/],
    ['one byte flipped', (b) => (b[b.length >> 1] ^= 0xff, b), /checksum mismatch/],
    ['empty', () => Buffer.alloc(0), /too short/],
    ['something else', () => Buffer.from('{"round": 3, "weights": [0.1, 0.2, 0.3, 0.4, 0.5]} and more text'), /bad magic/],
  ];
  for (const [name, harm, reason] of damage) {
    it(`are refused when ${name}`, () => {
      const bytes = encodeCheckpoint(2, {}, { global: float32Bytes(weights(2)) });
      assert.throws(() => decodeCheckpoint(harm(Buffer.from(bytes)), 'f.ckpt'), (err: Error) => err instanceof CheckpointError && reason.test(err.message));
    });
  }
});

describe('the checkpoint store', () => {
  it('keeps the last three, and passes over a damaged newest one to the one before', () => {
    const store = new CheckpointStore(join(temp(), 'checkpoints'));
    for (let round = 1; round <= 5; round++) store.save(round, { round }, { global: float32Bytes(weights(round)) });
    assert.deepEqual(readdirSync(store.dir).sort(), ['round-003.ckpt', 'round-004.ckpt', 'round-005.ckpt']);
    const newest = join(store.dir, 'round-005.ckpt');
    writeFileSync(newest, readFileSync(newest).subarray(0, 500));
    const { checkpoint, skipped } = store.latest();
    assert.equal(checkpoint!.round, 4);
    assert.deepEqual(asFloat32(checkpoint!.blobs.global), weights(4));
    assert.equal(skipped.length, 1);
    assert.match(skipped[0].reason, /round-005\.ckpt: checksum mismatch/);
  });

  it('past round 999 keeps the newest three and loads the newest, by round number not by name', () => {
    const store = new CheckpointStore(join(temp(), 'checkpoints'));
    for (let round = 998; round <= 1001; round++) store.save(round, { round }, { global: float32Bytes(weights(round)) });
    assert.deepEqual(readdirSync(store.dir).sort(), ['round-1000.ckpt', 'round-1001.ckpt', 'round-999.ckpt']);
    assert.deepEqual(store.files().map((f) => f.slice(store.dir.length + 1)), ['round-1001.ckpt', 'round-1000.ckpt', 'round-999.ckpt']);
    const { checkpoint, skipped } = store.latest();
    assert.equal(checkpoint!.round, 1001);
    assert.deepEqual(asFloat32(checkpoint!.blobs.global), weights(1001));
    assert.deepEqual(skipped, []);
  });

  it('leaves no temporary file behind', () => {
    const store = new CheckpointStore(join(temp(), 'checkpoints'));
    store.save(1, {}, { global: float32Bytes(weights(1)) });
    assert.deepEqual(readdirSync(store.dir), ['round-001.ckpt']);
  });
});

describe('resuming', () => {
  const config = (edit: (c: Record<string, any>) => void = () => undefined) => {
    const raw = testbedConfig({ base: '127.0.0', nodes: 5, switches: 1, experiment: 'resume-me', rounds: 6 }) as Record<string, any>;
    edit(raw);
    return parseExperimentConfig(raw);
  };
  const outputsWithCheckpoint = (round: number) => {
    const outputs = temp();
    const { experiment, others: _others, ...settings } = config();
    new CheckpointStore(join(outputs, experiment, CHECKPOINTS_DIR)).save(round, { experiment, settings, rows: [], strategy_state: [] }, { global: float32Bytes(weights(1)) });
    return outputs;
  };
  const lines: string[] = [];
  const print = (line: string) => lines.push(line);

  it('starts from round 1 when there is no checkpoint yet', () => {
    assert.equal(findCheckpoint(config(), temp(), print), undefined);
    assert.match(lines.at(-1)!, /no checkpoint in .* yet; starting from round 1/);
  });

  it('goes on from the newest checkpoint, and may run more rounds or wait longer than before', () => {
    const outputs = outputsWithCheckpoint(3);
    const more = config((c) => ((c.rounds = 10), (c.timeouts = { round_ms: 5000 })));
    assert.equal(findCheckpoint(more, outputs, print)!.round, 3);
  });

  it('takes the settings the aggregator saved after its node config went over the wire (keys in another order)', () => {
    for (const he of [{ enabled: true }, { enabled: true, quantize: { bits: 8 } }]) {
      const experiment = config((c) => (c.he = he));
      const [aggregator] = [...resolveNodeConfigs(experiment).values()].filter((n) => n.type === 'aggregator');
      const { settings } = nodeConfigSchema.parse(JSON.parse(JSON.stringify(aggregator))); // as POST /config takes it
      // And whatever order a node writes them in (the checkpoint's JSON is not ours to order).
      const reordered = { ...settings, he: Object.fromEntries(Object.entries(settings.he).reverse()) };
      assert.notEqual(JSON.stringify(reordered.he), JSON.stringify(experiment.he));
      for (const saved of [settings, reordered]) {
        const outputs = temp();
        new CheckpointStore(join(outputs, experiment.experiment, CHECKPOINTS_DIR)).save(2, { experiment: experiment.experiment, settings: saved, rows: [], strategy_state: [] }, { global: float32Bytes(weights(1)) });
        assert.equal(findCheckpoint(experiment, outputs, print)!.round, 2);
      }
    }
  });

  it('refuses a config whose settings differ from the checkpoint, naming them', () => {
    const outputs = outputsWithCheckpoint(3);
    const other = config((c) => ((c.training = { ...c.training, learning_rate: 0.01 }), (c.he = { enabled: false })));
    assert.throws(() => findCheckpoint(other, outputs, print), (err: Error) => err instanceof ResumeError && /training, he differ/.test(err.message));
  });

  it('refuses fewer rounds than are done', () => {
    const outputs = outputsWithCheckpoint(3);
    assert.throws(() => findCheckpoint(config((c) => (c.rounds = 2)), outputs, print), /3 rounds are done already, but rounds is 2/);
  });

  it('refuses to start over silently when every checkpoint is damaged', () => {
    const outputs = outputsWithCheckpoint(3);
    const file = join(outputs, 'resume-me', CHECKPOINTS_DIR, 'round-003.ckpt');
    writeFileSync(file, readFileSync(file).subarray(0, 100));
    assert.throws(() => findCheckpoint(config(), outputs, print), /no readable checkpoint .* \(1 damaged\)/);
  });

  it("FedAvgM's momentum survives a restart: the next round matches an uninterrupted run", () => {
    const training = { epochs: 1, batch_size: 32, learning_rate: 0.1, strategy: 'fedavgm' as const, server_momentum: 0.9 };
    const evaluate = () => ({ accuracy: 0, loss: 0 });
    const total = (seed: number) => ({ kind: 'plain' as const, sum: Float64Array.from(weights(seed), (v) => v * 10), weight: 10, contributors: 2 });
    const step = (strategy: FedAvgM, round: number, values: Float32Array) => {
      const next = strategy.aggregateFit(round, { kind: 'plain', values }, total(round), [], []);
      return next.kind === 'plain' ? next.values : assert.fail('FedAvgM gave an encrypted model');
    };
    const steady = new FedAvgM(training, evaluate);
    let global: Float32Array = weights(0);
    global = step(steady, 1, global);
    const restarted = new FedAvgM(training, evaluate);
    restarted.restore(Object.fromEntries(Object.entries(steady.snapshot()).map(([k, v]) => [k, asFloat32(float32Bytes(Float32Array.from(v)))])));
    const resumed = step(restarted, 2, global);
    assert.notDeepEqual(resumed, step(new FedAvgM(training, evaluate), 2, global), 'the momentum must matter, or this test shows nothing');
    assert.deepEqual(resumed, step(steady, 2, global));
  });
});

describe('logs across restarts', () => {
  it('a node that restarts carries on its iteration log; a resumed aggregator drops the rounds it runs again', () => {
    const dir = temp();
    const first = new IterationLog(dir, 'n1', 'exp', new WireMeter());
    for (const round of [1, 2, 3]) (first.beginRound(round), first.endRound({ note: `first process, round ${round}` }));
    const second = new IterationLog(dir, 'n1', 'exp', new WireMeter());
    second.beginRound(4);
    second.endRound();
    assert.deepEqual(second.rounds.map((e) => e.round), [1, 2, 3, 4]);
    second.keepRounds(2);
    const onDisk = JSON.parse(readFileSync(second.file, 'utf8')).iteration;
    assert.deepEqual(onDisk.map((e: { round: number }) => e.round), [1, 2]);
  });

  it("health checks on a connection of their own are left out of a node's byte counts", async () => {
    const context = nodeContext('metered');
    const { app } = createWorkerApp(context, TOKEN);
    const server = http.createServer(app);
    context.meter.attachServer(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const agent = new http.Agent({ keepAlive: true });
    const get = (path: string, headers: Record<string, string> = {}) =>
      new Promise<void>((resolve, reject) => http.get(`http://${base}${path}`, { agent, headers }, (res) => res.resume().on('end', resolve)).on('error', reject));
    try {
      for (let i = 0; i < 5; i++) await get('/health');
      assert.deepEqual(context.meter.totals(), { received: 0, sent: 0 });
      await request(`http://${base}`).get('/config').set({ Authorization: `Bearer ${TOKEN}` }); // experiment traffic counts
      assert.ok(context.meter.totals().received > 0);
    } finally {
      agent.destroy();
      server.closeAllConnections();
      server.close();
    }
  });
});
