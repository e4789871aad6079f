/**
 * 2, continued. What reading bodies costs a node in memory: a server (a process of its own) takes 4
 * bodies the size of a 10M-parameter float32 update at once, twice, read by body-parser's raw reader
 * (chunks gathered, then joined) or by ours (src/net/raw-body.ts: one buffer of the declared
 * length). Its peak resident memory (VmHWM) over what it held before the first byte.
 *   node dist/bench/body-memory.js serve raw|ours    the server alone (the bench starts it)
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import express from 'express';
import { rawBody } from '../src/net/raw-body';
import { memoryMb } from '../test/helpers/proc-status';
import { log, median } from './common';

/** A 10M-parameter model's float32 update (ResNet-style, section 15). */
const BODY_BYTES = 45_000_000;
const AT_ONCE = 4;

export interface BodyMemory {
  body_mb: number;
  at_once: number;
  /** Peak resident memory over the start, MB, median of the runs. */
  express_raw_mb: number;
  ours_mb: number;
}

type Reader = 'raw' | 'ours';

/** The server: reads each body with `reader`, answers its last byte; prints its port. */
function serve(reader: Reader): void {
  const app = express();
  const parser = reader === 'raw' ? express.raw({ type: '*/*', limit: 2 * BODY_BYTES }) : rawBody(2 * BODY_BYTES);
  app.post('/', parser, (req, res) => res.json({ last: (req.body as Buffer)[(req.body as Buffer).length - 1] }));
  const server = app.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: (server.address() as { port: number }).port })));
}

async function peakOver(reader: Reader, payload: Buffer): Promise<number> {
  const child = spawn(process.execPath, [__filename, 'serve', reader], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    const { port } = JSON.parse(line.toString()) as { port: number };
    const before = memoryMb(child.pid!, 'VmRSS')!;
    const post = () =>
      new Promise<void>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': payload.length } }, (res) => res.resume().on('end', resolve));
        req.on('error', reject);
        req.end(payload);
      });
    for (let round = 0; round < 2; round++) await Promise.all(Array.from({ length: AT_ONCE }, post));
    return memoryMb(child.pid!, 'VmHWM')! - before;
  } finally {
    child.kill();
  }
}

export async function bodyMemory(repeats: number): Promise<BodyMemory> {
  log(`  ${AT_ONCE} bodies of ${BODY_BYTES / 1e6} MB at once: body-parser's raw reader, then ours`);
  const payload = Buffer.alloc(BODY_BYTES, 7);
  const peaks: Record<Reader, number[]> = { raw: [], ours: [] };
  // In turn: the machine's state drifts between minutes.
  for (let r = 0; r < repeats; r++) for (const reader of ['raw', 'ours'] as const) peaks[reader].push(await peakOver(reader, payload));
  return { body_mb: BODY_BYTES / 1e6, at_once: AT_ONCE, express_raw_mb: Math.round(median(peaks.raw)), ours_mb: Math.round(median(peaks.ours)) };
}

if (require.main === module && process.argv[2] === 'serve') serve(process.argv[3] === 'raw' ? 'raw' : 'ours');
