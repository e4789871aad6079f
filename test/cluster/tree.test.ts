/**
 * Switches of switches with real processes on loopback, in both key modes: eight clients on four
 * rack switches, two middle switches over two racks each, one spine over both, then the
 * aggregator. The model goes down the same tree; a middle switch is killed (SIGKILL) mid-run and
 * the experiment goes on with the clients it still reaches. The round timeouts are long (300 s): a
 * test that passes did not wait for a deadline.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ENCRYPTED_MODEL_FILE, type RoundMetrics } from '../../src/outputs';
import { decode, encode, Kind, WIRE_CONTENT_TYPE } from '../../src/wire/codec';
import { get, Testbed, waitFor, type LaunchedAggregator } from '../helpers/cluster';

/** Enough for rounds after the kill when it waits for a whole round on a loaded machine. */
const ROUNDS = 8;
const HIDDEN = 16;
/** The MLP's parameters with 16 hidden units: 784·16 + 16 + 16·10 + 10. */
const PARAMETERS = 784 * HIDDEN + HIDDEN + HIDDEN * 10 + 10;

interface Entry {
  round: number;
  outcome?: string;
  clients_reported?: number;
  missing?: string[];
  update_bytes?: number;
  he_sum_ms?: number;
  byte_send?: number;
  decrypt_ms?: number;
}

