/**
 * The dashboard in a real browser during a real run: Debian's Chromium, driven by playwright-core,
 * opens the aggregator's page while a 6-node encrypted experiment runs on loopback, under mutual
 * TLS as on a lab's testbed: the browser holds no client certificate, and trusts the aggregator's.
 * Screenshots go to test-output/. Then the end of the run: the report, the central logs, and a
 * --quiet run.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { chromiumPath, missingBrowser } from '../../scripts/ensure-system';
import { certFiles } from '../../src/net/certs';
import { MAIN, node, ROOT, Testbed, waitFor, type LaunchedAggregator } from '../helpers/cluster';

const CHROMIUM = chromiumPath();
/** `npm test` installs the browser where it can (scripts/ensure-system.ts); elsewhere this file skips, saying why. */
const NO_BROWSER = missingBrowser();
export const SCREENSHOTS = join(ROOT, 'test-output');
const ROUNDS = 6;
/** As the machine notes advise: no sandbox as root, and no background calls out of this closed network. */
const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const text = async (page: Page, selector: string) => (await page.textContent(selector))?.trim() ?? '';
/** Page-side conditions, as source text: the test compiles without the DOM's types. */
const drawnAtLeast = (n: number) => `Number(document.querySelector('#chart-accuracy')?.getAttribute('data-rounds')) >= ${n}`;
const roundsDrawn = async (page: Page) => Number(await page.getAttribute('#chart-accuracy', 'data-rounds'));

