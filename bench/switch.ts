/**
 * 2. Switch throughput: one real switch (the worker app on a loopback socket) takes a round of 24
 * (or `updates`) encrypted 100k-parameter updates sent by 6 senders at once, checks each and adds it; the round
 * ends when its sum reaches a stand-in aggregator. Updates per second = updates / that time. With
 * `quantizeBits`, the updates are quantized (he.quantize), packed several values to a coefficient.
 * The senders run in a thread of their own (bench/switch-senders.ts): the switch's event loop is not theirs.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import express from 'express';
import { parseExperimentConfig, resolveNodeConfigs } from '../src/config/load';
import { testbedConfig } from '../src/config/testbed';
import { Ckks } from '../src/he/ckks';
import { heParams } from '../src/he/keys';
import { HePool } from '../src/he/pool';
import { expectedParameterCount } from '../src/model/size';
import { configProof, CONFIG_PROOF_HEADER, Credentials } from '../src/net/identity';
import { startNode } from '../src/node/start';
import { decode, encode, Kind, WIRE_CONTENT_TYPE } from '../src/wire/codec';
import { log, median } from './common';
import { updateOf } from './micro';
import type { SenderRequest, SendersMessage, SendersReply } from './switch-senders';

const SENDERS = 6;
const MODEL_ID = 4242;
const TOKEN = 'bench-switch-token-0123456789abcdef';

export interface SwitchThroughput {
  updates_per_round: number;
  parameters: number;
  senders: number;
  updates_per_s: number;
  mb_per_s: number;
  /** he.quantize.bits of the updates; absent: CKKS's own encoding. */
  quantize_bits?: number;
  /**
   * The same bodies, from the same senders, taken by a bare Express app that reads each and answers
   * (express.raw, res.json): what the event loop can take at all, the ceiling of a switch here.
   */
  bare_http_updates_per_s?: number;
}

export async function switchThroughput(repeats = 3, quantizeBits?: number, updates = 24): Promise<SwitchThroughput> {
  const port = 41000 + Math.floor(Math.random() * 2000);
  const raw = testbedConfig({ base: '127.0.251', nodes: updates + 2, switches: 1, port }) as Record<string, any>;
  if (quantizeBits) raw.he = { ...raw.he, quantize: { bits: quantizeBits } };
  const nodes = [...resolveNodeConfigs(parseExperimentConfig(raw)).values()];
  const sw = nodes.find((n) => n.type === 'switch')!;
  if (sw.type !== 'switch') throw new Error('unreachable');
  const parameters = expectedParameterCount(sw.settings.model);

  // The stand-in aggregator: it notes when the switch's sum arrives, and how many updates it holds.
  let sumArrived: (() => void) | undefined;
  let summed = 0;
  const aggregator = http.createServer(
    express()
      .use(express.raw({ type: WIRE_CONTENT_TYPE, limit: '1gb' }))
      .post('/a/receive', (req, res) => ((summed = decode(req.body).contributors), res.json({ status: 'accepted' }), sumArrived?.())),
  );
  const [aggHost, aggPort] = sw.aggregator.split(':');
  await new Promise<void>((resolve) => aggregator.listen(Number(aggPort), aggHost, resolve));
  const [host, swPort] = sw.address.split(':');
  const node = await startNode({ host, port: Number(swPort), credentials: Credentials.fromSecret(TOKEN), logsDir: mkdtempSync(join(tmpdir(), 'fl-bench-switch-')), console: false, logLevel: 'warn' });
  const client = axios.create({ baseURL: `http://${sw.address}`, maxBodyLength: Infinity, proxy: false });
  /** Each call as the node that makes it: the aggregator opens the round, each client sends its own update. */
  const as = (address: string) => Credentials.fromSecret(TOKEN, address).headers();
  const params = heParams(sw.settings.he);
  const pool = await HePool.start(params, { publicKey: (await Ckks.generateKeys(params)).publicKey });
  const senders = sendersThread(`http://${sw.address}/s/receive`);
  try {
    await client.post('/config', sw, { headers: { ...as(sw.aggregator), [CONFIG_PROOF_HEADER]: configProof(TOKEN, sw.address) } });
    const ciphertexts = await pool.encrypt(updateOf(parameters), 1 / updates);
    const times: number[] = [];
    let bytes = 0;
    for (let r = 1; r <= repeats + 1; r++) {
      const attempt = `bench:${r}.0`;
      const clients = Object.keys(sw.tree);
      const bodies = clients.map((sender) => ({
        sender,
        body: encode({ kind: Kind.EncryptedUpdate, round: r, modelId: MODEL_ID, contributors: 1, weight: 100, sender, meta: { he: pool.id, attempt }, parameters: new Float32Array(0), ciphertexts, count: parameters }),
      }));
      bytes = bodies[0].body.length;
      const weights = Object.fromEntries(clients.map((c) => [c, 100]));
      await client.post('/s/round', { round: r, attempt, clients, weights, samples: 100 * clients.length, deadline_ms: 120_000, parameters, model_id: MODEL_ID }, { headers: as(sw.aggregator) });
      await senders.ask({ op: 'load', requests: bodies.map(({ sender, body }) => ({ headers: { 'Content-Type': WIRE_CONTENT_TYPE, ...as(sender) }, body }) satisfies SenderRequest) });
      const arrived = new Promise<void>((resolve) => (sumArrived = resolve));
      const start = performance.now();
      const reply = await senders.ask({ op: 'send' });
      if (reply.op === 'failed') throw new Error(`round ${r}: the switch refused an update: ${reply.why}`);
      await withDeadline(arrived, 120_000, `round ${r}: the switch's sum did not arrive`);
      if (summed !== bodies.length) throw new Error(`round ${r}: the switch's sum holds ${summed} updates, not the ${bodies.length} sent`);
      if (r > 1) times.push(performance.now() - start); // the first round starts the switch's HE threads
      log(`  switch: round ${r}, ${updates} updates in ${((performance.now() - start) / 1000).toFixed(2)} s`);
    }
    const seconds = median(times) / 1000;
    const bare = await bareHttpThroughput(repeats, updates, bytes);
    return { updates_per_round: summed, parameters, senders: SENDERS, updates_per_s: updates / seconds, mb_per_s: (updates * bytes) / 1e6 / seconds, ...(quantizeBits ? { quantize_bits: quantizeBits } : {}), bare_http_updates_per_s: bare };
  } finally {
    await senders.close();
    await pool.close();
    await node.close();
    aggregator.close();
  }
}

