/**
 * A model of a million parameters through a switch under quantized HE, with every node's resident
 * memory sampled. The same four nodes (the aggregator, a switch, two clients) run a small model,
 * then the large one: what the large one adds to a node's peak is what the model costs it, the
 * rest (Node, TensorFlow.js, SEAL, the garbage collector's slack) being the same in both runs.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectedParameterCount } from '../../src/model/size';
import { get, runAgain, script, Testbed, type completedRun } from '../helpers/cluster';
import { memoryMb } from '../helpers/proc-status';

const LARGE = { architecture: 'mlp' as const, hidden_units: 1274 };
const SMALL = { architecture: 'mlp' as const, hidden_units: 16 };
const FLOAT32_MB = (expectedParameterCount(LARGE) * 4) / 2 ** 20;
/**
 * What the large model may add to a node's peak, in copies of its float32 size: what was measured
 * (seven runs on Node 20: clients 15.8-20.1, the switch 3.5-7.8, the aggregator 1.8-22.1; two on
 * Node 24: 19.2-21.0, 15.8-17.5 and 5.1-5.2, its garbage collector later to free) and about a third
 * more. The aggregator's varies most: in later runs (Node 20) 18.1 and 21.4 with this file alone,
 * and 31.4 beside the other cluster files; a third more is 42. A client holds the model in TensorFlow.js
 * (weights, gradients, the wasm heap they grew), the flat vectors it trains from and sends, and in
 * its HE threads the values, the zero encryptions stocked ahead and the ciphertexts; a switch, the
 * updates that arrive together and their sum; the aggregator, the sum decrypted (float64), the new
 * model, its evaluation and its checkpoint. Since messages go out in parts and HE threads hand their
 * ciphertexts back unpacked (three runs, this file alone, Node 20): clients 14.7-18.0 copies against
 * 17.6-18.9 before (two runs), the switch 6.2, 6.3 and 15.8 against 8.8-9.4, the aggregator 18.1-22.2
 * against 18.6-20.4. The bounds stay: run to run, these move more than the change did. The issue's
 * aim is 3 copies: streaming each update through the switch as it arrives, which is not built yet.
 */
const COPIES = { client: 28, switch: 24, aggregator: 42 };

type Role = keyof typeof COPIES;

/** Every 25 ms, each process's resident memory (VmRSS), keeping the largest. */
class MemorySampler {
  readonly peaks = new Map<number, number>();
  private timer?: NodeJS.Timeout;

  start(pids: () => number[]): void {
    this.peaks.clear();
    this.timer = setInterval(() => {
      for (const pid of pids()) {
        const mb = memoryMb(pid, 'VmRSS');
        if (mb !== undefined) this.peaks.set(pid, Math.max(this.peaks.get(pid) ?? 0, mb));
      }
    }, 25);
  }

  stop(): Map<number, number> {
    clearInterval(this.timer);
    return new Map(this.peaks);
  }
}

/** The aggregator `main.js agg --config <file>` runs as, found among the processes. */
function aggregatorPid(configFile: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.includes('agg') && argv.includes(configFile)) return Number(entry);
    } catch {}
  }
  return undefined;
}