describe('the dashboard in Chromium during a real run', () => {
  const skip = NO_BROWSER ?? false;
  const testbed = new Testbed({ nodes: 6, switches: 1, rounds: ROUNDS, experiment: 'dashboard', trainSize: 'all' }, (config) => (config.tls = true));
  const aggregator = testbed.addresses('aggregator')[0];
  const certs = join(testbed.dir, 'certs');
  /** The aggregator's role from /health, over HTTPS with the testbed's CA and no client certificate. */
  const roleOfAggregator = () =>
    new Promise<string | undefined>((resolve) => {
      https
        .get(`https://${aggregator}/health`, { ca: readFileSync(join(certs, 'ca.pem')), agent: false }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => {
            try {
              resolve(res.statusCode === 200 ? JSON.parse(body).role : undefined);
            } catch {
              resolve(undefined);
            }
          });
        })
        .on('error', () => resolve(undefined));
    });
  let browser: Browser;
  let page: Page;
  let agg: LaunchedAggregator;
  /** Every request the dashboard page made, by whether it went to the aggregator's origin. */
  const requests = { own: [] as string[], outside: [] as string[] };

  before(async () => {
    if (NO_BROWSER) return;
    mkdirSync(SCREENSHOTS, { recursive: true });
    const up = await testbed.up();
    assert.equal(up.code, 0, up.stdout + up.stderr);
    agg = testbed.launchAggregator(['--keep-serving', '--log-level', 'warn']);
    // The browser trusts the aggregator's key alone (as importing the testbed's CA would, for this one
    // page): a certificate for another key would still be refused.
    const spki = new X509Certificate(readFileSync(certFiles(certs, aggregator).cert)).publicKey.export({ type: 'spki', format: 'der' });
    const pinned = `--ignore-certificate-errors-spki-list=${createHash('sha256').update(spki).digest('base64')}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_FLAGS, pinned] });
    page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    // Every request is noted for the last test, and one outside the aggregator's origin is aborted
    // here: this closed network has nothing to answer it, and the test must not send it anywhere.
    const origin = `https://${aggregator}`;
    const outside = (url: URL) => url.origin !== origin;
    page.on('request', (r) => (outside(new URL(r.url())) ? requests.outside : requests.own).push(r.url()));
    await page.route(outside, (route) => route.abort('blockedbyclient'));
  });
  after(async () => {
    if (NO_BROWSER) return;
    await browser?.close();
    await testbed.down();
  });

  it('loads during the run; the round counter advances and the chart shows the rounds so far, without a reload', { skip }, async () => {
    await waitFor(async () => (await roleOfAggregator()) === 'aggregator', 60_000);
    await page.goto(`https://${aggregator}/`);
    await page.waitForFunction(drawnAtLeast(1), undefined, { timeout: 120_000 });
    const firstRound = Number(await text(page, '#round'));
    const firstDrawn = await roundsDrawn(page);
    assert.ok(firstDrawn < ROUNDS, `the page opened before the end (${firstDrawn} rounds drawn): ${agg.output}`);

    await page.waitForFunction(drawnAtLeast(firstDrawn + 2), undefined, { timeout: 120_000 });
    const drawn = await roundsDrawn(page);
    assert.ok(Number(await text(page, '#round')) > firstRound, 'the round counter moved on');
    // One point per round for accuracy and one for loss.
    assert.equal(await page.locator('#chart-accuracy svg path[aria-roledescription="point"]').count(), 2 * drawn);
    assert.equal(await page.locator('#nodes tr').count(), 6);
    assert.equal(await page.locator('#nodes .dot.up').count(), 6, 'every node healthy');
    assert.match(await text(page, '#he'), /HE on/);
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-during-run.png'), fullPage: true });
  });

  it("shows the end: finished, every round drawn, each node's bytes and phase times", { skip }, async () => {
    await page.waitForFunction(`document.querySelector('#stage')?.textContent === 'finished'`, undefined, { timeout: 180_000 });
    await page.waitForFunction(drawnAtLeast(ROUNDS));
    assert.equal(await text(page, '#round'), String(ROUNDS));
    const rows = await page.locator('#nodes tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    // Every node has its row (so the checks below run for each), the clients' phase times among them.
    assert.deepEqual(rows.map(([, , role]) => role).sort(), ['aggregator', 'client', 'client', 'client', 'client', 'switch']);
    for (const [, address, role, round, sent, received, phases] of rows) {
      assert.equal(round, String(ROUNDS), `${address} shipped its last round`);
      assert.ok(Number(sent) > 0 && Number(received) > 0, `${address} shows its bytes`);
      if (role === 'client') assert.match(phases, /train \d+, encrypt \d+, send \d+/);
    }
    assert.equal(await page.locator('#chart-phases svg path[aria-roledescription="bar"]').count() > 0, true);
    // Where each round's time went, and who held it: a bar for each part of each round.
    assert.equal(await page.locator('#chart-rounds svg path[aria-roledescription="bar"]').count(), 6 * ROUNDS);
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-finished.png'), fullPage: true });
  });

  it("writes report.html that opens offline, with the charts and settings, and a PNG of each chart", { skip }, async () => {
    await waitFor(async () => /report: /.test(agg.output), 30_000);
    const dir = join(testbed.outputs, 'dashboard');
    const report = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    // Offline: only the file itself. Anything it would fetch is aborted, and noted.
    const fetched: string[] = [];
    report.on('request', (r) => void (r.url().startsWith('file:') || fetched.push(r.url())));
    await report.route(/^https?:/, (route) => route.abort());
    await report.goto(`file://${join(dir, 'report.html')}`);
    assert.deepEqual(fetched, [], 'the report asks for nothing beyond its own file');
    assert.equal(await report.locator('svg').count(), 5, 'accuracy, rounds, bytes, phases, and the classes each client holds');
    // The bytes grid (the third chart) has a cell (with its number) for every node and round, the last round's included.
    assert.equal(await report.locator('svg').nth(2).locator('[aria-roledescription="text mark"]').count(), 6 * ROUNDS);
    // Each round's time, in its parts (six, each a bar), in the rounds chart.
    assert.equal(await report.locator('svg').nth(1).locator('path[aria-roledescription="bar"]').count(), 6 * ROUNDS);
    assert.match(await report.textContent('body') ?? '', new RegExp(`Final accuracy \\d+\\.\\d+% after ${ROUNDS} rounds`));
    assert.match(await report.textContent('.settings') ?? '', /CKKS on/);
    await report.screenshot({ path: join(SCREENSHOTS, 'report.png'), fullPage: true });
    for (const chart of ['accuracy', 'rounds', 'bytes', 'phases', 'classes']) {
      const png = readFileSync(join(dir, 'charts', `${chart}.png`));
      assert.equal(png.subarray(1, 4).toString(), 'PNG');
    }
  });

  it("gathers every worker's iteration log and records in the aggregator's logs/cluster", { skip }, () => {
    for (const address of testbed.addresses().filter((a) => a !== aggregator)) {
      const file = join(testbed.logs, 'cluster', 'dashboard', `${address.replace(':', '-')}_dashboard.json`);
      const { iteration, role } = JSON.parse(readFileSync(file, 'utf8'));
      assert.equal(role, testbed.config.others[address].type);
      assert.deepEqual(iteration.map((e: { round: number }) => e.round), Array.from({ length: ROUNDS }, (_, i) => i + 1), address);
      // The same entries the worker wrote itself.
      const own = JSON.parse(readFileSync(join(testbed.logs, `${address.replace(':', '-')}_dashboard.json`), 'utf8')).iteration;
      assert.deepEqual(iteration, own.slice(-ROUNDS));
    }
  });

  it('runs quietly for scripts: --quiet prints the summary table and nothing else', { skip }, async () => {
    const config = JSON.parse(readFileSync(testbed.configFile, 'utf8'));
    const file = join(testbed.dir, 'quiet.json');
    writeFileSync(file, JSON.stringify({ ...config, experiment: 'quiet', rounds: 2 }));
    await testbed.down().then(() => testbed.up());
    const quiet = await node([MAIN, 'agg', '--config', file, '--token-file', join(testbed.state, 'token'), '--logs', testbed.logs, '--outputs', testbed.outputs, '--quiet'], {
      cwd: ROOT,
      timeout: 180_000,
    });
    assert.equal(quiet.code, 0, quiet.stdout + quiet.stderr);
    const lines = quiet.stdout.trim().split('\n');
    assert.match(lines[0], /^round\s+accuracy\s+loss/);
    assert.equal(lines.length, 1 + 2 + 2, quiet.stdout); // header, 2 rounds, final line, outputs line
    assert.equal(quiet.stderr, '');
  });

  it("loaded nothing from outside the aggregator's origin, the whole run long", { skip }, () => {
    assert.ok(requests.own.some((url) => url.endsWith('/dashboard/state')), `the page's own requests were seen: ${requests.own.join(', ')}`);
    assert.deepEqual(requests.outside, [], 'requests outside the aggregator');
  });
});
