/**
 * The aggregator's heartbeats: a worker that goes silent is counted down after three missed ones,
 * or after three times the training step it said holds it silent (a ResNet's batch takes seconds on wasm).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configFingerprint } from '../../../src/config/fingerprint';
import type { NodeConfig } from '../../../src/config/node-config';
import type { Health, Peers } from '../../../src/net/peers';
import { MAX_STEP_MS, MISSED_HEARTBEATS, silenceAllowed, WorkerWatch } from '../../../src/orchestrator/watch';

const INTERVAL_MS = 40;

/** A worker that answers its first health check (saying `step_ms`), then goes silent for good (or answers `then`). */
function goesSilent(stepMs: unknown, then: { answer: unknown } | 'silence' = 'silence'): Promise<{ reason: string; heartbeats: number }> {
  const config = { address: '127.0.0.1:5000', type: 'client' } as unknown as NodeConfig;
  let checks = 0;
  const peers = {
    health: (): Promise<Health> => {
      checks++;
      if (checks > 1) return then === 'silence' ? new Promise(() => undefined) : Promise.resolve(then.answer as Health);
      return Promise.resolve({ status: 'ok', role: 'client', experiment: 'x', config: configFingerprint(config), step_ms: stepMs });
    },
  } as unknown as Peers;
  // The watch's timer does not hold a process open (the aggregator's does not wait for it): this one does.
  const open = setInterval(() => undefined, 1000);
  return new Promise((resolve) => {
    const watch = new WorkerWatch(peers, [config], {
      intervalMs: INTERVAL_MS,
      requestMs: 10_000,
      onDown: (_, reason) => {
        watch.stop();
        clearInterval(open);
        resolve({ reason, heartbeats: Number(/silent for (\d+) heartbeats/.exec(reason)?.[1]) });
      },
      onUp: () => undefined,
      onFailed: () => undefined,
    });
    watch.start();
  });
}

describe('the heartbeats', () => {
  it('count a silent worker down after three missed, or after three times the step it said holds it silent', async () => {
    assert.equal((await goesSilent(undefined)).heartbeats, MISSED_HEARTBEATS);
    assert.equal((await goesSilent(0)).heartbeats, MISSED_HEARTBEATS);
    // A step of 400 ms: 1200 ms of silence is 30 heartbeats of 40 ms, and one more.
    const slow = await goesSilent(400);
    assert.equal(slow.heartbeats, 31, slow.reason);
  });

  it('count an answer that is not a health report as none', async () => {
    for (const answer of [null, [], {}, { config: 42 }, 'ok']) {
      const garbled = await goesSilent(400, { answer });
      assert.match(garbled.reason, /it answered with something that is not a health report: silent for 31 heartbeats/, JSON.stringify(answer));
    }
  });

  it('believe a step up to MAX_STEP_MS, and nothing that is not a positive number', () => {
    assert.equal(silenceAllowed(10 * MAX_STEP_MS, 1000), (3 * MAX_STEP_MS) / 1000 + 1);
    for (const claim of ['9000', -5, Number.NaN, Number.POSITIVE_INFINITY, null, { ms: 9000 }, [9000]]) {
      assert.equal(silenceAllowed(claim, 1000), MISSED_HEARTBEATS, JSON.stringify(claim));
    }
    // A short step leaves the three heartbeats as they are.
    assert.equal(silenceAllowed(500, 2000), MISSED_HEARTBEATS);
    // Never half a round or more: a hung worker is let go of before its round's deadline.
    assert.equal(silenceAllowed(MAX_STEP_MS, 2000, 300_000), 75);
    assert.equal(silenceAllowed(0, 2000, 1000), MISSED_HEARTBEATS);
  });
});
