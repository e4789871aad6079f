/** Reading a wire body: into one buffer of its declared length, refusals worded as the nodes word them. */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { HttpError, jsonErrorHandler } from '../../../src/net/errors';
import { rawBody } from '../../../src/net/raw-body';

const LIMIT = 1_000_000;

describe('a wire body', () => {
  let server: http.Server;
  let port = 0;
  /** What the route was handed, or the refusal the error handler saw: each request resolves one. */
  let seen: (outcome: { body?: Buffer; refusal?: HttpError }) => void = () => undefined;
  const next = () => new Promise<{ body?: Buffer; refusal?: HttpError }>((resolve) => (seen = resolve));
  /** The route has a request (its headers): called before its body is read. */
  let arrived: () => void = () => undefined;

  before(async () => {
    const app = express();
    app.post('/', (_req, _res, nextHandler) => (arrived(), nextHandler()), rawBody(LIMIT), (req, res) => {
      seen({ body: req.body as Buffer });
      res.json({ bytes: (req.body as Buffer).length });
    });
    const toJson = jsonErrorHandler(() => undefined);
    app.use(((err, req, res, nextHandler) => {
      seen({ refusal: err });
      toJson(err, req, res, nextHandler);
    }) as express.ErrorRequestHandler);
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  /**
   * POSTs `chunks` one by one (with `length` declared, or chunked without it): the status, the JSON
   * answer and its Connection header. `end: false` leaves the request open: the answer came before
   * the body was all read.
   */
  const post = (chunks: Buffer[], length?: number, { end = true } = {}) =>
    new Promise<{ status: number; body: Record<string, unknown>; connection?: string }>((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/octet-stream', ...(length === undefined ? {} : { 'Content-Length': length }) };
      let answered = false;
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d)).on('end', () => {
          answered = true;
          resolve({ status: res.statusCode!, body: JSON.parse(text), connection: res.headers.connection });
          req.destroy();
        });
      });
      // Once answered, a request still open may see the server close the connection: no failure.
      req.on('error', (err) => answered || reject(err));
      for (const chunk of chunks) req.write(chunk);
      if (end) req.end();
    });

  const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

  it('reads a body of its declared length into one buffer of that length, not chunks joined at the end', async () => {
    const parts = [bytes(70_000, 1), bytes(90_000, 2), bytes(5, 3)];
    const whole = Buffer.concat(parts);
    const concat = Buffer.concat;
    let joins = 0;
    Buffer.concat = ((...args: Parameters<typeof Buffer.concat>) => (joins++, concat(...args))) as typeof Buffer.concat;
    try {
      const outcome = next();
      const answer = await post(parts, whole.length);
      assert.deepEqual(answer, { status: 200, body: { bytes: whole.length }, connection: 'keep-alive' });
      const { body } = await outcome;
      assert.ok(body!.equals(whole));
      // Its own memory, from its first byte: the codec's float arrays are views of it, aligned as it laid them out.
      assert.equal(body!.byteOffset, 0);
      assert.equal(body!.buffer.byteLength, whole.length);
      assert.equal(joins, 0, 'the body was gathered and joined');
    } finally {
      Buffer.concat = concat;
    }
  });

  it('gives a small body a buffer of its own too (a join would slice Node\'s shared 8 KB pool), and an empty one an empty buffer', async () => {
    const small = bytes(100, 10);
    let outcome = next();
    assert.deepEqual(await post([small], small.length), { status: 200, body: { bytes: 100 }, connection: 'keep-alive' });
    const { body } = await outcome;
    assert.ok(body!.equals(small));
    assert.equal(body!.buffer.byteLength, 100);
    outcome = next();
    assert.deepEqual(await post([], 0), { status: 200, body: { bytes: 0 }, connection: 'keep-alive' });
    assert.equal((await outcome).body!.length, 0);
  });

  it('gathers a body that declares no length (chunked), up to the limit', async () => {
    const parts = [bytes(1000, 4), bytes(3000, 5)];
    const outcome = next();
    assert.deepEqual(await post(parts), { status: 200, body: { bytes: 4000 }, connection: 'keep-alive' });
    assert.ok((await outcome).body!.equals(Buffer.concat(parts)));
  });

  it('refuses a declared length beyond the limit (413) before its body comes, and the route never sees it', async () => {
    const outcome = next();
    // The request stays open with 10 of its bytes sent: the answer cannot have waited for the rest.
    const answer = await post([bytes(10, 6)], LIMIT + 1, { end: false });
    assert.deepEqual({ status: answer.status, body: answer.body }, { status: 413, body: { error: 'body too large', reason: `the body is ${LIMIT + 1} bytes; this route takes at most ${LIMIT}` } });
    assert.equal((await outcome).refusal?.status, 413);
  });

  it('refuses a chunked body once it grows beyond the limit (413), and closes the connection rather than read the rest', async () => {
    const outcome = next();
    const answer = await post([bytes(LIMIT - 10, 7), bytes(100, 8)], undefined, { end: false });
    assert.equal(answer.status, 413, JSON.stringify(answer));
    assert.match(String(answer.body.reason), new RegExp(`this route takes at most ${LIMIT}$`));
    assert.equal(answer.connection, 'close');
    assert.equal((await outcome).body, undefined);
  });

  it('says "aborted" when the sender goes away mid-body, and the route never sees a body', async () => {
    const outcome = next();
    const reading = new Promise<void>((resolve) => (arrived = resolve));
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': 100_000 } });
    req.on('error', () => undefined);
    req.write(bytes(10_000, 9));
    // Gone once the route has the request: the rest of the declared length never comes.
    await reading;
    req.destroy();
    const { body, refusal } = await outcome;
    assert.equal(body, undefined);
    assert.equal(refusal?.kind, 'aborted');
  });
});
