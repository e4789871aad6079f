/**
 * A call's deadline that moves while its bytes do. A fixed deadline (request_ms from the first byte)
 * cuts off a model of tens of megabytes on a shaped link however steadily it flows; this one ends a
 * call only once PROGRESS_BYTES have not moved, either way, for `idleMs`: a peer that answers
 * nothing is given up on as before, a transfer that flows is not.
 *
 * What moved is counted where it is real: the body as the socket takes it, in slices (the stream
 * waits while the kernel's buffer is full), the answer as the socket reads it, and what the peer has
 * read of the body as it says so. The kernel's buffers can hold a whole body of a megabyte or so at
 * once, and then nothing moves on this side while a slow link drains them: the receiving node answers
 * "102 Processing" as another PROGRESS_BYTES arrive (acknowledgeArrivals), and each counts, though
 * never for more than was sent: a peer's word stretches a call only as far as what it was sent.
 *
 * A peer that trickles just enough is still ended: a call may take at most twice `idleMs` plus what
 * it carried at MIN_RATE (16 KiB a second, 128 kbit/s), however steadily it moves.
 */
import type http from 'node:http';
import type { Socket } from 'node:net';
import type { RequestHandler } from 'express';
import { Readable } from 'node:stream';

/** What must move within each `idleMs` for a call to go on: a trickle of less is no transfer. */
export const PROGRESS_BYTES = 16 * 1024;
/** The slowest a call may average, bytes a millisecond, past its first two `idleMs`. */
const MIN_RATE = PROGRESS_BYTES / 1000;
/** A body goes out in slices of this (views, not copies): the finer, the truer the count. */
const SLICE = 64 * 1024;

type Transport = Pick<typeof http, 'request'>;

export class ProgressDeadline {
  private readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  private sent = 0;
  private socket?: Socket;
  private readAtStart = 0;
  /** The socket's count when the answer itself began: what came before it (1xx answers) is no progress but their number. */
  private readAtAnswer?: number;
  /** The peer's "102 Processing" answers: each says another PROGRESS_BYTES of the body arrived. */
  private acknowledged = 0;
  private movedAtProgress = 0;
  private startedAt = performance.now();
  private progressAt = this.startedAt;
  private checkedAt = this.startedAt;
  private readonly everyMs: number;
  private readonly ticker: NodeJS.Timeout;

  constructor(private readonly idleMs: number) {
    this.everyMs = Math.min(60_000, Math.max(50, idleMs / 4));
    this.ticker = setInterval(() => this.check(), this.everyMs);
    this.ticker.unref();
  }

  /** The call's body (a buffer, or a message in parts), as a stream of slices that counts what the socket took. */
  body(data: Buffer | readonly Buffer[]): Readable {
    const parts = Buffer.isBuffer(data) ? [data] : data;
    const slices = function* (this: ProgressDeadline) {
      for (const part of parts) {
        for (let at = 0; at < part.length; at += SLICE) {
          const slice = part.subarray(at, at + SLICE);
          this.sent += slice.length;
          yield slice;
        }
      }
    }.call(this);
    return Readable.from(slices, { objectMode: false, highWaterMark: SLICE });
  }

  /** `http` or `https`, with the call's socket watched for what it reads. */
  transport(module: Transport): Transport {
    return {
      request: ((options: http.RequestOptions, answer?: (res: http.IncomingMessage) => void) => {
        const request = module.request(options, answer);
        request.on('information', () => this.acknowledged++);
        request.once('response', () => (this.readAtAnswer = this.socket?.bytesRead));
        request.once('socket', (socket: Socket) => {
          this.socket = socket;
          this.readAtStart = socket.bytesRead; // a kept-alive socket has read for calls before
        });
        return request;
      }) as Transport['request'],
    };
  }

  /** Whether the peer said anything during the call: an answer's bytes, or a 102 for its body. */
  heardFromPeer(): boolean {
    return this.acknowledged > 0 || (this.socket !== undefined && this.socket.bytesRead > this.readAtStart);
  }

  /** The call is over: no more checks. */
  stop(): void {
    clearInterval(this.ticker);
  }

  /**
   * The body handed to the socket and the answer read: what the call carried so far. Bytes of 1xx
   * answers are not counted (a peer could pad them without end): each 102 counts as the peer's word
   * that another PROGRESS_BYTES arrived, no more, and never beyond what was sent (moved()).
   */
  private carried(): number {
    return this.sent + (this.socket && this.readAtAnswer !== undefined ? this.socket.bytesRead - this.readAtAnswer : 0);
  }

  /** What counts as progress: what it carried, and what the peer says arrived of what was sent. */
  private moved(): number {
    return this.carried() + Math.min(this.acknowledged * PROGRESS_BYTES, this.sent);
  }

  private check(): void {
    const moved = this.moved();
    const now = performance.now();
    // This process stood still (a loaded machine, a long GC): nothing moved on its side either, and
    // that time is not the peer's to answer for.
    const stalled = Math.max(0, now - this.checkedAt - 2 * this.everyMs);
    this.checkedAt = now;
    this.progressAt += stalled;
    this.startedAt += stalled;
    if (now - this.startedAt > 2 * this.idleMs + this.carried() / MIN_RATE) {
      this.stop();
      this.controller.abort(new Error(`too slow: ${this.carried()} bytes carried in ${Math.round(now - this.startedAt)} ms`));
    } else if (moved - this.movedAtProgress >= PROGRESS_BYTES) {
      this.movedAtProgress = moved;
      this.progressAt = now;
    } else if (now - this.progressAt >= this.idleMs) {
      this.stop();
      this.controller.abort(new Error(`no progress: less than ${PROGRESS_BYTES / 1024} KiB moved in ${this.idleMs} ms`));
    }
  }
}

/** Bodies smaller than this arrive in moments: no acknowledgements for them. */
const ACKNOWLEDGED_BODY = 256 * 1024;
/** How often a receiving node looks at what arrived. */
const ACK_EVERY_MS = 250;

/**
 * The receiving half: while a large body arrives, its sender hears "102 Processing" each time
 * another PROGRESS_BYTES came in (read off the socket, not the body stream, which the body parser
 * owns). Nothing once the answer has begun.
 */
export const acknowledgeArrivals: RequestHandler = (req, res, next) => {
  const length = Number(req.get('content-length'));
  if (!(length >= ACKNOWLEDGED_BODY) || req.httpVersionMajor !== 1 || req.httpVersionMinor < 1) return next();
  const socket = req.socket;
  let acknowledgedAt = socket.bytesRead;
  const watch = setInterval(() => {
    if (res.headersSent || res.writableEnded || socket.destroyed) return clearInterval(watch);
    if (socket.bytesRead - acknowledgedAt < PROGRESS_BYTES) return;
    acknowledgedAt = socket.bytesRead;
    res.writeProcessing();
  }, ACK_EVERY_MS);
  watch.unref();
  res.once('close', () => clearInterval(watch));
  next();
};
