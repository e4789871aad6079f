/**
 * A wire message's body, read into one buffer of the length its request declares (Content-Length).
 * body-parser's raw reader gathers the chunks and joins them at the end: for a moment it holds the
 * body twice, and a switch takes several updates the size of the model at once (a 10M-parameter
 * float32 update is 45 MB). A body that declares no length is gathered and joined, as before.
 * The buffer is made when the first bytes arrive, and allocated, not filled: a length declared and
 * not sent costs nothing, and one sent slowly only what has come.
 */
import { constants } from 'node:buffer';
import type { Request, RequestHandler, Response } from 'express';
import { aborted, badRequest, HttpError, tooLarge } from './errors';

export function rawBody(routeLimit: number): RequestHandler {
  // Beyond it no Buffer can hold the body (4 GiB on Node 20): such a body is too large, not a failure.
  const limit = Math.min(routeLimit, constants.MAX_LENGTH);
  return (req, res, next) => {
    const declared = req.get('content-length');
    const length = declared === undefined ? undefined : Number(declared);
    // Node's parser refuses a malformed Content-Length itself; a number past 2^53 gets here.
    if (length !== undefined && !Number.isSafeInteger(length)) return next(badRequest(`Content-Length ${String(declared).slice(0, 30)} is not a number of bytes`));
    if (length !== undefined && length > limit) return next(tooLarge(length, limit));
    let body: Buffer | undefined;
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    const settle = (err?: HttpError) => {
      if (settled) return;
      settled = true;
      req.off('data', onData).off('end', onEnd).off('close', onClose);
      if (err) return refuse(req, res, err, next);
      try {
        req.body = body ?? Buffer.concat(chunks, received);
      } catch (failure) {
        return next(outOfMemory(received, failure));
      }
      next();
    };
    const onData = (chunk: Buffer) => {
      if (length === undefined) {
        if (received + chunk.length > limit) return settle(tooLarge(received + chunk.length, limit));
        chunks.push(chunk);
      } else {
        try {
          // Its own memory (not Node's shared pool): a message's arrays are views of it, aligned as the codec laid them out.
          body ??= Buffer.allocUnsafeSlow(length);
        } catch (failure) {
          return settle(outOfMemory(length, failure));
        }
        // Node's parser hands over no more than the declared length: the rest of the socket is the next request.
        chunk.copy(body, received);
      }
      received += chunk.length;
    };
    // A body that ends short of its declared length ends in 'close' (aborted), never in 'end'.
    const onEnd = () => settle();
    const onClose = () => settle(aborted());
    req.on('data', onData).on('end', onEnd).on('close', onClose);
  };
}

/**
 * A refusal with the body part read: the rest is not read (body-parser read it all first, for as
 * long as the sender took), and Node reads no more of a request whose body a reader began, so the
 * connection closes after the answer rather than sit paused until keep-alive gives up on it.
 */
function refuse(req: Request, res: Response, err: HttpError, next: (err: unknown) => void): void {
  if (!req.complete) {
    req.pause();
    res.set('Connection', 'close');
  }
  next(err);
}

const outOfMemory = (bytes: number, failure: unknown) => new HttpError(503, 'not ready', `no memory for a body of ${bytes} bytes now: ${(failure as Error).message}`);
