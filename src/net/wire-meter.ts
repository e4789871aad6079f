/**
 * Bytes on the wire, counted at the socket (request line, headers and body, both ways, and with
 * TLS its handshakes and record overhead), for every connection a node accepts or opens. Rounds
 * read it as differences of totals; /metrics reads it per peer.
 */
import http from 'node:http';
import https from 'node:https';
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';

export interface WireTotals {
  received: number;
  sent: number;
}

/**
 * Who a connection is with: for one this node opened, the address it dialled (host:port, as in
 * config.json); for one it accepted, the remote host alone (the remote port is ephemeral: with it,
 * every new connection would be a peer of its own).
 */
export type PeerName = string;

const plainHost = (address: string | undefined) => (address ?? 'unknown').replace(/^::ffff:/, '');

/**
 * Peers named one by one, at most: a stranger anyone can be (a port scan, a burst of refused
 * callers) must not grow the node's memory and its metrics without end. The rest count as `other`.
 */
export const MAX_NAMED_PEERS = 1024;

export class WireMeter {
  private readonly open = new Map<Socket, PeerName>();
  private readonly closed = new Map<PeerName, WireTotals>();
  /** Accepted TCP sockets by their remote end: a TLS socket counts plaintext, the TCP socket under it the wire. */
  private readonly accepted = new Map<string, Socket>();

  private readonly named = new Set<PeerName>();

  track(socket: Socket, peer: PeerName = plainHost(socket.remoteAddress)): void {
    if (this.open.has(socket)) return;
    if (!this.named.has(peer)) {
      if (this.named.size >= MAX_NAMED_PEERS) peer = 'other';
      else this.named.add(peer);
    }
    this.open.set(socket, peer);
    socket.once('close', () => {
      if (!this.open.delete(socket)) return;
      const sum = this.closed.get(peer) ?? { received: 0, sent: 0 };
      sum.received += socket.bytesRead;
      sum.sent += socket.bytesWritten;
      this.closed.set(peer, sum);
    });
  }

  /** Stops counting a connection, all of it (a monitor's health checks are not experiment traffic). */
  exclude(socket: Socket): void {
    this.open.delete(this.accepted.get(endpoint(socket)) ?? socket);
  }

  totals(): WireTotals {
    let received = 0;
    let sent = 0;
    for (const sum of this.perPeer().values()) {
      received += sum.received;
      sent += sum.sent;
    }
    return { received, sent };
  }

  /** Everything counted so far, by peer: connections closed and open alike. */
  perPeer(): Map<PeerName, WireTotals> {
    const out = new Map<PeerName, WireTotals>();
    for (const [peer, sum] of this.closed) out.set(peer, { ...sum });
    for (const [socket, peer] of this.open) {
      const sum = out.get(peer) ?? { received: 0, sent: 0 };
      sum.received += socket.bytesRead;
      sum.sent += socket.bytesWritten;
      out.set(peer, sum);
    }
    return out;
  }

  /** Counts what `server` accepts (for HTTPS too, 'connection' is the TCP socket). */
  attachServer(server: http.Server | https.Server): void {
    server.on('connection', (socket: Socket) => {
      this.track(socket);
      const key = endpoint(socket);
      this.accepted.set(key, socket);
      socket.once('close', () => this.accepted.get(key) === socket && this.accepted.delete(key));
    });
  }

  /** An agent whose connections are counted; keep-alive so rounds reuse sockets. With a certificate in `options`, HTTPS over a counted TCP socket. */
  agent(options: https.AgentOptions & { localAddress?: string; family?: number } = {}): http.Agent {
    return options.cert ? this.tlsAgent(options) : this.plainAgent(options);
  }

  private tlsAgent(tls: https.AgentOptions): https.Agent {
    const meter = this;
    class MeteredTlsAgent extends https.Agent {
      override createConnection(options: http.ClientRequestArgs & ConnectionOptions, callback?: (err: Error | null, stream: Duplex) => void) {
        // TLS over a TCP socket we open, so the count is what crosses the wire, not the plaintext.
        const tcp = net.connect({ host: options.host!, port: Number(options.port), localAddress: options.localAddress, family: options.family });
        meter.track(tcp, `${options.host}:${options.port}`);
        return super.createConnection({ ...options, socket: tcp } as http.ClientRequestArgs, callback);
      }
    }
    return new MeteredTlsAgent({ ...tls, keepAlive: true, maxSockets: 16 });
  }

  private plainAgent(agentOptions: http.AgentOptions & { localAddress?: string; family?: number }): http.Agent {
    const meter = this;
    class MeteredAgent extends http.Agent {
      override createConnection(
        options: http.ClientRequestArgs,
        callback?: (err: Error | null, stream: Duplex) => void,
      ) {
        const socket = super.createConnection(options, callback);
        if (socket) meter.track(socket as Socket, `${options.host ?? options.hostname}:${options.port}`);
        return socket;
      }
    }
    return new MeteredAgent({ ...agentOptions, keepAlive: true, maxSockets: 16 });
  }
}

const endpoint = (socket: Socket) => `${socket.remoteAddress}:${socket.remotePort}`;

export function diffTotals(later: WireTotals, earlier: WireTotals): WireTotals {
  return { received: later.received - earlier.received, sent: later.sent - earlier.sent };
}
