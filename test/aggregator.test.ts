/**
 * The aggregator role's pieces, each on its own: the executor (real sockets), the accumulators
 * (real CKKS), the global model per key mode, the round clock, the checkpoint codec.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { aggregatorCheckpoint, aggregatorState, CheckpointError, decodeCheckpoint, encodeCheckpoint } from '../src/checkpoint';
import { Ckks } from '../src/he/ckks';
import type { HttpError } from '../src/net/errors';
import { startSession, type HeSession } from '../src/he/keys';
import { parseExperimentConfig, resolveNodeConfigs } from '../src/config/load';
import type { AggregatorNodeConfig } from '../src/config/schema';
import { testbedConfig } from '../src/config/testbed';
import { RoundMachine } from '../src/protocol/aggregator/machine';
import { AggregatorRole } from '../src/roles/aggregator';
import { EncryptedAccumulator, PlaintextAccumulator, type Gate } from '../src/roles/aggregator/accumulator';
import { RoundExecutor, type RoundWork } from '../src/roles/aggregator/executor';
import { SealedGlobal } from '../src/roles/aggregator/global-model';
import { RoundClock } from '../src/roles/aggregator/round-clock';
import { FedAvg } from '../src/strategy/strategy';
import { decode } from '../src/wire/codec';
import { nodeContext } from './helpers/node-context';
import { waitFor } from './helpers/cluster';

const open: Gate = { check: () => undefined, commit: (store) => store() };
/** As the round machine refuses: before slow work (check), or when handed the report (commit). */
const refusing: Gate = {
  check: () => {
    throw new Error('refused');
  },
  commit: () => {
    throw new Error('refused');
  },
};

