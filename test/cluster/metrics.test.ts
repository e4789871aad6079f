/** GET /metrics on a real loopback run, scraped while rounds go on, with a client killed in it. */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import parsePrometheus, { type MetricFamily } from 'parse-prometheus-text-format';
import type { RoundMetrics } from '../../src/outputs';
import { get, Testbed, waitFor, type LaunchedAggregator } from '../helpers/cluster';
import { families, scrape, SCRAPE_TOKEN, valueOf } from '../helpers/prometheus';


/**
 * Observations of a labelled histogram, by label set: the parser flattens a histogram's labels away,
 * so its _count samples are parsed as a family of their own.
 */
function histogramCounts(text: string, name: string): { labels: Record<string, string>; count: number }[] {
  const lines = text.split('\n').filter((line) => line.startsWith(`${name}_count{`));
  const [family] = parsePrometheus(lines.join('\n') + '\n');
  return (family?.metrics ?? []).map((m) => ({ labels: m.labels ?? {}, count: Number(m.value) }));
}

// Enough rounds that the scrapes and the kill land while the run goes on, on a loaded machine too.
const ROUNDS = 8;
const EXPERIMENT = 'metrics';

describe('GET /metrics during a real run on loopback', () => {
  // Clients .1 and .2 under the switch .4, client .3 straight to the aggregator .5.
  const testbed = new Testbed({ nodes: 5, switches: 1, rounds: ROUNDS, he: false, trainSize: 'all' }, (config: Record<string, any>) => {
    config.experiment = EXPERIMENT;
    config.model = { architecture: 'mlp', hidden_units: 16 };
    // A killed client refuses connections: it is down at the next heartbeat; no deadline is waited out.
    config.timeouts = { push_ms: 30_000, request_ms: 10_000, round_ms: 300_000, heartbeat_ms: 300 };
    delete config.others[Object.keys(config.others)[2]].switch;
  });
  const [aggregator] = testbed.addresses('aggregator');
  const [switchA] = testbed.addresses('switch');
  const [underSwitch, victim, direct] = testbed.addresses('client');
  const workers = [underSwitch, victim, direct, switchA];
  const tokenFile = join(testbed.dir, 'metrics-token');
  const status = async () => (await get(aggregator, '/a/status', testbed.token)).body;
  let agg: LaunchedAggregator;
  /** Scrapes of the aggregator and two workers once a round is done, while the next runs. */
  const midRun = { roundsBefore: 0, roundsAfter: 0, aggregator: new Map<string, MetricFamily>(), client: new Map<string, MetricFamily>(), clientText: '', direct: new Map<string, MetricFamily>(), switch: new Map<string, MetricFamily>() };
  let afterKill = new Map<string, MetricFamily>();
  let atEnd: { text: string; scraped: Map<string, MetricFamily> };

  before(async () => {
    writeFileSync(tokenFile, SCRAPE_TOKEN + '\n', { mode: 0o600 });
    const up = await testbed.up({ FL_METRICS_TOKEN_FILE: tokenFile });
    assert.equal(up.code, 0, up.stdout + up.stderr);
    agg = testbed.launchAggregator(['--metrics-token-file', tokenFile, '--keep-serving', '--log-level', 'warn']);
    const failed = (err: Error) => new Error(`${err.message}\n${agg.output}`);

    await waitFor(async () => ((await status().catch(() => undefined))?.rounds_done ?? 0) >= 1, 60_000).catch((err) => {
      throw failed(err);
    });
    midRun.roundsBefore = (await status()).rounds_done;
    midRun.aggregator = await families(aggregator);
    midRun.roundsAfter = (await status()).rounds_done;
    midRun.clientText = (await scrape(underSwitch, SCRAPE_TOKEN)).text;
    midRun.client = new Map(parsePrometheus(midRun.clientText).map((f) => [f.name, f]));
    midRun.direct = await families(direct);
    midRun.switch = await families(switchA);

    testbed.kill(victim);
    await waitFor(async () => valueOf((afterKill = await families(aggregator)), 'fl_peer_health', { peer: victim, state: 'down' }) === 1, 30_000).catch((err) => {
      throw failed(err);
    });

    await waitFor(async () => /still serving the dashboard/.test(agg.output), 120_000).catch((err) => {
      throw failed(err);
    });
    const answer = await scrape(aggregator, SCRAPE_TOKEN);
    atEnd = { text: answer.text, scraped: await families(aggregator) };
  }, { timeout: 240_000 });
  after(() => testbed.down());

  it('counts the rounds the aggregator reported, while they run and at the end', () => {
    const counted = valueOf(midRun.aggregator, 'fl_rounds_total', { role: 'aggregator' })!;
    assert.ok(counted >= midRun.roundsBefore && counted <= midRun.roundsAfter, `${counted} counted; /a/status said ${midRun.roundsBefore}, then ${midRun.roundsAfter}`);
    assert.ok(counted < ROUNDS, 'scraped during the run');
    const saved: RoundMetrics[] = JSON.parse(readFileSync(join(testbed.outputs, EXPERIMENT, 'metrics.json'), 'utf8')).rounds;
    assert.equal(saved.length, ROUNDS);
    assert.equal(valueOf(atEnd.scraped, 'fl_rounds_total', { role: 'aggregator' }), ROUNDS);
  });

  it("times each of the aggregator's round phases", () => {
    assert.equal(atEnd.scraped.get('fl_round_phase_seconds')?.type, 'HISTOGRAM');
    const counts = new Map(histogramCounts(atEnd.text, 'fl_round_phase_seconds').map((h) => [h.labels.phase, h]));
    for (const phase of ['round', 'selection', 'training', 'aggregation', 'evaluation']) {
      assert.deepEqual(counts.get(phase), { labels: { role: 'aggregator', phase }, count: ROUNDS }, phase);
    }
  });

  it('names the workers the aggregator sent to, with bytes both ways', () => {
    for (const peer of [switchA, direct]) {
      assert.ok(valueOf(midRun.aggregator, 'fl_peer_sent_bytes_total', { peer })! > 0, `sent to ${peer}`);
      assert.ok(valueOf(midRun.aggregator, 'fl_peer_received_bytes_total', { peer })! > 0, `received from ${peer}`);
    }
  });

  it('names the switch and the aggregator on a client, and the clients on the switch', () => {
    for (const peer of [switchA, aggregator]) assert.ok(valueOf(midRun.client, 'fl_peer_sent_bytes_total', { peer })! > 0, `${underSwitch} sent to ${peer}`);
    assert.ok(valueOf(midRun.direct, 'fl_peer_sent_bytes_total', { peer: aggregator })! > 0, `${direct} sent to the aggregator`);
    assert.equal(valueOf(midRun.direct, 'fl_peer_sent_bytes_total', { peer: switchA }), undefined, 'the direct client never calls the switch');
    for (const peer of [underSwitch, victim, aggregator]) assert.ok(valueOf(midRun.switch, 'fl_peer_sent_bytes_total', { peer })! > 0, `the switch sent to ${peer}`);
    // Calls leave from the caller's own address: what the switch took from its client is named by that client's IP.
    const host = underSwitch.split(':')[0];
    assert.ok(valueOf(midRun.switch, 'fl_peer_received_bytes_total', { peer: host })! > 0, `the switch received from ${host}`);
    assert.equal(valueOf(midRun.switch, 'fl_peer_received_bytes_total', { peer: '127.0.0.1' }), undefined, 'nothing came from an address no node has');
  });

  it("counts a client's rounds and times its training", () => {
    const rounds = valueOf(midRun.client, 'fl_rounds_total', { role: 'client' })!;
    assert.ok(rounds >= 1, `${rounds} rounds`);
    const train = histogramCounts(midRun.clientText, 'fl_round_phase_seconds').find((h) => h.labels.phase === 'train');
    assert.deepEqual(train, { labels: { role: 'client', phase: 'train' }, count: rounds });
  });

  it('shows RSS and heap on every node, and an empty HE queue with HE off', () => {
    for (const scraped of [midRun.aggregator, midRun.client, midRun.switch]) {
      assert.ok(valueOf(scraped, 'process_resident_memory_bytes')! > 0);
      assert.ok(valueOf(scraped, 'nodejs_heap_size_used_bytes')! > 0);
      assert.equal(valueOf(scraped, 'fl_he_queue_depth'), 0);
    }
  });

  it('shows every worker up on the aggregator, and the killed client down once the health checks miss it', () => {
    for (const peer of workers) {
      assert.equal(valueOf(midRun.aggregator, 'fl_peer_health', { peer, state: 'up' }), 1, peer);
      assert.equal(valueOf(midRun.aggregator, 'fl_peer_health', { peer, state: 'down' }), 0, peer);
    }
    assert.equal(valueOf(afterKill, 'fl_peer_health', { peer: victim, state: 'up' }), 0);
    assert.equal(valueOf(afterKill, 'fl_peer_health', { peer: direct, state: 'up' }), 1);
  });

  it('keeps the scrape token out of everything but /metrics, over the network too', async () => {
    assert.equal((await scrape(aggregator)).status, 401);
    assert.equal((await get(aggregator, '/a/status', SCRAPE_TOKEN)).status, 401);
    assert.equal((await scrape(underSwitch, testbed.token)).status, 200, 'the cluster token scrapes too');
  });
});
