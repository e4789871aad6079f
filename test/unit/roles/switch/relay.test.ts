/**
 * The relay down the tree on its own, with real sockets: a switch's round machine, a relay, and
 * loopback servers playing its clients and the switch below. Every selected client must hear
 * something, the model or a stand-by, and a stand-by must go to the clients of the attempt it is for.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SwitchMachine, type SwitchAction, type SwitchEvent } from '../../../../src/protocol/switch';
import { DownRelay } from '../../../../src/roles/switch/relay';
import { Topology } from '../../../../src/topology/tree';
import { decode, encode, Kind } from '../../../../src/wire/codec';
import { waitFor } from '../../../helpers/cluster';
import { nodeContext } from '../../../helpers/node-context';

/** A loopback node that records what it was sent, and answers with `status` (or holds its answer while `hold` is set). */
class FakeNode {
  /** What arrived, in order, and when (performance.now()). */
  readonly calls: { path: string; body: string; raw: Buffer; at: number }[] = [];
  status = 200;
  hold = false;
  private held: (() => void)[] = [];
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      this.calls.push({ path: req.url!, body: raw.toString(), raw, at: performance.now() });
      const answer = () => ((res.statusCode = this.status), res.end(this.status === 200 ? '{}' : '{"error": "no", "reason": "refused in the test"}'));
      if (this.hold) this.held.push(answer);
      else answer();
    });
  });
  address = '';
  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.address = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  release(): void {
    this.hold = false;
    this.held.splice(0).forEach((answer) => answer());
  }
  paths = () => this.calls.map((c) => c.path);
  close = () => this.server.close();
}

