/**
 * Bytes on the wire, counted at the socket (request line, headers and body, both ways),
 * for every connection a node accepts or opens. Rounds read it as differences of totals.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export interface WireTotals {
  received: number;
  sent: number;
}

export class WireMeter {
  private readonly open = new Set<Socket>();
  private closedReceived = 0;
  private closedSent = 0;

  track(socket: Socket): void {
    if (this.open.has(socket)) return;
    this.open.add(socket);
    socket.once('close', () => {
      if (!this.open.delete(socket)) return;
      this.closedReceived += socket.bytesRead;
      this.closedSent += socket.bytesWritten;
    });
  }

  /** Stops counting a connection, all of it (a monitor's health checks are not experiment traffic). */
  exclude(socket: Socket): void {
    this.open.delete(socket);
  }

  totals(): WireTotals {
    let received = this.closedReceived;
    let sent = this.closedSent;
    for (const socket of this.open) {
      received += socket.bytesRead;
      sent += socket.bytesWritten;
    }
    return { received, sent };
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
        if (socket) meter.track(socket as Socket);
        return socket;
      }
    }
    return new MeteredAgent({ keepAlive: true, maxSockets: 16 });
  }
}

export function diffTotals(later: WireTotals, earlier: WireTotals): WireTotals {
  return { received: later.received - earlier.received, sent: later.sent - earlier.sent };
}
