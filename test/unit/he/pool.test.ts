/**
 * HE threads that die, with real threads: a dead thread fails exactly the tasks it held and is
 * replaced; one that keeps dying makes the pool give up; close() is no death. Threads are killed
 * through the test-only hook (HePool.crashThreadForTest, in pools started with { testHooks: true }):
 * the thread throws an uncaught error or calls process.exit as it reads the 'crash' op, so the tasks
 * posted to it after the crash are in flight when it dies. The checks that no thread is started again,
 * and the one spoiling what replacements start from, read the pool's private fields by index.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { heSchema } from '../../../src/config/schema';
import { Ckks } from '../../../src/he/ckks';
import { heParams } from '../../../src/he/keys';
import { DEATH_WINDOW_MS, HePool, HePoolFailure, MAX_DEATHS, orNoMemory } from '../../../src/he/pool';

const params = heParams(heSchema.parse({ enabled: true }));

type Outcome<T> = { state: 'resolved'; value: T } | { state: 'rejected'; error: Error } | { state: 'pending' };

/** How `promise` settles within `ms`: a task the old pool left hanging shows as 'pending', not as a stuck test. */
async function outcome<T>(promise: Promise<T>, ms = 20_000): Promise<Outcome<T>> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Outcome<T>>((resolve) => (timer = setTimeout(() => resolve({ state: 'pending' }), ms)));
  const settled = promise.then(
    (value): Outcome<T> => ({ state: 'resolved', value }),
    (error: Error): Outcome<T> => ({ state: 'rejected', error }),
  );
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

function assertRejected<T>(result: Outcome<T>, pattern: RegExp, what: string): void {
  assert.equal(result.state, 'rejected', `${what}: ${result.state}`);
  assert.match((result as { error: Error }).error.message, pattern, what);
}

async function resolved<T>(promise: Promise<T>, what: string): Promise<T> {
  return valueOf(await outcome(promise), what);
}

function valueOf<T>(result: Outcome<T>, what: string): T {
  assert.equal(result.state, 'resolved', `${what}: ${result.state}${result.state === 'rejected' ? ` (${result.error.message})` : ''}`);
  return (result as { value: T }).value;
}

const valuesOf = (length: number, seed: number) => Float32Array.from({ length }, (_, i) => 0.3 * Math.sin(i * 0.37 + seed));

function assertClose(decrypted: Float64Array, values: Float32Array, what: string): void {
  assert.equal(decrypted.length, values.length, what);
  let worst = 0;
  for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(decrypted[i] - values[i]));
  assert.ok(worst < 1e-6, `${what}: error ${worst}`);
}

/** The ids of the pool's threads (-1 for one that ended), read for the check that none was started again. */
const threadIds = (pool: HePool) => pool['threads'].map((t) => t.worker.threadId);

