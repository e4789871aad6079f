/** Scraping GET /metrics as Prometheus does, and reading samples back. */
import assert from 'node:assert/strict';
import parsePrometheus, { type MetricFamily } from 'parse-prometheus-text-format';

export const SCRAPE_TOKEN = 'scrape-only-token-0123456789';

export interface Scrape {
  status: number;
  contentType: string | null;
  text: string;
}

export async function scrape(address: string, token?: string): Promise<Scrape> {
  const res = await fetch(`http://${address}/metrics`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  return { status: res.status, contentType: res.headers.get('content-type'), text: await res.text() };
}

/** The families of a scrape that answered 200, by name. */
export async function families(address: string, token = SCRAPE_TOKEN): Promise<Map<string, MetricFamily>> {
  const answer = await scrape(address, token);
  assert.equal(answer.status, 200, `${address}: ${answer.text}`);
  return new Map(parsePrometheus(answer.text).map((f) => [f.name, f]));
}

/** The value of the sample of `name` with exactly these labels, as a number; undefined if there is none. */
export function valueOf(scraped: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const sample = scraped.get(name)?.metrics.find((m) => JSON.stringify(Object.entries(m.labels ?? {}).sort()) === JSON.stringify(Object.entries(labels).sort()));
  return sample?.value === undefined ? undefined : Number(sample.value);
}