/** Updates per second a bare Express app takes `updates` bodies of `bytes` at, sent as to the switch (median of `repeats` rounds after one to warm up). */
async function bareHttpThroughput(repeats: number, updates: number, bytes: number): Promise<number> {
  const server = http.createServer(express().post('/r', express.raw({ type: () => true, limit: '1gb' }), (req, res) => res.json({ status: 'accepted', bytes: (req.body as Buffer).length })));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const senders = sendersThread(`http://127.0.0.1:${(server.address() as AddressInfo).port}/r`);
  try {
    const body = Buffer.alloc(bytes, 1);
    await senders.ask({ op: 'load', requests: Array.from({ length: updates }, () => ({ headers: { 'Content-Type': WIRE_CONTENT_TYPE }, body })) });
    const times: number[] = [];
    for (let r = 0; r <= repeats; r++) {
      const start = performance.now();
      const reply = await senders.ask({ op: 'send' });
      if (reply.op === 'failed') throw new Error(`bare HTTP: ${reply.why}`);
      if (r > 0) times.push(performance.now() - start);
    }
    return updates / (median(times) / 1000);
  } finally {
    await senders.close();
    server.close();
  }
}

/** `promise`, or a rejection naming `what` after `ms`: a bench that fails says so rather than hang. */
function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The thread that sends the updates (bench/switch-senders.ts), one question and its answer at a time. */
function sendersThread(url: string) {
  const worker = new Worker(join(__dirname, 'switch-senders.js'), { workerData: { url, senders: SENDERS } });
  // Its death fails the question being asked (once rejects on 'error'), not the process.
  const exited = once(worker, 'exit').then(([code]) => Promise.reject(new Error(`the senders' thread exited (${code})`)));
  exited.catch(() => undefined);
  worker.on('error', () => undefined);
  return {
    async ask(message: SendersMessage): Promise<SendersReply> {
      const answered = once(worker, 'message') as Promise<[SendersReply]>;
      worker.postMessage(message);
      return (await withDeadline(Promise.race([answered, exited]), 300_000, `the senders' thread did not answer ${message.op}`))[0];
    },
    close: () => worker.terminate(),
  };
}
