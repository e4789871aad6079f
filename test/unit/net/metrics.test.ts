/**
 * GET /metrics on a node in this process, read back with a Prometheus text parser: who may scrape,
 * that scrapes are not experiment traffic, and the HE queue as a task runs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { heSchema } from '../../../src/config/schema';
import { Ckks } from '../../../src/he/ckks';
import { heParams } from '../../../src/he/keys';
import { HePool } from '../../../src/he/pool';
import { createNodeMetrics } from '../../../src/net/metrics';
import { createWorkerApp, listen } from '../../../src/node/worker';
import { get } from '../../helpers/cluster';
import { nodeContext, TOKEN } from '../../helpers/node-context';
import { families, scrape, SCRAPE_TOKEN, valueOf } from '../../helpers/prometheus';

describe('GET /metrics on a node', () => {
  let address: string;
  let close: () => Promise<void>;
  const context = nodeContext('scraped');
  context.metrics = createNodeMetrics({ meter: context.meter, scrapeToken: SCRAPE_TOKEN });

  before(async () => {
    const running = await listen(createWorkerApp(context), context, '127.0.0.1', 0);
    address = `127.0.0.1:${running.address.port}`;
    close = running.close;
  });
  after(() => close());

  it('answers the cluster token and the scrape token; refuses others with 401 JSON like any route', async () => {
    for (const token of [undefined, 'x'.repeat(40)]) {
      const refused = await scrape(address, token);
      assert.equal(refused.status, 401);
      assert.match(refused.contentType ?? '', /application\/json/);
      assert.equal(JSON.parse(refused.text).error, 'unauthorized');
    }
    for (const token of [TOKEN, SCRAPE_TOKEN]) {
      const answer = await scrape(address, token);
      assert.equal(answer.status, 200);
      assert.match(answer.contentType ?? '', /^text\/plain; version=0\.0\.4/);
    }
  });

  it('opens nothing else to the scrape token', async () => {
    assert.equal((await get(address, '/config', SCRAPE_TOKEN)).status, 401);
    assert.equal((await get(address, '/config', TOKEN)).status, 404, 'the cluster token gets past the gate (no config yet)');
  });

  it("shows the process' memory, and leaves its own traffic out of the byte counts", async () => {
    const scraped = await families(address);
    assert.ok(valueOf(scraped, 'process_resident_memory_bytes')! > 0);
    assert.ok(valueOf(scraped, 'nodejs_heap_size_used_bytes')! > 0);
    assert.deepEqual(context.meter.totals(), { received: 0, sent: 0 }, 'scrapes are monitoring');
    assert.deepEqual(scraped.get('fl_peer_received_bytes_total')?.metrics, []);
  });

  it('shows the HE tasks a pool has in flight, and none once they are answered', async () => {
    const params = heParams(heSchema.parse({ enabled: true }));
    const pool = await HePool.start(params, { publicKey: (await Ckks.generateKeys(params)).publicKey }, 1);
    const metrics = createNodeMetrics({ meter: context.meter });
    metrics.readRoleFrom(() => ({ heQueueDepth: () => pool.queued, peerHealth: () => new Map() }));
    const depth = async () => Number(/^fl_he_queue_depth (\d+)$/m.exec(await metrics.registry.metrics())![1]);
    try {
      const encrypted = pool.encrypt(new Float32Array(10));
      assert.equal(await depth(), 1);
      await encrypted;
      assert.equal(await depth(), 0);
    } finally {
      await pool.close();
    }
  });
});