describe('a model of a million parameters through a switch under quantized HE', () => {
  const testbed = new Testbed({ nodes: 4, switches: 1, rounds: 2, experiment: 'small-model' }, (config) => {
    config.model = SMALL;
    config.he = { enabled: true, key_holder: 'aggregator', quantize: { bits: 8 } };
  });
  const workers = testbed.addresses().filter((a) => testbed.config.others[a].type !== 'aggregator');
  const roleOf = new Map<number, Role>();
  const peaks: Record<'small' | 'large', Map<Role, number>> = { small: new Map(), large: new Map() };
  let large: Awaited<ReturnType<typeof completedRun>>;

  /** Runs `work` (an experiment, its mount included) with the sampler on, and keeps each role's largest peak. */
  const sampled = async <T>(which: 'small' | 'large', work: () => Promise<T>): Promise<T> => {
    const sampler = new MemorySampler();
    let aggregator: number | undefined;
    sampler.start(() => {
      aggregator ??= aggregatorPid(testbed.configFile);
      if (aggregator) roleOf.set(aggregator, 'aggregator');
      return [...roleOf.keys()];
    });
    try {
      return await work();
    } finally {
      for (const [pid, mb] of sampler.stop()) peaks[which].set(roleOf.get(pid)!, Math.max(peaks[which].get(roleOf.get(pid)!) ?? 0, mb));
      if (aggregator) roleOf.delete(aggregator);
    }
  };

  /** Each worker's /health once its role is mounted, before any round: a client's step_ms is its timing batch's. */
  const beforeRounds = new Map<string, { step_ms?: unknown }>();

  before(async () => {
    assert.equal((await testbed.up()).code, 0);
    for (const worker of workers) roleOf.set(testbed.pidOf(worker), testbed.config.others[worker].type as Role);
    // The small model's roles mounted by a push of their own, in its window as the large one's mount is in its.
    await sampled('small', async () => {
      const push = await script('push-config', ['--config', testbed.configFile, '--token-file', join(testbed.state, 'token'), '--deadline', '120000'], { timeout: 150_000 });
      assert.equal(push.code, 0, push.stdout + push.stderr);
      for (const worker of workers) beforeRounds.set(worker, (await get(worker, '/health')).body);
      return runAgain(testbed, 'small-model', {}, 10 * 60_000);
    });
    large = await sampled('large', () => runAgain(testbed, 'large-model', { model: LARGE }, 10 * 60_000));
  });
  after(() => testbed.down());

  it('trains it in every round, each client sending a quantized update smaller than the float32 model', () => {
    assert.equal(large.rows.length, 2);
    for (const row of large.rows) assert.equal(row.clients, 2, `round ${row.round}`);
    assert.ok(large.rows.at(-1)!.accuracy > 0.85, `accuracy ${large.rows.at(-1)!.accuracy}`);
    // Each client's own update, from the aggregator's central log, and the one sum that went up.
    for (const client of testbed.addresses('client')) {
      const sent: { round: number; update_bytes: number }[] = JSON.parse(readFileSync(join(testbed.logs, 'cluster', 'large-model', `${client.replace(':', '-')}_large-model.json`), 'utf8')).iteration;
      assert.deepEqual(sent.map((e) => e.round), [1, 2], client);
      for (const e of sent) assert.ok(e.update_bytes > 0.4 * FLOAT32_MB * 2 ** 20 && e.update_bytes < FLOAT32_MB * 2 ** 20, `${client} round ${e.round}: ${e.update_bytes} bytes, the model ${FLOAT32_MB.toFixed(1)} MB`);
    }
    for (const row of large.rows) assert.ok(row.bytes_up < FLOAT32_MB * 2 ** 20, `round ${row.round}: ${row.bytes_up} bytes up, the model is ${FLOAT32_MB.toFixed(1)} MB`);
  });

  it('has each client say at /health how long a training step holds it silent, timed before its first round (a switch trains none)', () => {
    for (const worker of workers) {
      const body = beforeRounds.get(worker);
      if (testbed.config.others[worker].type === 'client') assert.ok(Number(body?.step_ms) > 0, `${worker}: ${JSON.stringify(body)}`);
      else assert.equal(body?.step_ms, 0, `${worker}: ${JSON.stringify(body)}`);
    }
  });

  it("costs each node's peak resident memory a bounded number of copies of the model", () => {
    const copies = (Object.keys(COPIES) as Role[]).map((role) => {
      const [small, big] = [peaks.small.get(role), peaks.large.get(role)];
      assert.ok(small && big, `${role}: sampled ${small} MB and ${big} MB`);
      return { role, small, big, copies: (big - small) / FLOAT32_MB };
    });
    console.log(`# peak resident memory, small model → ${expectedParameterCount(LARGE)} parameters: ${copies.map((c) => `${c.role} ${c.small.toFixed(0)} → ${c.big.toFixed(0)} MB (${c.copies.toFixed(1)} copies)`).join('; ')}`);
    for (const { role, small, big, copies: n } of copies) {
      assert.ok(n <= COPIES[role], `${role}: the ${FLOAT32_MB.toFixed(1)} MB model added ${(big - small).toFixed(0)} MB to its peak, ${n.toFixed(1)} copies (at most ${COPIES[role]})`);
    }
  });
});
