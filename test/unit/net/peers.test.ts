/**
 * Calls to other nodes, against loopback servers that misbehave as a compromised node could: an
 * answer trickled a byte at a time, an answer without end. Each is cut off, in time and in size,
 * rather than hold the caller for ever or fill its memory. And /health goes without credentials.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Credentials } from '../../../src/net/identity';
import { describeFailure, Peers } from '../../../src/net/peers';
import { WireMeter } from '../../../src/net/wire-meter';
import { TOKEN } from '../../helpers/node-context';

describe('calls to other nodes', () => {
  const seen: { path: string; authorization?: string }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ path: req.url!, authorization: req.headers.authorization });
    res.writeHead(200, { 'Content-Type': 'application/json' });
    if (req.url === '/trickle') {
      res.write('{"a": "');
      const timer = setInterval(() => res.write('x'), 100);
      res.on('close', () => clearInterval(timer));
    } else if (req.url === '/endless') {
      const chunk = Buffer.alloc(1 << 20, 0x61);
      const pump = () => {
        while (res.write(chunk));
      };
      res.on('drain', pump);
      pump();
    } else res.end('{"status": "ok"}');
  });
  let address = '';
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => (server.closeAllConnections(), server.close()));
  const peers = new Peers(Credentials.fromSecret(TOKEN, '127.0.9.1:5000'), new WireMeter(), 1000);

  it('gives up on an answer that trickles in past the timeout, though its headers came at once', async () => {
    const started = performance.now();
    const failure = await peers.get(address, '/trickle').then(() => undefined, describeFailure);
    assert.deepEqual(failure, { kind: 'unreachable', reason: 'no whole answer in time (or this node is stopping)' });
    assert.ok(performance.now() - started < 5000, `took ${performance.now() - started} ms`);
  });

  it('stops reading an answer beyond 32 MiB', async () => {
    const failure = await peers.get(address, '/endless', { timeout: 60_000 }).then(() => undefined, describeFailure);
    assert.equal(failure?.kind, 'unreachable');
    assert.match(failure!.reason, /^its answer is larger than this node reads \(maxContentLength size of 33554432 exceeded/);
  });

  it('sends its credentials on every call but the open /health', async () => {
    seen.length = 0;
    await peers.health(address, 1000);
    await peers.get(address, '/status');
    assert.deepEqual(seen.map((s) => [s.path, Boolean(s.authorization)]), [['/health', false], ['/status', true]]);
  });
});