describe('HE pool: threads that die', { timeout: 120_000 }, () => {
  let keys: Awaited<ReturnType<typeof Ckks.generateKeys>>;
  before(async () => {
    keys = await Ckks.generateKeys(params);
  });

  it('a thread that dies of an uncaught error mid-task fails exactly its tasks, saying it died and why; the other thread\'s tasks complete and a fresh thread round-trips', async () => {
    const pool = await HePool.start(params, { secretKey: keys.secretKey }, 2, { testHooks: true });
    try {
      const N = pool.perCiphertext;
      const crash = outcome(pool.crashThreadForTest(1, 'throw'));
      const spanning = outcome(pool.encrypt(valuesOf(2 * N, 0))); // a chunk on each thread, thread 1's behind the crash
      // One chunk each: thread 0 only. 24, not 3: on a loaded machine (Node 24's CI, two unit files at
      // once) thread 0 finished 3 before the pool heard of thread 1's death, and the test proved nothing.
      const alone = Array.from({ length: 24 }, (_, i) => valuesOf(N, i + 1));
      let doneOnThread0 = 0;
      const onThread0 = alone.map((values) => pool.encrypt(values).finally(() => doneOnThread0++));
      const ofThread0 = onThread0.map((task) => outcome(task));

      const death = await crash;
      assert.ok(doneOnThread0 < onThread0.length, 'precondition: thread 0 still held tasks when thread 1 died');
      assertRejected(death, /^the HE thread 1 died \(uncaught error: crashed on purpose \(test hook\)\)$/, 'the crash task');
      assertRejected(await spanning, /^the HE thread 1 died \(uncaught error: crashed on purpose/, 'the encrypt with a chunk on thread 1');

      for (const [k, task] of ofThread0.entries()) {
        const ciphertexts = valueOf(await task, `encrypt ${k} on thread 0`);
        assertClose(await resolved(pool.decrypt(ciphertexts, N), `decrypt ${k} on thread 0`), alone[k], `thread 0 task ${k}`);
      }

      const values = valuesOf(2 * N + 5, 4); // both threads, the replacement included, for encrypt and decrypt
      const ciphertexts = await resolved(pool.encrypt(values), 'encrypt after the replacement');
      assert.equal(ciphertexts.length, 3);
      assertClose(await resolved(pool.decrypt(ciphertexts, values.length), 'decrypt after the replacement'), values, 'round trip after the replacement');
    } finally {
      await pool.close();
    }
  });

  it('a thread that exits without an error event fails its tasks with its exit code; its replacement has no encryptions of zero stocked and encrypts without them', async () => {
    const pool = await HePool.start(params, { publicKey: keys.publicKey }, 2, { testHooks: true });
    const opener = await Ckks.create(params, { secretKey: keys.secretKey });
    try {
      const N = pool.perCiphertext;
      assert.deepEqual(await resolved(pool.prepare(2 * N), 'prepare'), [1, 1]);
      const crash = outcome(pool.crashThreadForTest(1, 'exit', 7));
      const spanning = outcome(pool.encrypt(valuesOf(2 * N, 0)));
      assertRejected(await crash, /^the HE thread 1 died \(exit code 7\)$/, 'the crash task');
      assertRejected(await spanning, /^the HE thread 1 died \(exit code 7\)$/, 'the encrypt with a chunk on thread 1');

      // Thread 0 uses the zero it stocked; thread 1, replaced, has none and encrypts directly.
      const values = valuesOf(2 * N, 5);
      const ciphertexts = await resolved(pool.encrypt(values), 'encrypt after the replacement');
      assertClose(opener.decrypt(ciphertexts, values.length), values, 'round trip after the replacement');
      assert.deepEqual(await resolved(pool.prepare(2 * N), 'prepare after the replacement'), [1, 1]);
    } finally {
      opener.dispose();
      await pool.close();
    }
  });

  it(`a thread that keeps dying is replaced ${MAX_DEATHS - 1} times within ${DEATH_WINDOW_MS / 1000} s, then the pool gives up: tasks fail with the reason and no thread is started again`, async () => {
    const pool = await HePool.start(params, { publicKey: keys.publicKey }, 1, { testHooks: true });
    try {
      const values = valuesOf(10, 6);
      for (let death = 1; death < MAX_DEATHS; death++) {
        // 'throw' is followed by 'exit': counted twice, the pool would give up one death early.
        assertRejected(await outcome(pool.crashThreadForTest(0, 'throw')), /^the HE thread 0 died \(uncaught error: crashed on purpose \(test hook\)\)$/, `death ${death}`);
        assert.equal((await resolved(pool.encrypt(values), `encrypt after death ${death}`)).length, 1);
      }
      const last = pool['threads'][0];
      assertRejected(
        await outcome(pool.crashThreadForTest(0, 'throw')),
        new RegExp(`^the HE thread 0 died \\(uncaught error: .*\\); the HE pool gave up: its thread 0 died ${MAX_DEATHS} times within ${DEATH_WINDOW_MS / 1000} s`),
        `death ${MAX_DEATHS}`,
      );
      assertRejected(await outcome(pool.encrypt(values), 1_000), new RegExp(`^the HE pool gave up: its thread 0 died ${MAX_DEATHS} times .*not replaced again$`), 'a task after giving up');
      assert.equal(pool['threads'][0], last, 'the dead thread not replaced');
    } finally {
      await pool.close();
    }
  });

  it('a thread that cannot start (keys that do not load) dies each time it is replaced, and the pool gives up rather than start threads forever', async () => {
    const pool = await HePool.start(params, { publicKey: keys.publicKey }, 1, { testHooks: true });
    try {
      // What replacements start from, spoiled: start() checked the keys, so only this can make them fail.
      pool['workerData'].keys.publicKey = new Uint8Array(64).fill(7);
      assertRejected(await outcome(pool.crashThreadForTest(0, 'exit', 2)), /^the HE thread 0 died \(exit code 2\)$/, 'the first death');
      const values = valuesOf(10, 10);
      const seen = new Map<string, number>(); // what tasks got meanwhile, and how often
      const deadline = Date.now() + 20_000;
      let result: Outcome<Uint8Array[]>;
      do {
        result = await outcome(pool.encrypt(values), 5_000);
        const what = result.state === 'rejected' ? result.error.message : result.state;
        seen.set(what, (seen.get(what) ?? 0) + 1);
      } while (result.state === 'rejected' && !/gave up/.test(result.error.message) && Date.now() < deadline);
      assertRejected(result, /the HE pool gave up/, `tasks while replacements fail: ${JSON.stringify([...seen])}`);
      assertRejected(await outcome(pool.encrypt(values), 1_000), new RegExp(`^the HE pool gave up: its thread 0 died ${MAX_DEATHS} times within ${DEATH_WINDOW_MS / 1000} s \\(last: uncaught error: the HE public key does not fit these parameters`), 'a task after giving up');
      const last = pool['threads'][0];
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(pool['threads'][0], last, 'no thread started after giving up');
    } finally {
      await pool.close();
    }
  });

  it('start() rejects with SEAL\'s reason when the keys or the parameters do not fit (the threads check them: no SEAL on the calling thread)', async () => {
    await assert.rejects(HePool.start(params, { publicKey: new Uint8Array(64).fill(7) }, 2), /^Error: the HE public key does not fit these parameters/);
    await assert.rejects(HePool.start({ ...params, poly_modulus_degree: 4096, coeff_modulus_bits: [60, 60, 60] }, {}, 2), /HE parameters rejected by SEAL/);
    // A pool that did start is whole: its threads reported, and it encrypts.
    const pool = await HePool.start(params, { publicKey: keys.publicKey }, 2);
    try {
      assert.ok(pool.perCiphertext > 0);
      assert.equal((await pool.encrypt(valuesOf(10, 10))).length, 1);
    } finally {
      await pool.close();
    }
  });

  it('close() is no death: a task in flight fails as closed, the threads end and none is started again', async () => {
    const pool = await HePool.start(params, { secretKey: keys.secretKey }, 2, { testHooks: true });
    const inFlight = outcome(pool.encrypt(valuesOf(2 * pool.perCiphertext, 7)), 1_000);
    await pool.close();
    assertRejected(await inFlight, /^the HE pool was closed$/, 'the task in flight');
    assert.deepEqual(threadIds(pool), [-1, -1], 'no thread running');
    assertRejected(await outcome(pool.encrypt(valuesOf(10, 8)), 1_000), /^the HE pool is closed$/, 'a task after close');
  });

  it('without { testHooks: true } neither the pool nor its threads honour a crash', async () => {
    const pool = await HePool.start(params, { publicKey: keys.publicKey }, 1);
    try {
      assertRejected(await outcome(pool.crashThreadForTest(0, 'exit')), /needs a pool started with \{ testHooks: true \}/, 'the pool');
      assertRejected(await outcome(pool['run']<never>(0, { op: 'crash', how: 'exit', code: 1 })), /honoured only in a pool started with \{ testHooks: true \}/, 'the thread');
      assert.equal((await resolved(pool.encrypt(valuesOf(10, 9)), 'encrypt')).length, 1);
    } finally {
      await pool.close();
    }
  });
});

describe('HE pool: shared by the nodes of one process', { timeout: 120_000 }, () => {
  it('the same parameters and keys give the same pool, which stays open until each holder has closed it; other keys get their own', async () => {
    const keys = await Ckks.generateKeys(params);
    const publicOnly = { publicKey: keys.publicKey };
    // Asked at once, as clients configured together ask: one pool, not two.
    const [a, b] = await Promise.all([HePool.shared(params, publicOnly), HePool.shared(params, publicOnly)]);
    assert.equal(a, b);
    const other = await HePool.shared(params, keys);
    assert.notEqual(other, a, 'a secret key makes another pool');
    const values = valuesOf(100, 1);
    await a.close();
    const chunks = await resolved(b.encrypt(values), 'the other holder encrypts after one closed');
    assertClose(await resolved(other.decrypt(chunks, values.length), 'decrypt'), values, 'round trip through the shared pool');
    await b.close();
    assertRejected(await outcome(b.encrypt(values)), /the HE pool is closed/, 'after the last holder closed');
    // Closed for good: the next holder starts a fresh pool.
    const fresh = await HePool.shared(params, publicOnly);
    assert.notEqual(fresh, a);
    await resolved(fresh.encrypt(values), 'the fresh pool works');
    await Promise.all([fresh.close(), other.close()]);
  });
});

describe('memory the HE work could not have', () => {
  it("is the pool's failure (a 5xx where it is answered), in V8's words or SEAL's; a ciphertext that does not load is still the data's", async () => {
    for (const err of [new RangeError('Array buffer allocation failed'), new Error('adding ciphertexts: std::bad_alloc')]) {
      await assert.rejects(orNoMemory(() => Promise.reject(err)), (e: Error) => e instanceof HePoolFailure && e.message === `no memory for the HE work now: ${err.message}`);
    }
    for (const err of [new RangeError('Invalid typed array length: -1'), new Error('loading a ciphertext: the ciphertext is invalid')]) {
      await assert.rejects(orNoMemory(() => Promise.reject(err)), (e: Error) => e === err);
    }
    assert.equal(await orNoMemory(async () => 7), 7);
  });
});
