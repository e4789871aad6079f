/** The round executor on real loopback sockets: the order of opening, model and stand-by, timers owned by their phase, a step that throws. */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RoundMachine } from '../../../../src/protocol/aggregator/machine';
import { RoundExecutor, type RoundWork } from '../../../../src/roles/aggregator/executor';
import type { TailOutcome } from '../../../../src/roles/aggregator/round-tail';
import { Topology } from '../../../../src/topology/tree';
import { nodeContext } from '../../../helpers/node-context';
import { waitFor } from '../../../helpers/cluster';

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
    const tree = new Topology('agg', sw === 'agg' ? { [clients[0]]: 'agg' } : { [clients[0]]: sw, [sw]: 'agg' });
    const machine = new RoundMachine({ rounds: 1, goal: 1, minFraction: 1, deadlineMs: 60_000, session: 's' }, tree, (_round, ready) => [...ready]);
    const context = nodeContext('executor');
    const work: RoundWork = {
      configureFit: () => undefined,
      modelFor: () => Buffer.from('model'),
      switchOpening: (round, attempt, weights) => ({ round, attempt, clients: Object.keys(weights), weights }),
      closeRound: async () => 'closed',
      discard: () => undefined,
      leaveOut: (node) => assert.fail(`${node} left out`),
      finish: () => undefined,
      fail: (what) => assert.fail(what),
      describe: (addresses) => addresses.join(', '),
      moved: () => undefined,
      ...overrides,
    };
    // Every call as this executor makes it (before it reaches anyone): an absence is then known without waiting. Its
    // own: an earlier test's executor may still post (an answer it was held for came late), and that is not this one's.
    const issued: string[] = [];
    const peers = Object.create(context.peers) as typeof context.peers;
    peers.post = ((address, path, body, config) => (issued.push(path), context.peers.post(address, path, body, config))) as typeof peers.post;
    const io = {
      peers,
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
    return { machine, run: new RoundExecutor(machine, io, work), clients, sw, issued };
  }

  const executorFor = (switchAddress?: string, work?: Partial<RoundWork>) => executor(new Set(), switchAddress, work);

  it("sends the switch the model to relay only once it answered the round's opening, and not to its client", async () => {
    const timers = new Set<NodeJS.Timeout>();
    const { run, clients, issued } = executor(timers);
    run.dispatch({ type: 'start' });
    run.dispatch({ type: 'checkin', client: clients[0], samples: 10 });
    await waitFor(async () => calls.includes('switch /s/round'));
    assert.deepEqual(issued, ['/s/round'], 'the model went down before the switch had its round');
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
    run.dispatch({ type: 'checkin', client: clients[0], samples: 10 });
    assert.equal(timers.size, 1, 'the selection deadline is gone; the training one is set');
    const first = machine.attempt;
    run.dispatch({ type: 'node-down', node: sw, reason: 'test' }); // the only switch: nothing can arrive, the round starts again
    assert.equal(machine.stage, 'selection');
    assert.equal(timers.size, 1, "the first attempt's training deadline is gone");
    run.dispatch({ type: 'node-up', node: sw });
    run.dispatch({ type: 'checkin', client: clients[0], samples: 10 });
    assert.notEqual(machine.attempt, first);
    assert.equal(timers.size, 1);
    // Even a deadline that escaped cancellation is dropped: it names the first attempt.
    run.dispatch({ type: 'deadline', phase: 'training', attempt: first });
    assert.equal(machine.stage, 'training');
    timers.forEach(clearTimeout);
    answerOpening(); // the switch's held answer to this test's opening
  });

  it("stops waiting for a switch that cannot open its round, and tells its clients to stand by", async () => {
    const timers = new Set<NodeJS.Timeout>();
    const { run, machine, clients } = executorFor(`127.0.0.1:1`); // nothing listens on port 1
    run.dispatch({ type: 'start' });
    calls.length = 0;
    run.dispatch({ type: 'checkin', client: clients[0], samples: 10 });
    await waitFor(async () => machine.stage !== 'training');
    assert.equal(machine.stage, 'selection', 'no update could come: the round starts again');
    await waitFor(async () => calls.includes('client /c/standby'));
    assert.ok(!calls.some((c) => c.endsWith('/s/model') || c.endsWith('/c/round')), 'no model for a switch that has no round, nor for its client');
    timers.forEach(clearTimeout);
  });

  it('tells a client to stand by, not to train, when its switch took the opening only after the round moved on', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const { run, machine, clients, sw, issued } = executor(timers);
    run.dispatch({ type: 'start' });
    calls.length = 0;
    run.dispatch({ type: 'checkin', client: clients[0], samples: 10 });
    await waitFor(async () => calls.includes('switch /s/round'));
    const first = machine.attempt;
    run.dispatch({ type: 'node-down', node: sw, reason: 'test' }); // hung while it held the opening: the round starts again
    assert.equal(machine.stage, 'selection');
    // The switch's going down stands its client by once; the opening taken too late, a second time.
    await waitFor(async () => calls.filter((c) => c === 'client /c/standby').length === 1);
    issued.length = 0;
    answerOpening(); // it wakes up, and takes the opening of an attempt that is over
    await waitFor(async () => calls.includes('switch answered /s/round') && calls.filter((c) => c === 'client /c/standby').length === 2);
    // The stand-by and a model would go out from the same answer: the stand-by posted, a model would be too.
    assert.deepEqual(issued, ['/c/standby'], `a model for attempt ${first}, which is over`);
    timers.forEach(clearTimeout);
  });

  it('stops waiting for a switch that does not take the model, and tells its clients to stand by', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const { run, machine, clients } = executor(timers);
    switchModelAnswer = 503;
    try {
      run.dispatch({ type: 'start' });
      calls.length = 0;
      run.dispatch({ type: 'checkin', client: clients[0], samples: 10 });
      await waitFor(async () => calls.includes('switch /s/round'));
      const first = machine.attempt;
      answerOpening();
      await waitFor(async () => calls.includes('client /c/standby'));
      assert.deepEqual(calls.slice(0, 4), ['switch /s/round', 'switch answered /s/round', 'switch /s/model', 'switch answered /s/model']);
      assert.notEqual(machine.attempt, first, 'nothing could come from the switch: the round started again');
    } finally {
      switchModelAnswer = 200;
      timers.forEach(clearTimeout);
    }
  });

  it('sends a direct client the model itself; one that does not take it is dropped from the round, and told to stand by (it checks in again)', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const { run, machine, clients } = executor(timers, 'agg');
    modelAnswer = 409;
    try {
      run.dispatch({ type: 'start' });
      calls.length = 0;
      const first = machine.attempt;
      run.dispatch({ type: 'checkin', client: clients[0], samples: 10 });
      await waitFor(async () => calls.includes('client /c/round'));
      await waitFor(async () => machine.attempt !== first);
      assert.ok(!calls.some((c) => c.startsWith('switch')), 'no switch is involved');
      assert.equal(machine.stage, 'selection', 'its only client did not take the model: the round starts again');
      await waitFor(async () => calls.includes('client /c/standby'));
      assert.ok(calls.indexOf('client /c/standby') > calls.indexOf('client /c/round'), 'it hears something after the model it refused');
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
    assert.doesNotThrow(() => run.dispatch({ type: 'checkin', client: clients[0], samples: 10 }));
    assert.deepEqual(failures, ['round 1: carrying out send-model failed: encoder broke']);
    assert.equal(machine.stage, 'training');
    answerOpening();
  });

  it("runs the round's tail once, as one sequence, and closes the round only when it is done", async () => {
    let finishTail: (outcome: TailOutcome) => void = () => undefined;
    const tails: { round: number; from: string[]; samples: number }[] = [];
    let finished = 0;
    const { run, machine, clients } = executorFor('agg', {
      closeRound: (close) => {
        tails.push({ round: close.round, from: close.results.map((r) => r.from), samples: close.samples });
        return new Promise<TailOutcome>((resolve) => (finishTail = resolve));
      },
      finish: () => void finished++,
    });
    run.dispatch({ type: 'start' });
    run.dispatch({ type: 'checkin', client: clients[0], samples: 10 });
    run.dispatch({ type: 'report', round: 1, attempt: machine.attempt, from: clients[0], clients: [clients[0]], weight: 10 });
    assert.deepEqual(tails, [{ round: 1, from: [clients[0]], samples: 10 }]);
    assert.equal(machine.stage, 'closing', 'the round stays closing while its tail runs');
    finishTail('closed');
    await waitFor(async () => machine.stage === 'done');
    assert.deepEqual([tails.length, finished], [1, 1]);
  });

  it("leaves the round closing, and closes nothing, when its tail could not finish", async () => {
    let finished = 0;
    const { run, machine, clients } = executorFor('agg', { closeRound: async () => 'stopped', finish: () => void finished++ });
    run.dispatch({ type: 'start' });
    run.dispatch({ type: 'checkin', client: clients[0], samples: 10 });
    run.dispatch({ type: 'report', round: 1, attempt: machine.attempt, from: clients[0], clients: [clients[0]], weight: 10 });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual([machine.stage, finished], ['closing', 0]);
  });
});