for (const keyHolder of ['aggregator', 'clients'] as const) {
  describe(`a tree of switches three deep, the key at the ${keyHolder}`, () => {
    const experiment = `tree-${keyHolder}`;
    // 8 clients (.1-.8), racks .9-.12, middle switches .13 and .14, spine .15, aggregator .16.
    const testbed = new Testbed({ nodes: 16, switches: 7, rounds: ROUNDS, trainSize: 'all' }, (config: Record<string, any>) => {
      config.experiment = experiment;
      config.model = { architecture: 'mlp', hidden_units: HIDDEN };
      config.he = { enabled: true, key_holder: keyHolder };
      // A killed switch refuses connections: it is down at the next heartbeat. Two seconds, not one: a worker is taken
      // for down after three silent heartbeats, and 16 processes starting on two loaded cores can be silent for three.
      config.timeouts = { push_ms: 30_000, request_ms: 10_000, round_ms: 300_000, heartbeat_ms: 2000 };
      const base = Object.keys(config.others)[0].replace(/\.\d+:\d+$/, '');
      const node = (n: number) => `${base}.${n}:5000`;
      for (let c = 1; c <= 8; c++) config.others[node(c)].switch = node(9 + Math.floor((c - 1) / 2));
      for (let r = 9; r <= 12; r++) config.others[node(r)] = { type: 'switch', switch: node(r <= 10 ? 13 : 14) };
      config.others[node(13)] = { type: 'switch', switch: node(15) };
      config.others[node(14)] = { type: 'switch', switch: node(15) };
      config.others[node(15)] = { type: 'switch' };
    });
    const node = (n: number) => `${testbed.base}.${n}:5000`;
    const clients = testbed.addresses('client');
    const [aggregator] = testbed.addresses('aggregator');
    const middle = node(14);
    const spine = node(15);
    const cutOff = clients.slice(4); // beneath racks .11 and .12, under the middle switch .14
    const metrics = (): RoundMetrics[] => JSON.parse(readFileSync(join(testbed.outputs, experiment, 'metrics.json'), 'utf8')).rounds;
    const iterations = (address: string): Entry[] => JSON.parse(readFileSync(join(testbed.logs, `${address.replace(':', '-')}_${experiment}.json`), 'utf8')).iteration;
    let agg: LaunchedAggregator;
    /** What the aggregator printed of its workers, for a failure's message. */
    const workerNews = () => agg.output.split('\n').filter((line) => /worker|going on|waiting/.test(line)).join('\n');
    /** A client and the switches above it, nearest first. */
    const pathUp = (client: string): string[] => {
      const path = [client];
      for (let up = testbed.config.others[client] as { switch?: string }; up.switch; up = testbed.config.others[up.switch] as { switch?: string }) path.push(up.switch);
      return path;
    };
    /** A round every client took part in and every client scored. */
    const whole = (m: RoundMetrics) => m.clients === 8 && !m.scored_by;
    let newsAtKill = '';
    let exitCode: number | null = null;
    let killedIn = 0;

    before(async () => {
      assert.equal((await testbed.up()).code, 0); // with the key at the clients, it makes theirs
      agg = testbed.launchAggregator();
      // On a loaded machine a worker can be silent long enough at the start to be taken for down, and a round goes
      // on without the clients beneath it: the kill waits for a whole round before it.
      await waitFor(async () => {
        const status = (await get(aggregator, '/a/status', testbed.token).catch(() => undefined))?.body;
        killedIn = status?.round ?? 0;
        // A whole round before the one training now (metrics.json may hold the next by the time it is read).
        return status?.rounds_done >= 2 && status.stage === 'training' && metrics().some((m) => whole(m) && m.round < killedIn);
      }, 180_000).catch((err) => assert.fail(`no whole round before round ${killedIn} trained: ${err.message}\n${agg.output}`));
      newsAtKill = workerNews();
      testbed.kill(middle);
      exitCode = await agg.exited;
    }, { timeout: 400_000 });
    after(() => testbed.down());

    it('runs every round, the middle switch killed in one of them', () => {
      assert.equal(exitCode, 0, agg.output);
      assert.deepEqual(metrics().map((m) => m.round), Array.from({ length: ROUNDS }, (_, i) => i + 1));
      assert.match(agg.output, new RegExp(`worker ${middle.replace(/\./g, '\\.')} is down`));
    });

    it('sums every client through the tree before the kill: each level forwards one sum naming the clients beneath it', () => {
      const before = metrics().filter((m) => m.round < killedIn);
      const first = before.find(whole);
      assert.ok(first, `no round before the kill had all 8 clients: ${JSON.stringify(before)}`);
      // A client that stalls long enough is taken for down and missed: every one is in the sum or named, unless
      // (before the first whole round) a worker was taken for down before selection, or had not yet answered the
      // push, and the aggregator said so.
      const named = [...newsAtKill.matchAll(/worker (\S+) is (?:down|not answering)/g)].map((m) => m[1]);
      for (const row of before) {
        if (row.clients + row.missing.length === 8) continue;
        // Neither in the sum nor missed: not selected, each beneath a worker the aggregator named.
        const unnamed = clients.filter((c) => !row.missing.includes(c) && !iterations(c).some((e) => e.round === row.round) && !pathUp(c).some((n) => named.includes(n)));
        assert.ok(row.round < first.round && !unnamed.length, `${JSON.stringify(row)}; left out, no worker above them named: ${unnamed}\n${newsAtKill}`);
      }
      const entry = (address: string) => iterations(address).find((e) => e.round === first.round)!;
      assert.deepEqual([node(9), node(13), spine].map((sw) => entry(sw).clients_reported), [2, 4, 8]);
      for (const sw of [node(9), node(13), spine]) {
        // Blind at every level: each adds ciphertexts, and what it forwards is ciphertexts, not a model in plaintext:
        // a value to a coefficient of two 64-bit polynomials is 16 bytes, four times its float32 (a plaintext sum is 4 a value).
        assert.ok(entry(sw).he_sum_ms !== undefined, `${sw} added no ciphertexts`);
        assert.ok(entry(sw).update_bytes! > 3 * 4 * PARAMETERS, `${sw} forwarded ${entry(sw).update_bytes} bytes; a plaintext sum is about ${4 * PARAMETERS}`);
      }
    });

    it('goes on without the clients beneath the dead middle switch, and names them', () => {
      // The kill lands in round `killedIn`, or a round later (a round is short), and that round misses them; or it lands
      // between two rounds, and the next leaves them out without missing them (they were not selected: neither in nor missing).
      const without = (m: RoundMetrics) => cutOff.every((c) => m.missing.includes(c)) || m.clients + m.missing.length === 8 - cutOff.length;
      const hit = metrics().find((m) => m.round >= killedIn && without(m));
      assert.ok(hit, `no round from ${killedIn} on went without the clients beneath the dead switch: ${JSON.stringify(metrics())}`);
      assert.ok(hit.round <= killedIn + 1, `the clients beneath the dead switch were left out first in round ${hit.round}, killed in ${killedIn}`);
      assert.ok(hit.round_ms < 60_000, JSON.stringify(hit));
      const after = metrics().filter((m) => m.round > hit.round);
      assert.ok(after.length >= 1, `no round after round ${hit.round}`);
      for (const row of after) {
        // Until a health check sees the switch down they may be selected again, and missed at once (the spine
        // cannot open its round below); from then on nothing reaches them: not selected, so not missing either.
        assert.equal(row.clients, 4, JSON.stringify(row));
        assert.ok(row.missing.length === 0 || [...row.missing].sort().join() === [...cutOff].sort().join(), JSON.stringify(row));
        assert.ok(row.round_ms < 60_000, `round ${row.round} waited ${row.round_ms} ms`);
      }
      assert.deepEqual(after.at(-1)!.missing, [], 'the aggregator never saw the switch go down');
      for (const client of cutOff) assert.deepEqual(iterations(client).filter((e) => e.round > hit.round), [], `${client} trained with no way to report`);
    });

    it("sends the model down once a round, to the spine: the aggregator's downlink is about one model, not eight", () => {
      const spineUpdate = iterations(spine).find((e) => e.round === 1)!.update_bytes!;
      // Key at the aggregator: the model is float32. Key at the clients: the sealed model (as big as the spine's sum)
      // goes down once for evaluation, and training takes a reference to it.
      const model = keyHolder === 'aggregator' ? 4 * PARAMETERS : spineUpdate;
      // Around the kill a round may send the whole sealed model for training too: clients beneath the dead switch
      // could not score the last one, and while the aggregator has not seen it go down they may be selected. So may
      // rounds before the first whole one (a worker taken for down at the start kept some from scoring): from it on,
      // every client keeps the model.
      const first = metrics().find(whole)!;
      for (const row of metrics().filter((m) => m.round > first.round)) {
        assert.ok(row.bytes_down < 2 * model + 64_000, `round ${row.round}: ${row.bytes_down} bytes down, one model is ${model}\n${newsAtKill}`);
      }
      const last = metrics().at(-1)!;
      assert.ok(last.bytes_down < 1.5 * model + 64_000, `the last round: ${last.bytes_down} bytes down, one model is ${model}`);
      if (keyHolder === 'clients') {
        // A model that came down encrypted is decrypted (decrypt_ms); one kept from scoring it is not.
        const kept = clients.slice(0, 4).flatMap((c) => iterations(c).filter((e) => e.round >= 2 && e.outcome === 'accepted' && e.decrypt_ms === undefined));
        // Rounds around the kill may send the whole model (see above); the others, and the last, send a reference.
        assert.ok(kept.length >= 4 * (ROUNDS - 4), `clients trained ${kept.length} times from the model they kept`);
        for (const client of clients.slice(0, 4)) assert.equal(iterations(client).at(-1)!.decrypt_ms, undefined, `${client} decrypted the model of the last round`);
      }
    });

    if (keyHolder === 'clients') {
      it("a client refuses a model its upstream made up (of another session than its aggregator's, or of that session without a pass made with the ticket the client checked in with), and does not train", async () => {
        const saved = decode(readFileSync(join(testbed.outputs, experiment, 'models', `round-${String(ROUNDS).padStart(3, '0')}`, ENCRYPTED_MODEL_FILE)));
        // Sent as the client's upstream: only it opens the client's round.
        const { upstream } = (await get(clients[0], '/c/status', testbed.token)).body;
        const madeUp = async (attempt: string) => {
          const instructions = { epochs: 1, batchSize: 32, learningRate: 0.5, fit: { share: 0.5 }, attempt, model_tag: 'not-kept' };
          const reference = encode({ kind: Kind.ModelReference, round: ROUNDS + 1, modelId: saved.modelId, contributors: 0, weight: 0, sender: aggregator, meta: instructions, parameters: new Float32Array(0), count: PARAMETERS });
          const res = await fetch(`http://${clients[0]}/c/round`, { method: 'POST', body: reference, headers: { ...testbed.as(upstream), 'Content-Type': WIRE_CONTENT_TYPE } });
          return { status: res.status, reason: ((await res.json()) as { reason: string }).reason };
        };
        // A session of its own making: the client takes models of the session its aggregator named at check-in alone.
        const other = await madeUp(`x:${ROUNDS + 1}.0`);
        const session = /^the model of x:\d+\.0 is of another session than ([\w-]+), in which the aggregator answered its last check-in$/.exec(other.reason)?.[1];
        assert.ok(other.status === 409 && session, JSON.stringify(other));
        // A round of that session the aggregator never opened: refused before the reference is looked at (a switch cannot make it forget the model it keeps either: unit-tested).
        const own = await madeUp(`${session}:${ROUNDS + 1}.0`);
        assert.equal(own.status, 409);
        assert.equal(own.reason, `the model of ${session}:${ROUNDS + 1}.0 carries no pass: the aggregator did not select this client for it`);
        const status = await get(clients[0], '/c/status', testbed.token);
        assert.equal(status.body.stage, 'waiting', 'it did not start training');
      });
    }
  });
}
