/** The report: one offline HTML file, and a PNG of each chart. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseExperimentConfig } from '../../../src/config/load';
import { testbedConfig } from '../../../src/config/testbed';
import type { RoundMetrics } from '../../../src/outputs';
import { writeReport } from '../../../src/report/report';
import { tempDir } from '../../helpers/temp-dir';

const WORKERS = new Map<string, 'client' | 'switch'>([['127.0.9.1:5000', 'client'], ['127.0.9.3:5000', 'switch']]);
const tmp = () => tempDir('fl-observe-');

const rows: RoundMetrics[] = [1, 2, 3].map((round) => ({
  round, accuracy: 0.8 + round / 100, loss: 1 / round, clients: 2, samples: 200, round_ms: 1000, selection_ms: 10, training_ms: 700, waiting_ms: 100,
  aggregation_ms: 40 + round, evaluation_ms: 30, bytes_up: 5e6, bytes_down: 4e6, retries: 0, missing: [],
}));

describe('the report', () => {
  it('writes one offline HTML file with the charts inline, and a PNG of each chart', async () => {
    const dir = tmp();
    const settings = parseExperimentConfig(testbedConfig({ base: '127.0.9', nodes: 4, switches: 1 }));
    const { html, pngs } = await writeReport(dir, {
      experiment: 'exp', aggregator: '127.0.9.4:5000', settings, workers: WORKERS, rows, records: [],
    });
    const page = readFileSync(html, 'utf8');
    assert.equal((page.match(/<svg/g) ?? []).length, 4);
    assert.doesNotMatch(page, /<script|src="http|href="http/, 'nothing to load, from anywhere');
    assert.match(page, /Final accuracy <b>83\.00%<\/b> after 3 rounds/);
    assert.match(page, /CKKS on, key held by the aggregator/);
    assert.equal(pngs.length, 4, 'a PNG for each chart');
    for (const png of pngs) {
      assert.ok(existsSync(png));
      const bytes = readFileSync(png);
      assert.deepEqual([...bytes.subarray(1, 4)], [0x50, 0x4e, 0x47], `${png} is a PNG`);
      assert.ok(bytes.readUInt32BE(16) >= 800, `${png} is at least 800 px wide`);
    }
  });

  it('draws a testbed of hundreds of clients, in address order, with the queueing of clients that share a process', async () => {
    const clients = Array.from({ length: 300 }, (_, i) => `127.0.${9 + Math.floor(i / 20)}.1:${5000 + (i % 20)}`);
    const entry = (round: number, i: number) => ({ round, start_time: '', end_time: '', byte_received: 4e5, byte_send: 2e5, train_ms: 100, queue_ms: (i % 20) * 100 });
    const records = clients.map((address, i) => ({ node: address, address, role: 'client' as const, iteration: [1, 2, 3].map((round) => entry(round, i)) }));
    const workers = new Map<string, 'client' | 'switch'>(clients.map((c) => [c, 'client']));
    const histograms = Object.fromEntries(clients.map((c) => [c, Array.from({ length: 10 }, () => 25)]));
    const settings = parseExperimentConfig(testbedConfig({ base: '127.0.9', nodes: 4, switches: 1 }));
    // A sort by a list of 300 names compiled to an expression 300 levels deep, which overflowed the stack.
    const { html } = await writeReport(tmp(), { experiment: 'many', aggregator: '127.0.99.1:5000', settings, workers, rows, records, histograms });
    const page = readFileSync(html, 'utf8');
    assert.equal((page.match(/<svg/g) ?? []).length, 5);
    const labels = [...page.matchAll(/>(127\.0\.9\.1:50\d\d) \(client\)</g)].map((m) => m[1]);
    assert.deepEqual([...new Set(labels)].slice(0, 3), ['127.0.9.1:5000', '127.0.9.1:5001', '127.0.9.1:5002'], 'in address order');
    // The longest wait of each round: the 20th client of a process waited for the 19 before it.
    assert.match(page, /queued \(s\)<\/th>/);
    assert.match(page, /<td title="127\.0\.9\.1:5019 waited longest">1\.90<\/td>/);
  });
});
