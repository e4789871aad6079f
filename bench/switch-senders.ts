/**
 * The clients of section 2's switch benchmark, in a thread of their own, so that the switch's event loop
 * is measured alone: on a testbed the senders are other machines. `load` hands the thread a round's
 * requests (copied, before the clock starts); `send` posts them, `senders` at a time over kept-alive
 * sockets, and answers `sent` once every one was accepted (or `failed` with the first refusal).
 */
import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

export interface SenderRequest {
  headers: Record<string, string>;
  body: Uint8Array;
}
export type SendersMessage = { op: 'load'; requests: SenderRequest[] } | { op: 'send' };
export type SendersReply = { op: 'loaded' } | { op: 'sent' } | { op: 'failed'; why: string };

const { url, senders } = workerData as { url: string; senders: number };
const agent = new http.Agent({ keepAlive: true, maxSockets: senders });
let loaded: SenderRequest[] = [];

function post({ headers, body }: SenderRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: 'POST', agent, timeout: 120_000, headers: { ...headers, 'Content-Length': body.length } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('error', reject);
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => ((response.statusCode ?? 0) < 300 ? resolve() : reject(new Error(`${response.statusCode}: ${Buffer.concat(chunks).toString()}`))));
    });
    request.on('error', reject);
    request.on('timeout', () => request.destroy(new Error('no answer within 120 s')));
    request.end(body);
  });
}

async function sendAll(): Promise<SendersReply> {
  const queue = [...loaded];
  try {
    await Promise.all(Array.from({ length: senders }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) await post(next);
    }));
    return { op: 'sent' };
  } catch (err) {
    return { op: 'failed', why: (err as Error).message };
  }
}

parentPort!.on('message', (message: SendersMessage) => {
  if (message.op === 'load') {
    loaded = message.requests;
    parentPort!.postMessage({ op: 'loaded' } satisfies SendersReply);
  } else void sendAll().then((reply) => parentPort!.postMessage(reply));
});
