/** Whether a node answers GET /health: what launchers wait on. Under TLS the server is checked against the testbed's CA (/health asks no client certificate). */
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