describe('the relay down the tree', () => {
  const [c1, c2, c3, below] = [new FakeNode(), new FakeNode(), new FakeNode(), new FakeNode()];
  before(() => Promise.all([c1, c2, c3, below].map((n) => n.listen())));
  after(() => [c1, c2, c3, below].forEach((n) => n.close()));
  const reset = () => [c1, c2, c3, below].forEach((n) => ((n.calls.length = 0), (n.status = 200), n.release()));

  /** c1 reports to this switch; c2 and c3 through the switch below. Events the relay raises go back into the machine. */
  /** `timeoutMs`: how long the relay's calls wait for an answer. */
  function relaySwitch(timeoutMs = 30_000) {
    const SW = 'sw:5000';
    const machine = new SwitchMachine(new Topology(SW, { [c1.address]: SW, [c2.address]: below.address, [c3.address]: below.address, [below.address]: SW }));
    const events: SwitchEvent[] = [];
    const context = nodeContext('relay', timeoutMs);
    const handle = (event: SwitchEvent) => (events.push(event), carryOut(machine.handle(event)));
    const relay: DownRelay = new DownRelay(machine, {
      peers: context.peers,
      logger: context.logger,
      signal: new AbortController().signal,
      isStopped: () => false,
      handle,
      drop: (round, attempt, client, why) => handle({ type: 'drop', round, attempt, client, why }),
    });
    const carryOut = (actions: SwitchAction[]) => {
      for (const action of actions) if (action.type === 'open-below') relay.open(action, { deadline_ms: 1000, parameters: 1, model_id: 1 });
    };
    const open = (attempt: string, clients: string[]) => carryOut(machine.handle({ type: 'open', round: 1, attempt, clients, weights: Object.fromEntries(clients.map((c) => [c, 10])), deadlineMs: 60_000 }));
    return { machine, relay, events, open };
  }
  const model = encode({ kind: Kind.Model, round: 1, modelId: 1, contributors: 0, weight: 0, sender: 'sw:5000', meta: { attempt: 's:1.0', epochs: 2 }, parameters: Float32Array.from([1, 2]) });
  const nextModel = encode({ kind: Kind.Model, round: 1, modelId: 1, contributors: 0, weight: 0, sender: 'sw:5000', meta: { attempt: 's:1.1' }, parameters: Float32Array.from([3]) });
  /** Each client's own part of the instructions, as the opening gave them. */
  const fitOf = (client: string) => ({ [c1.address]: { share: 0.25 }, [c2.address]: { share: 0.75, epochs: 1 } })[client];

  it('sends the model to its own clients, and to the switch below only once that took its opening', async () => {
    reset();
    below.hold = true;
    const { relay, open } = relaySwitch();
    open('s:1.0', [c1.address, c2.address]);
    relay.relay(model, 1, 's:1.0', fitOf);
    await waitFor(async () => c1.paths().includes('/c/round') && below.paths().includes('/s/round'));
    assert.deepEqual(JSON.parse(below.calls[0].body).clients, [c2.address]);
    const released = performance.now();
    below.release();
    await waitFor(async () => below.paths().includes('/s/model'));
    // Sent with c1's, before the opening's answer, the model would have arrived before the release.
    assert.deepEqual(below.paths(), ['/s/round', '/s/model']);
    assert.ok(below.calls[1].at > released, 'the model went below before its round was open there');
    assert.deepEqual([c2.paths(), c3.paths()], [[], []], 'the switch below relays to its own clients, not this one');
    // c1's copy carries its own part of the instructions, and no other's; the switch below gets the model as it came.
    const toClient = decode(c1.calls.find((c) => c.path === '/c/round')!.raw);
    assert.deepEqual([toClient.meta, [...toClient.parameters]], [{ attempt: 's:1.0', epochs: 2, fit: { share: 0.25 } }, [1, 2]]);
    assert.deepEqual(below.calls[1].raw, model);
  });

  it('tells a selected client dropped before the model came to stand by, so that it checks in again', async () => {
    reset();
    const { machine, relay, open } = relaySwitch();
    open('s:1.0', [c1.address, c2.address]);
    machine.handle({ type: 'drop', round: 1, attempt: 's:1.0', client: c1.address });
    relay.relay(model, 1, 's:1.0', fitOf);
    await waitFor(async () => c1.calls.length > 0 && below.paths().includes('/s/model'));
    assert.deepEqual(c1.paths(), ['/c/standby']);
  });

  it('drops a client that does not take the model, and gives up the switch below that does not, telling its clients to stand by', async () => {
    reset();
    c1.status = 409;
    below.status = 503;
    const { machine, relay, events, open } = relaySwitch();
    open('s:1.0', [c1.address, c2.address, c3.address]);
    relay.relay(model, 1, 's:1.0', fitOf);
    await waitFor(async () => machine.state.stage === 'forwarded');
    assert.deepEqual(events.map((e) => e.type).sort(), ['drop', 'withheld']);
    await waitFor(async () => c2.paths().includes('/c/standby') && c3.paths().includes('/c/standby'));
  });

  for (const [how, stall] of [
    ['refuses it (a 400: a model it cannot take)', (node: FakeNode) => (node.status = 400)],
    ['does not answer in time (a slow link)', (node: FakeNode) => (node.hold = true)],
  ] as const) {
    it(`a client that ${how} is dropped and told to stand by for that attempt: it is never left waiting`, async () => {
      reset();
      stall(c1);
      const { machine, relay, events, open } = relaySwitch(1000);
      open('s:1.0', [c1.address, c2.address]);
      relay.relay(model, 1, 's:1.0', fitOf);
      await waitFor(async () => c1.paths().includes('/c/standby'), 10_000);
      const standby = c1.calls.find((c) => c.path === '/c/standby')!;
      assert.deepEqual(JSON.parse(standby.body), { round: 1, attempt: 's:1.0' });
      assert.ok(events.some((e) => e.type === 'drop' && e.client === c1.address), 'dropped from the round');
      assert.ok(!machine.state.clients.includes(c1.address), 'the round does not wait for it');
      c1.release();
    });
  }

  it("stands by the clients of the attempt a late answer is for, not those of the attempt open now", async () => {
    reset();
    below.hold = true;
    const { relay, open } = relaySwitch();
    open('s:1.0', [c1.address, c2.address]);
    relay.relay(model, 1, 's:1.0', fitOf);
    await waitFor(async () => below.calls.length === 1);
    open('s:1.1', [c1.address, c3.address]); // the round opened again, c3 beneath the switch below this time
    below.release(); // the first opening's answer comes now: its model is not wanted any more
    await waitFor(async () => c2.paths().includes('/c/standby'));
    assert.equal(JSON.parse(c2.calls.find((c) => c.path === '/c/standby')!.body).attempt, 's:1.0', 'the stand-by names its attempt');
    // The open attempt's model, relayed after: what reaches the switch below is it alone, and c3 hears nothing from this switch.
    relay.relay(nextModel, 1, 's:1.1', fitOf);
    await waitFor(async () => below.paths().includes('/s/model'));
    assert.deepEqual(below.calls.filter((c) => c.path === '/s/model').map((c) => c.raw), [nextModel], 'the first attempt sent its model below');
    assert.deepEqual(c3.paths(), [], 'c3 is in the attempt open now: no stand-by for it');
  });
});
