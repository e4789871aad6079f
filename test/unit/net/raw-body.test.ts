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

  /** POSTs `chunks` one by one (with `length` declared, or chunked without it); the status and JSON answer. */
  const post = (chunks: Buffer[], length?: number) =>
    new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/octet-stream', ...(length === undefined ? {} : { 'Content-Length': length }) };
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d)).on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      for (const chunk of chunks) req.write(chunk);
      req.end();
    });

  const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

  it('reads a body of its declared length into a buffer of that length made at once, not chunks joined at the end', async () => {
    const parts = [bytes(70_000, 1), bytes(90_000, 2), bytes(5, 3)];
    const whole = Buffer.concat(parts);
    const concat = Buffer.concat;
    let joins = 0;
    Buffer.concat = ((...args: Parameters<typeof Buffer.concat>) => (joins++, concat(...args))) as typeof Buffer.concat;
    try {
      const outcome = next();
      const answer = await post(parts, whole.length);
      assert.deepEqual(answer, { status: 200, body: { bytes: whole.length } });
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

  it('gathers a body that declares no length (chunked), up to the limit', async () => {
    const parts = [bytes(1000, 4), bytes(3000, 5)];
    const outcome = next();
    assert.deepEqual(await post(parts), { status: 200, body: { bytes: 4000 } });
    assert.ok((await outcome).body!.equals(Buffer.concat(parts)));
  });

  it('refuses a declared length beyond the limit (413) before reading it, and the route never sees it', async () => {
    const outcome = next();
    const answer = await post([bytes(LIMIT + 1, 6)], LIMIT + 1);
    assert.deepEqual(answer, { status: 413, body: { error: 'body too large', reason: `the body is ${LIMIT + 1} bytes; this route takes at most ${LIMIT}` } });
    assert.equal((await outcome).refusal?.status, 413);
  });

  it('refuses a chunked body once it grows beyond the limit (413)', async () => {
    const outcome = next();
    const answer = await post([bytes(LIMIT - 10, 7), bytes(100, 8)]);
    assert.equal(answer.status, 413, JSON.stringify(answer));
    assert.match(String(answer.body.reason), new RegExp(`this route takes at most ${LIMIT}$`));
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
