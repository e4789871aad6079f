/**
 * A switch's way up: the deadline it keeps within the one above it (room for its upload and the sum
 * above, at every depth), and the upload that sets it, against a loopback upstream that takes its time.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../../src/config/load';
import type { SwitchNodeConfig } from '../../../../src/config/node-config';
import { testbedConfig } from '../../../../src/config/testbed';
import { IterationLog } from '../../../../src/log/iteration-log';
import { WireMeter } from '../../../../src/net/wire-meter';
import { Upstream } from '../../../../src/roles/switch/upstream';
import { Arrivals } from '../../../../src/roles/arrivals';
import { decode } from '../../../../src/wire/codec';
import { nodeContext } from '../../../helpers/node-context';

function upstreamTo(address: string): Upstream {
  const config = [...resolveNodeConfigs(parseExperimentConfig(testbedConfig({ base: '127.0.9', nodes: 4, switches: 1, he: false }))).values()].find(
    (n): n is SwitchNodeConfig => n.type === 'switch',
  )!;
  const context = nodeContext('switch');
  const iterations = new IterationLog(context.logsDir, 'switch', config.experiment, new WireMeter());
  iterations.beginRound(1);
  return new Upstream({ config: { ...config, upstream: address, aggregator: address }, peers: context.peers, logger: context.logger, signal: new AbortController().signal, iterations });
}

describe("a switch's deadline within the one above it", () => {
  it('keeps a tenth of it (50 ms at least), so each level below forwards earlier than the one above, whatever the depth', () => {
    const upstream = upstreamTo('127.0.0.1:1');
    assert.equal(upstream.deadlineWithin(300_000), 270_000);
    assert.equal(upstream.deadlineWithin(100), 50, 'a short deadline keeps its margin: 100 is not 100');
    // Four levels below a 1 s round: strictly earlier at each.
    let deadline = 1000;
    for (let depth = 0; depth < 4; depth++) {
      const next = upstream.deadlineWithin(deadline);
      assert.ok(next < deadline, `depth ${depth}: ${next} is not before ${deadline}`);
      deadline = next;
    }
  });

  it('keeps twice what its last upload took, when that is more: a slow link leaves its sum the time to go up', async () => {
    const bodies: Buffer[] = [];
    const slow = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => (bodies.push(Buffer.concat(chunks)), setTimeout(() => res.end('{}'), 300)));
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    after(() => slow.close());
    const upstream = upstreamTo(`127.0.0.1:${(slow.address() as AddressInfo).port}`);
    assert.equal(upstream.deadlineWithin(2000), 1800);
    const total = { kind: 'plain' as const, sum: new Float64Array(4), weight: 10, contributors: 2, updates: [] };
    const arrivals = new Arrivals();
    arrivals.open(0);
    arrivals.took(1200, ['b']);
    arrivals.took(900, ['a']);
    await upstream.forward({ round: 1, attempt: 's:1.0', modelId: 1, parameters: 4, clients: ['a', 'b'], missing: [], total, waitedMs: 0, arrivals: arrivals.snapshot(1500), collectMs: 0, aggregateStart: performance.now() });
    // The sum says how long before it went up (1.5 s in) each client's update arrived, in the order it names them.
    assert.deepEqual(decode(bodies[0]).meta, { attempt: 's:1.0', clients: ['a', 'b'], waited_ms: 0, ages_ms: [600, 300] });
    const within = upstream.deadlineWithin(2000);
    assert.ok(within <= 2000 - 600 && within > 0, `kept ${2000 - within} ms of 2000 after a 300 ms upload`);
    // Never more than half: a slow upload must not leave its clients no time to train, round after round.
    assert.equal(upstream.deadlineWithin(800), 400);
  });
});
