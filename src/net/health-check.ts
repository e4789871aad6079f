/** Whether a node answers GET /health: what launchers wait on; and a public route's JSON. Under TLS the server is checked against the testbed's CA (neither asks a client certificate). */
import http from 'node:http';
import https from 'node:https';
import { baseUrl } from '../config/address';

export function answersHealth(address: string, timeoutMs: number, ca?: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const url = `${baseUrl(address, Boolean(ca))}/health`;
    const request = ca ? https.get(url, { ca, timeout: timeoutMs }) : http.get(url, { timeout: timeoutMs });
    request.on('response', (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}

/** The most a public route's answer may hold: the schedule reads a line of state, not a page. */
const MAX_PUBLIC_BODY = 64 * 1024;

/** GET a public route's JSON (the round the aggregator is in), checked against the testbed's CA under TLS; undefined when it does not answer, whole and in time. */
export function fetchPublicJson(address: string, path: string, timeoutMs: number, ca?: Buffer): Promise<unknown> {
  return new Promise((resolve) => {
    const url = `${baseUrl(address, Boolean(ca))}${path}`;
    const request = ca ? https.get(url, { ca, timeout: timeoutMs }) : http.get(url, { timeout: timeoutMs });
    // The whole answer within the time, not only each packet: a server dribbling bytes is given up on.
    const deadline = setTimeout(() => request.destroy(), timeoutMs);
    const done = (value: unknown) => {
      clearTimeout(deadline);
      resolve(value);
    };
    request.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > MAX_PUBLIC_BODY) request.destroy();
      });
      res.on('end', () => {
        try {
          done(res.statusCode === 200 ? JSON.parse(body) : undefined);
        } catch {
          done(undefined);
        }
      });
      res.on('error', () => done(undefined));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => done(undefined));
    request.on('close', () => done(undefined)); // destroyed before an answer: none
  });
}
