/**
 * A wire message's body, read into one buffer of the length its request declares (Content-Length).
 * body-parser's raw reader gathers the chunks and joins them at the end: for a moment it holds the
 * body twice, and a switch takes several updates the size of the model at once (a 10M-parameter
 * float32 update is 45 MB). A body that declares no length is gathered and joined, as before.
 * The buffer is allocated, not filled: a length declared and not sent costs no resident memory.
 */
import type { RequestHandler } from 'express';
import { HttpError, tooLarge } from './errors';

export function rawBody(limit: number): RequestHandler {
  return (req, _res, next) => {
    const declared = req.get('content-length');
    const length = declared === undefined ? undefined : Number(declared);
    if (length !== undefined && !(Number.isSafeInteger(length) && length >= 0)) return next(new HttpError(400, 'bad request', `Content-Length ${String(declared).slice(0, 30)} is not a number of bytes`));
    if (length !== undefined && length > limit) return next(tooLarge(length, limit));
    // Its own memory (not Node's shared pool): a message's arrays are views of it, aligned as the codec laid them out.
    const body = length === undefined ? undefined : Buffer.allocUnsafeSlow(length);
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    const settle = (err?: HttpError) => {
      if (settled) return;
      settled = true;
      req.off('data', onData).off('end', onEnd).off('close', onClose);
      if (err) {
        // Read no more of it: the refusal goes out, and Node discards the rest.
        req.pause();
        return next(err);
      }
      req.body = body ?? Buffer.concat(chunks, received);
      next();
    };
    const onData = (chunk: Buffer) => {
      if (received + chunk.length > (length ?? limit)) {
        return settle(length === undefined ? tooLarge(received + chunk.length, limit) : new HttpError(400, 'bad request', `the body is longer than its Content-Length of ${length} bytes`));
      }
      if (body) chunk.copy(body, received);
      else chunks.push(chunk);
      received += chunk.length;
    };
    const onEnd = () => settle(length !== undefined && received !== length ? new HttpError(400, 'bad request', `the body ended after ${received} of the ${length} bytes its Content-Length says`) : undefined);
    const onClose = () => settle(new HttpError(400, 'aborted', 'the request was aborted before its body arrived'));
    req.on('data', onData).on('end', onEnd).on('close', onClose);
  };
}