describe('the round executor', () => {
  /** A switch and a client on loopback: the switch holds its answer to /s/round until told to answer. */
  let switchServer: http.Server;
  let clientServer: http.Server;
  const calls: string[] = [];
  let answerOpening: () => void = () => undefined;
  /** What the client answers a model with: 200, or a refusal (a client still busy with an earlier round); and the switch. */
  let modelAnswer = 200;
  let switchModelAnswer = 200;
  before(async () => {
    const listen = (server: http.Server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
    switchServer = http.createServer((req, res) => {
      req.resume();
      calls.push(`switch ${req.url}`);
      const answer = () => (calls.push(`switch answered ${req.url}`), res.end('{}'));
      if (req.url === '/s/model') res.statusCode = switchModelAnswer;
      if (req.url === '/s/round') answerOpening = answer;
      else answer();
    });
    clientServer = http.createServer((req, res) => {
      req.resume();
      calls.push(`client ${req.url}`);
      res.statusCode = req.url === '/c/round' ? modelAnswer : 200;
      res.end(res.statusCode === 200 ? '{}' : '{"error": "busy", "reason": "still working on round 0"}');
    });
    switchPort = await listen(switchServer);
    clientPort = await listen(clientServer);
  });
  after(() => (switchServer.close(), clientServer.close()));
  let switchPort = 0;
  let clientPort = 0;

  /** `switchAddress` 'agg': the client reports to the aggregator itself. */
  function executor(timers: Set<NodeJS.Timeout>, switchAddress?: string, overrides?: Partial<RoundWork>) {
    const sw = switchAddress ?? `127.0.0.1:${switchPort}`;
    const clients = [`127.0.0.1:${clientPort}`];
    const machine = new RoundMachine({ rounds: 1, goal: 1, minFraction: 1, deadlineMs: 60_000, session: 's' }, { upstreamOf: new Map([[clients[0], sw]]), self: 'agg' });
    const context = nodeContext('executor');
    const work: RoundWork = {
      modelFor: () => Buffer.from('model'),
      switchOpening: (round, attempt, members) => ({ round, attempt, clients: members }),
      aggregate: async () => undefined,
      evaluate: async () => undefined,
      checkpoint: async () => undefined,
      discard: () => undefined,
      finish: () => undefined,
      fail: (what) => assert.fail(what),
      describe: (addresses) => addresses.join(', '),
      moved: () => undefined,
      ...overrides,
    };
    const io = {
      peers: context.peers,
      logger: context.logger,
      signal: new AbortController().signal,
      after: (ms: number, fn: () => void) => {
        const timer = setTimeout(fn, ms).unref();
        timers.add(timer);
        return timer;
      },
      cancel: (timer: NodeJS.Timeout) => (clearTimeout(timer), timers.delete(timer)),
      isStopped: () => false,
    };
    return { machine, run: new RoundExecutor(machine, io, work), clients, sw };
  }

  const executorFor = (switchAddress?: string, work?: Partial<RoundWork>) => executor(new Set(), switchAddress, work);

  it("sends the switch the model to relay only once it answered the round's opening, and not to its client", async () => {
    const timers = new Set<NodeJS.Timeout>();
    const { run, clients } = executor(timers);
    run.dispatch({ type: 'start' });
    run.dispatch({ type: 'checkin', client: clients[0] });
    await waitFor(async () => calls.includes('switch /s/round'));
    await new Promise((r) => setTimeout(r, 300)); // time enough for a model posted at once to arrive
    assert.deepEqual(calls, ['switch /s/round'], 'the model went down before the switch had its round');
    answerOpening();
    await waitFor(async () => calls.includes('switch answered /s/model'));
    assert.deepEqual(calls, ['switch /s/round', 'switch answered /s/round', 'switch /s/model', 'switch answered /s/model']);
    timers.forEach(clearTimeout);
  });

  it('keeps only the timer of the phase and attempt in force: a retried round leaves no stale deadline', () => {
    const timers = new Set<NodeJS.Timeout>();
    const { run, machine, clients, sw } = executor(timers);
    run.dispatch({ type: 'start' });
    assert.equal(timers.size, 1, 'the selection deadline');
    run.dispatch({ type: 'checkin', client: clients[0] });
    assert.equal(timers.size, 1, 'the selection deadline is gone; the training one is set');
    const first = machine.state.attempt;
    run.dispatch({ type: 'node-down', node: sw }); // the only switch: nothing can arrive, the round starts again
    assert.equal(machine.state.stage, 'selection');
    assert.equal(timers.size, 1, "the first attempt's training deadline is gone");
    run.dispatch({ type: 'node-up', node: sw });
    run.dispatch({ type: 'checkin', client: clients[0] });
    assert.notEqual(machine.state.attempt, first);
    assert.equal(timers.size, 1);
    // Even a deadline that escaped cancellation is dropped: it names the first attempt.
    run.dispatch({ type: 'deadline', phase: 'training', attempt: first });
    assert.equal(machine.state.stage, 'training');
    timers.forEach(clearTimeout);
    answerOpening(); // the switch's held answer to this test's opening
  });

  it("stops waiting for a switch that cannot open its round, and tells its clients to stand by", async () => {
    const timers = new Set<NodeJS.Timeout>();
    const { run, machine, clients } = executorFor(`127.0.0.1:1`); // nothing listens on port 1
    run.dispatch({ type: 'start' });
    calls.length = 0;
    run.dispatch({ type: 'checkin', client: clients[0] });
    await waitFor(async () => machine.state.stage !== 'training');
    assert.equal(machine.state.stage, 'selection', 'no update could come: the round starts again');
    await waitFor(async () => calls.includes('client /c/standby'));
    assert.ok(!calls.some((c) => c.endsWith('/s/model') || c.endsWith('/c/round')), 'no model for a switch that has no round, nor for its client');
    timers.forEach(clearTimeout);
  });

  it('tells a client to stand by, not to train, when its switch took the opening only after the round moved on', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const { run, machine, clients, sw } = executor(timers);
    run.dispatch({ type: 'start' });
    calls.length = 0;
    run.dispatch({ type: 'checkin', client: clients[0] });
    await waitFor(async () => calls.includes('switch /s/round'));
    const first = machine.state.attempt;
    run.dispatch({ type: 'node-down', node: sw }); // hung while it held the opening: the round starts again
    assert.equal(machine.state.stage, 'selection');
    // The switch's going down stands its client by once; the opening taken too late, a second time.
    await waitFor(async () => calls.filter((c) => c === 'client /c/standby').length === 1);
    answerOpening(); // it wakes up, and takes the opening of an attempt that is over
    await waitFor(async () => calls.includes('switch answered /s/round') && calls.filter((c) => c === 'client /c/standby').length === 2);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!calls.includes('switch /s/model'), `a model for attempt ${first}, which is over`);
    timers.forEach(clearTimeout);
  });

  it('stops waiting for a switch that does not take the model, and tells its clients to stand by', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const { run, machine, clients } = executor(timers);
    switchModelAnswer = 503;
    try {
      run.dispatch({ type: 'start' });
      calls.length = 0;
      run.dispatch({ type: 'checkin', client: clients[0] });
      await waitFor(async () => calls.includes('switch /s/round'));
      const first = machine.state.attempt;
      answerOpening();
      await waitFor(async () => calls.includes('client /c/standby'));
      assert.deepEqual(calls.slice(0, 4), ['switch /s/round', 'switch answered /s/round', 'switch /s/model', 'switch answered /s/model']);
      assert.notEqual(machine.state.attempt, first, 'nothing could come from the switch: the round started again');
    } finally {
      switchModelAnswer = 200;
      timers.forEach(clearTimeout);
    }
  });

  it('sends a direct client the model itself, and drops it from the round when it does not take it', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const { run, machine, clients } = executor(timers, 'agg');
    modelAnswer = 409;
    try {
      run.dispatch({ type: 'start' });
      calls.length = 0;
      const first = machine.state.attempt;
      run.dispatch({ type: 'checkin', client: clients[0] });
      await waitFor(async () => calls.includes('client /c/round'));
      await waitFor(async () => machine.state.attempt !== first);
      assert.ok(!calls.some((c) => c.startsWith('switch')), 'no switch is involved');
      assert.equal(machine.state.stage, 'selection', 'its only client did not take the model: the round starts again');
    } finally {
      modelAnswer = 200;
      timers.forEach(clearTimeout);
    }
  });

  it('ends the experiment, rather than leave a round half carried out, when a step throws', () => {
    const failures: string[] = [];
    const { run, machine, clients } = executorFor(undefined, {
      modelFor: () => {
        throw new Error('encoder broke');
      },
      fail: (what: string, err: unknown) => failures.push(`${what}: ${(err as Error).message}`),
    });
    run.dispatch({ type: 'start' });
    assert.doesNotThrow(() => run.dispatch({ type: 'checkin', client: clients[0] }));
    assert.deepEqual(failures, ['round 1: carrying out send-model failed: encoder broke']);
    assert.equal(machine.state.stage, 'training');
    answerOpening();
  });
});

