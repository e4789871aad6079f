/**
 * Bytes on the wire, counted at the socket (request line, headers and body, both ways),
 * for every connection a node accepts or opens. Rounds read it as differences of totals;
 * /metrics reads it per peer.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

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

export class WireMeter {
  private readonly open = new Map<Socket, PeerName>();
  private readonly closed = new Map<PeerName, WireTotals>();

  track(socket: Socket, peer: PeerName = plainHost(socket.remoteAddress)): void {
    if (this.open.has(socket)) return;
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
    this.open.delete(socket);
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

  /** Counts what `server` accepts. */
  attachServer(server: http.Server): void {
    server.on('connection', (socket) => this.track(socket));
  }

  /** An agent whose connections are counted; keep-alive so rounds reuse sockets. */
  agent(): http.Agent {
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
    return new MeteredAgent({ keepAlive: true, maxSockets: 16 });
  }
}

export function diffTotals(later: WireTotals, earlier: WireTotals): WireTotals {
  return { received: later.received - earlier.received, sent: later.sent - earlier.sent };
}
