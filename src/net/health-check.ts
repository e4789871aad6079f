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

/** GET a public route's JSON (the dashboard's state), checked against the testbed's CA under TLS; undefined when it does not answer. */
export function fetchPublicJson(address: string, path: string, timeoutMs: number, ca?: Buffer): Promise<unknown> {
  return new Promise((resolve) => {
    const url = `${baseUrl(address, Boolean(ca))}${path}`;
    const request = ca ? https.get(url, { ca, timeout: timeoutMs }) : http.get(url, { timeout: timeoutMs });
    request.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? JSON.parse(body) : undefined);
        } catch {
          resolve(undefined);
        }
      });
      res.on('error', () => resolve(undefined));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(undefined));
  });
}