describe('accumulators', () => {
  it('plaintext: sums in sender order whatever the arrival order, and keeps nothing a gate refused', async () => {
    const sums = await Promise.all(
      [['a', 'b'], ['b', 'a']].map(async (order) => {
        const acc = new PlaintextAccumulator(2);
        for (const sender of order) {
          const values = sender === 'a' ? Float32Array.from([0.1, 0.2]) : Float32Array.from([0.3, 0.7]);
          await acc.add({ sender, values, weight: 3, contributors: 1, preScaled: false }, open);
        }
        await assert.rejects(acc.add({ sender: 'c', values: Float32Array.from([9, 9]), weight: 1, contributors: 1, preScaled: false }, refusing), /refused/);
        return acc.total(1);
      }),
    );
    assert.deepEqual(sums[0], sums[1]);
    assert.equal(sums[0].weight, 6);
    assert.ok(sums[0].kind === 'plain' && Math.abs(sums[0].sum[1] - 2.7) < 1e-6);
  });

  describe('encrypted', () => {
    const params = { enabled: true, key_holder: 'aggregator' as const, poly_modulus_degree: 4096, coeff_modulus_bits: [54], scale_bits: 45 };
    let keyed: HeSession;
    let adder: HeSession;
    before(async () => {
      const keys = await Ckks.generateKeys(params);
      keyed = await startSession(params, 5000, keys);
      adder = await startSession(params, 5000, {});
    });
    after(async () => {
      await keyed.pool.close();
      await adder.pool.close();
    });

    it('adds ciphertexts it cannot read; only accepted ones count; one that does not parse is a 400', async () => {
      const acc = new EncryptedAccumulator(adder);
      const values = (v: number) => new Float32Array(5000).fill(v);
      await acc.add({ sender: 's1', weight: 30, contributors: 2, preScaled: true, ciphertexts: await keyed.pool.encrypt(values(0.25), 0.5) }, open);
      await assert.rejects(acc.add({ sender: 's9', weight: 1, contributors: 1, preScaled: true, ciphertexts: await keyed.pool.encrypt(values(5)) }, refusing));
      await acc.add({ sender: 's2', weight: 10, contributors: 1, preScaled: true, ciphertexts: await keyed.pool.encrypt(values(1), 0.5) }, open);
      const junk = (await keyed.pool.encrypt(values(1))).map(() => Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
      await assert.rejects(acc.add({ sender: 's3', weight: 1, contributors: 1, preScaled: true, ciphertexts: junk }, open), (err: { status?: number }) => err.status === 400);
      const total = acc.total(0.5);
      assert.equal(total.kind, 'encrypted');
      assert.deepEqual([total.weight, total.contributors], [40, 3]);
      const sum = await keyed.pool.decrypt((total as { ciphertexts: Uint8Array[] }).ciphertexts, 5000);
      assert.ok(Math.abs(sum[4999] - 0.625) < 1e-6, `decrypted ${sum[4999]}`);
      acc.reset();
      assert.throws(() => acc.total(1), /no encrypted update/);
    });

    it('sealed global model (key at the clients): averages through the strategy, survives a checkpoint', async () => {
      const fedavg = new FedAvg({ epochs: 1, batch_size: 1, learning_rate: 1, strategy: 'fedavg', server_momentum: 0 }, () => assert.fail('no plaintext evaluation'));
      const header = { round: 1, modelId: 7, sender: 'agg', parameters: 5000 };
      const sealed = new SealedGlobal(new Float32Array(5000), fedavg, adder, async () => ({ results: [], failures: [] }), () => []);
      assert.equal(decode(sealed.message(header, {})).ciphertexts, undefined, 'round 1 goes down in plaintext');
      const ciphertexts = await keyed.pool.encrypt(new Float32Array(5000).fill(0.6), 1);
      await sealed.update(1, { kind: 'encrypted', ciphertexts, scale: 1 / 400, weight: 300, contributors: 3 }, [], []);
      const down = decode(sealed.message(header, { attempt: 'x' }));
      assert.equal(down.meta?.factor, 400 / 300);
      const again = new SealedGlobal(new Float32Array(5000), fedavg, adder, async () => ({ results: [], failures: [] }), () => []);
      again.restore(sealed.snapshot(header));
      const restored = decode(again.message(header, {}));
      assert.equal(restored.meta?.factor, down.meta?.factor);
      assert.deepEqual(restored.ciphertexts, down.ciphertexts);
    });
  });
});

describe('the aggregator role', () => {
  it('names each worker a round waits for with what it last said', async () => {
    const raw = testbedConfig({ base: '127.0.9', nodes: 6, switches: 1 }) as Record<string, any>;
    const nodes = [...resolveNodeConfigs(parseExperimentConfig(raw)).values()];
    const role = new AggregatorRole(nodes.find((n): n is AggregatorNodeConfig => n.type === 'aggregator')!, nodeContext('agg'));
    const [c1, c2, c3, c4] = Object.keys(role.config.clients);
    const [sw] = Object.keys(role.config.switches);
    role.noteHealth(c1, 'down', 'ECONNREFUSED');
    role.noteHealth(c2, 'failed', 'cannot read /keys/he-secret.json');
    role.noteHealth(c3, 'up', 'answering again');
    assert.equal(role.describe([c1, c2, c3]), `${c1} (down: ECONNREFUSED), ${c2} (failed: cannot read /keys/he-secret.json), ${c3} (up, answering again; has not checked in)`);
    role.noteHealth(sw, 'down', 'silent for 3 heartbeats (6.0 s)');
    assert.equal(role.describe([c4]), `${c4} (its switch ${sw} is down: silent for 3 heartbeats (6.0 s))`);
    await role.stop();
  });

  it('refuses a check-in whose data does not fit the model and takes that client out of the pool; keeps each fit one\'s classes', async () => {
    const raw = testbedConfig({ base: '127.0.9', nodes: 6, switches: 1 }) as Record<string, any>;
    const nodes = [...resolveNodeConfigs(parseExperimentConfig(raw)).values()];
    const role = new AggregatorRole(nodes.find((n): n is AggregatorNodeConfig => n.type === 'aggregator')!, nodeContext('agg'));
    const [c1, c2, c3] = Object.keys(role.config.clients);
    const histogram = [5, 5, 5, 5, 5, 5, 5, 5, 5, 5];
    assert.throws(() => role.checkIn({ client: c1, samples: 50, shape: [32, 32, 3], histogram }), (err: HttpError) => err.status === 422 && err.message.includes('its samples have shape [32, 32, 3]; the model takes [28, 28, 1]'));
    assert.throws(() => role.checkIn({ client: c2, samples: 50, shape: [28, 28, 1], histogram: [25, 25] }), (err: HttpError) => err.status === 422 && /counts 2 classes; the model tells 10 apart/.test(err.message));
    assert.match(role.failed.get(c1) ?? '', /shape \[32, 32, 3\]/);
    assert.ok(role.machine.state.down.has(c1) && !role.machine.state.pool.includes(c1), 'a misfit is out of the pool');
    assert.equal(role.histograms.get(c3), undefined);
    assert.equal(role.checkIn({ client: c3, samples: 50, shape: [28, 28, 1], histogram }).status, 'queued');
    assert.deepEqual(role.histograms.get(c3), histogram);
    assert.ok(!role.histograms.has(c1) && !role.histograms.has(c2), 'a misfit\'s classes are not kept');
    await role.stop();
  });
});

describe('round clock', () => {
  it('splits the wait for missing clients from training: from the last update in the sum to the close', () => {
    let now = 0;
    const clock = new RoundClock(() => now);
    clock.enter('selection', true);
    now = 100;
    clock.enter('training', false);
    now = 1100;
    clock.reported(0); // a switch forwarding at once
    now = 4100;
    clock.reported(2500); // this switch waited 2.5 s after its last update before forwarding
    now = 4200;
    clock.enter('aggregation', false);
    now = 4300;
    clock.enter('evaluation', false);
    now = 4400;
    clock.enter('checkpoint', false);
    assert.deepEqual(clock.timings(true), { round_ms: 4400, selection_ms: 100, training_ms: 1500, waiting_ms: 2600, aggregation_ms: 100, evaluation_ms: 100 });
    assert.equal(clock.timings(false).waiting_ms, 0, 'no client missing: nothing was waited for');
  });
});

describe('checkpoint codec', () => {
  it("round-trips the aggregator's state, and names a blob the file lacks", () => {
    const header = { experiment: 'x', settings: { rounds: 3 }, rows: [{ round: 1 }], saved_at: 'now' };
    const saved = aggregatorCheckpoint({ header, global: { plain: Float32Array.from([1, 2, 3]) }, strategy: { velocity: Float32Array.from([0.5]) } });
    const state = aggregatorState(decodeCheckpoint(encodeCheckpoint(1, saved.header, saved.blobs)));
    assert.deepEqual(state.global, { plain: Float32Array.from([1, 2, 3]) });
    assert.deepEqual(state.strategy, { velocity: Float32Array.from([0.5]) });
    assert.deepEqual(state.header.rows, [{ round: 1 }]);
    const { 'strategy.velocity': _, ...lacking } = saved.blobs;
    assert.throws(() => aggregatorState(decodeCheckpoint(encodeCheckpoint(1, saved.header, lacking), 'f.ckpt')), (err) => err instanceof CheckpointError && /f\.ckpt: no blob "strategy\.velocity"/.test(err.message));
  });
});
