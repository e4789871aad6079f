/**
 * Calls to other nodes, against loopback servers that misbehave as a compromised node could: an
 * answer trickled a byte at a time, an answer without end. Each is cut off, in time and in size,
 * rather than hold the caller for ever or fill its memory. And /health goes without credentials.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Credentials } from '../../../src/net/identity';
import { describeFailure, Peers } from '../../../src/net/peers';
import { acknowledgeArrivals } from '../../../src/net/progress-deadline';
import express from 'express';
import { WireMeter } from '../../../src/net/wire-meter';
import { TOKEN } from '../../helpers/node-context';

/** How fast the slow peers below read a body. */
const READ_BYTES_PER_MS = 4096;

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
    } else if (req.url === '/slow-reader' || req.url === '/stops-reading') {
      // Reads at 4 MB/s whatever the chunks' sizes: the body flows, slower than the timeout allows for all of it.
      let received = 0;
      req.on('data', (chunk: Buffer) => {
        received += chunk.length;
        req.pause();
        if (req.url === '/slow-reader' || received < 100_000) setTimeout(() => req.resume(), chunk.length / READ_BYTES_PER_MS);
      });
      req.on('end', () => res.end(JSON.stringify({ received })));
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

  // More than loopback's socket buffers hold, so the body waits on the reader: 4 s at its pace.
  const LARGE = Buffer.alloc(16 << 20, 0x62);

  it('sends a body for longer than the timeout while its bytes flow, and gives up once they stop', async () => {
    // Two seconds without progress: on a loaded machine (two test files at once) the reader's own timers slip by one.
    const patient = new Peers(Credentials.fromSecret(TOKEN, '127.0.9.1:5000'), new WireMeter(), 2000);
    let started = performance.now();
    const answer = await patient.post<{ received: number }>(address, '/slow-reader', LARGE, { headers: { 'Content-Type': 'application/octet-stream' } });
    const took = performance.now() - started;
    assert.equal(answer.received, LARGE.length);
    assert.ok(took > 2000, `took ${took.toFixed(0)} ms, not past the 2000 ms timeout: nothing shown`);
    started = performance.now();
    const failure = await peers.post(address, '/stops-reading', LARGE, { headers: { 'Content-Type': 'application/octet-stream' } }).then(() => undefined, describeFailure);
    assert.equal(failure?.kind, 'unreachable');
    assert.ok(performance.now() - started < 5000, `gave up after ${performance.now() - started} ms`);
  });

  it("hears a body that the kernel's buffers took whole arrive at the peer, and waits for it while it does", async () => {
    // 2 MB: loopback's buffers take it at once, and then nothing moves on the sender's side; read at 1 MB/s.
    const app = express();
    app.use(acknowledgeArrivals);
    app.post('/slow', (req, res) => {
      let received = 0;
      req.on('data', (chunk: Buffer) => {
        received += chunk.length;
        req.pause();
        setTimeout(() => req.resume(), chunk.length / (READ_BYTES_PER_MS / 4));
      });
      req.on('end', () => res.json({ received }));
    });
    const slow = http.createServer(app);
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    try {
      const started = performance.now();
      const body = Buffer.alloc(2 << 20, 0x63);
      const answer = await peers.post<{ received: number }>(`127.0.0.1:${(slow.address() as AddressInfo).port}`, '/slow', body, { headers: { 'Content-Type': 'application/octet-stream' } });
      assert.equal(answer.received, body.length);
      assert.ok(performance.now() - started > 1000, `took ${performance.now() - started} ms, not past the timeout: nothing shown`);
    } finally {
      slow.closeAllConnections();
      slow.close();
    }
  });

  it('gives up on a peer that answers "102 Processing" without end, however much each says', async () => {
    // Padded 102s, 80 KB a second: as bytes read they would be progress (and raise the cap on the call's time) for ever.
    // The call's own 15 s limit only ends the test if the deadline does not.
    const padded = `HTTP/1.1 102 Processing\r\nX-Pad: ${'p'.repeat(8000)}\r\n\r\n`;
    const flooder = net.createServer((socket) => {
      socket.once('data', () => {
        const timer = setInterval(() => socket.write(padded), 100);
        socket.on('close', () => clearInterval(timer)).on('error', () => clearInterval(timer));
      });
    });
    await new Promise<void>((resolve) => flooder.listen(0, '127.0.0.1', resolve));
    try {
      const started = performance.now();
      const failure = await peers.post(`127.0.0.1:${(flooder.address() as AddressInfo).port}`, '/s/round', { round: 1 }, { timeout: 15_000 }).then(() => undefined, describeFailure);
      assert.equal(failure?.kind, 'unreachable', JSON.stringify(failure));
      // A second without progress (the 102s count for no more than the few bytes sent), checked every 250 ms; loaded, a few more.
      assert.ok(performance.now() - started < 5000, `gave up after ${performance.now() - started} ms`);
    } finally {
      flooder.close();
    }
  });

  it("ends a call at the caller's own limit however much garbage is collected meanwhile", async () => {
    // Node 20's AbortSignal.any holds its sources weakly: collected, a timeout's signal never fires.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const collecting = setInterval(gc, 20);
    const patient = new Peers(Credentials.fromSecret(TOKEN, '127.0.9.1:5000'), new WireMeter(), 60_000);
    try {
      const started = performance.now();
      const at = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
      const failure = await patient.post(at, '/s/round', { round: 1 }, { timeout: 300 }).then(() => undefined, describeFailure);
      assert.equal(failure?.kind, 'unreachable');
      assert.ok(performance.now() - started < 10_000, `ended after ${performance.now() - started} ms, by the 60 s without progress`);
    } finally {
      clearInterval(collecting);
      silent.close();
    }
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

/**
 * A peer that closes a kept-alive connection as the next call goes out on it: each connection takes
 * `answered` calls, and the next one's first bytes are met with a reset (as an idle timeout firing at
 * that moment meets them), or, with `processing`, with a 102 first: the peer was reading that one.
 * Each call is kept with the connection it came on, and its body when it was answered.
 */
async function closingPeer(answered: number, processing = false) {
  const calls: { connection: number; body?: string }[] = [];
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const connection = ++connections;
    let served = 0;
    let buffered = Buffer.alloc(0);
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      if (served === answered) {
        calls.push({ connection });
        served++;
        if (processing) socket.write('HTTP/1.1 102 Processing\r\n\r\n', () => setTimeout(() => socket.resetAndDestroy(), 50));
        else socket.resetAndDestroy();
        return;
      }
      buffered = Buffer.concat([buffered, chunk]);
      const headerEnd = buffered.indexOf('\r\n\r\n');
      const length = Number(/content-length: (\d+)/i.exec(buffered.toString('latin1'))?.[1] ?? 0);
      if (headerEnd < 0 || buffered.length < headerEnd + 4 + length) return;
      const body = buffered.subarray(headerEnd + 4, headerEnd + 4 + length).toString();
      buffered = buffered.subarray(headerEnd + 4 + length);
      served++;
      calls.push({ connection, body });
      const reply = JSON.stringify({ got: body });
      socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${reply.length}\r\nConnection: keep-alive\r\n\r\n${reply}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  // The caller's kept-alive connection would hold close() open.
  const close = () => new Promise((resolve) => (server.close(resolve), sockets.forEach((socket) => socket.destroy())));
  return { address, calls, close };
}

describe('a kept-alive connection the peer closes', () => {
  const peersFor = () => new Peers(Credentials.fromSecret(TOKEN, '127.0.9.1:5000'), new WireMeter(), 2000);

  it('makes the call once more on a new connection, body and all, and answers as the peer did', async () => {
    const peer = await closingPeer(1);
    try {
      const peers = peersFor();
      assert.deepEqual(await peers.post(peer.address, '/first', Buffer.from('one')), { got: 'one' });
      assert.deepEqual(await peers.post(peer.address, '/second', Buffer.from('two')), { got: 'two' });
      assert.deepEqual(peer.calls, [{ connection: 1, body: 'one' }, { connection: 1 }, { connection: 2, body: 'two' }]);
    } finally {
      await peer.close();
    }
  });

  it('does not call again when a new connection is closed so: that is the peer refusing the call', async () => {
    const peer = await closingPeer(0);
    try {
      const failure = await peersFor().post(peer.address, '/only', Buffer.from('x')).then(() => undefined, describeFailure);
      assert.equal(failure?.kind, 'unreachable');
      assert.deepEqual(peer.calls, [{ connection: 1 }]);
    } finally {
      await peer.close();
    }
  });

  it('does not call again once the peer said something of the call (a 102): it was reading it', async () => {
    const peer = await closingPeer(1, true);
    try {
      const peers = peersFor();
      await peers.post(peer.address, '/first', Buffer.from('one'));
      const failure = await peers.post(peer.address, '/second', Buffer.from('two')).then(() => undefined, describeFailure);
      assert.equal(failure?.kind, 'unreachable');
      assert.deepEqual(peer.calls, [{ connection: 1, body: 'one' }, { connection: 1 }]);
    } finally {
      await peer.close();
    }
  });
});
