/** The wire meter: the bytes a peer sees on the socket, by peer. */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { Peers } from '../../../src/net/peers';
import { MAX_NAMED_PEERS, WireMeter } from '../../../src/net/wire-meter';
import { rawServer } from '../../helpers/raw-server';
import { Credentials } from '../../../src/net/identity';


describe('wire meter', () => {
  it('counts exactly the bytes a peer sees on the socket, headers included', async () => {
    const server = await rawServer('{"ok":true}');
    const meter = new WireMeter();
    const peers = new Peers(Credentials.fromSecret('a-token-of-some-length'), meter, 5000);
    const body = { payload: 'x'.repeat(10_000) };
    await peers.post(`127.0.0.1:${server.port}`, '/s/receive', body);
    await new Promise((r) => setTimeout(r, 50));
    const totals = meter.totals();
    assert.equal(totals.sent, server.counts().received);
    assert.equal(totals.received, server.counts().sent);
    assert.ok(totals.sent > JSON.stringify(body).length, 'headers count too');
    await server.close();
  });

  it('counts what a server accepts, across keep-alive requests', async () => {
    const meter = new WireMeter();
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('done'));
    });
    meter.attachServer(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const client = new WireMeter();
    const peers = new Peers(Credentials.fromSecret('a-token-of-some-length'), client, 5000);
    for (let i = 0; i < 3; i++) await peers.post(`127.0.0.1:${port}`, '/x', Buffer.alloc(1000), { headers: { 'Content-Type': 'application/octet-stream' } });
    assert.equal(meter.totals().received, client.totals().sent);
    assert.equal(meter.totals().sent, client.totals().received);
    assert.ok(meter.totals().received > 3000);
    server.closeAllConnections();
    server.close();
  });

  it('splits the same bytes by peer: the address dialled, or the remote host of a connection accepted', async () => {
    const accepting = new WireMeter();
    const servers = [http.createServer((req, res) => req.resume().on('end', () => res.end('ok'))), http.createServer((req, res) => req.resume().on('end', () => res.end('ok')))];
    const ports: number[] = [];
    const accepted: net.Socket[] = [];
    for (const server of servers) {
      accepting.attachServer(server);
      server.on('connection', (socket) => accepted.push(socket));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      ports.push((server.address() as net.AddressInfo).port);
    }
    const dialling = new WireMeter();
    const peers = new Peers(Credentials.fromSecret('a-token-of-some-length'), dialling, 5000);
    await peers.post(`127.0.0.1:${ports[0]}`, '/x', Buffer.alloc(1000), { headers: { 'Content-Type': 'application/octet-stream' } });
    await peers.post(`127.0.0.1:${ports[1]}`, '/x', Buffer.alloc(3000), { headers: { 'Content-Type': 'application/octet-stream' } });
    const byPeer = dialling.perPeer();
    assert.deepEqual([...byPeer.keys()].sort(), ports.map((p) => `127.0.0.1:${p}`).sort());
    const [first, second] = ports.map((p) => byPeer.get(`127.0.0.1:${p}`)!);
    assert.ok(first.sent > 1000 && second.sent > 3000 && second.sent - first.sent >= 2000, JSON.stringify(byPeer));
    // Both connections came from the same host: one peer, their sum.
    assert.deepEqual(Object.fromEntries(accepting.perPeer()), { '127.0.0.1': { received: dialling.totals().sent, sent: dialling.totals().received } });
    const whileOpen = accepting.perPeer().get('127.0.0.1');
    // Until every socket has closed, its bytes are still read from the open socket, not the closed sums.
    const closed = accepted.map((socket) => new Promise((r) => socket.once('close', r)));
    await Promise.all(servers.map((server) => new Promise((r) => (server.close(r), server.closeAllConnections()))));
    await Promise.all(closed);
    assert.deepEqual(accepting.perPeer().get('127.0.0.1'), whileOpen, 'kept once the connections close');
  });
});

describe('wire meter peers', () => {
  it(`names at most ${MAX_NAMED_PEERS} peers; the rest count as "other"`, () => {
    const meter = new WireMeter();
    for (let i = 0; i < MAX_NAMED_PEERS + 40; i++) meter.track(new net.Socket(), `peer-${i}`);
    const peers = [...meter.perPeer().keys()];
    assert.equal(peers.length, MAX_NAMED_PEERS + 1);
    assert.ok(peers.includes('other') && peers.includes('peer-0') && !peers.includes(`peer-${MAX_NAMED_PEERS}`));
    meter.track(new net.Socket(), 'peer-1');
    assert.equal(meter.perPeer().size, MAX_NAMED_PEERS + 1, 'a peer named before keeps its name');
  });
});
