/**
 * The live dashboard, served by the aggregator at GET / without the token: it shows settings and
 * numbers, never a secret. The page fetches /dashboard/state and refetches it whenever the server
 * says something changed (server-sent events at /dashboard/events). Vega and Vega-Lite come from
 * node_modules: nothing is loaded from outside the machine.
 */
import { dirname, join } from 'node:path';
import { Router } from 'express';
import { dashboardState } from '../dashboard/state';
import { DASHBOARD_PAGE } from '../dashboard/page';
import { HttpError } from '../net/errors';
import type { AggregatorRole, Change } from '../roles/aggregator';
import { roundProgress } from '../roles/aggregator/view';

/** The browser builds of the chart libraries, by the name the page asks for. */
const ASSETS: Record<string, string> = {
  'vega.min.js': join(dirname(require.resolve('vega')), 'vega.min.js'),
  'vega-lite.min.js': join(dirname(require.resolve('vega-lite')), 'vega-lite.min.js'),
};
/** A comment line now and then keeps proxies and idle timers from closing the event stream. */
const KEEPALIVE_MS = 15_000;
/** The event stream needs no token: this many may be open at once, so strangers cannot hold sockets and listeners without end. */
export const MAX_EVENT_STREAMS = 32;

export function dashboardBlueprint(role: AggregatorRole): Router {
  const router = Router();
  router.get('/', (_req, res) => {
    res.type('html').send(DASHBOARD_PAGE);
  });
  router.get('/dashboard/state', (_req, res) => {
    res.json(dashboardState(role));
  });
  // What the testbed's schedule polls, several times a second: the round and its stage, nothing built.
  router.get('/dashboard/round', (_req, res) => {
    res.json(roundProgress(role));
  });
  router.get('/dashboard/assets/:file', (req, res) => {
    const file = ASSETS[req.params.file];
    if (!file) return void res.status(404).json({ error: 'not found', reason: `no asset ${req.params.file}` });
    res.sendFile(file, { maxAge: '1h' });
  });
  let streams = 0;
  router.get('/dashboard/events', (req, res) => {
    if (streams >= MAX_EVENT_STREAMS) {
      throw new HttpError(503, 'too many streams', `${MAX_EVENT_STREAMS} event streams are open already; close a dashboard tab, or poll /dashboard/state`);
    }
    streams++;
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    const onChange = (kind: Change) => res.write(`event: change\ndata: ${JSON.stringify({ kind })}\n\n`);
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
    role.changes.on('change', onChange);
    req.on('close', () => {
      streams--;
      clearInterval(keepalive);
      role.changes.off('change', onChange);
    });
  });
  return router;
}
