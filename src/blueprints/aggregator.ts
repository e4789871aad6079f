/** Routes of the aggregator role, mounted under /a. */
import { Router } from 'express';
import type { AggregatorRole } from '../roles/aggregator';
import { jsonBody, wireBody } from './wire';

export function aggregatorBlueprint(role: AggregatorRole): Router {
  const router = Router();
  router.get('/status', (_req, res) => {
    res.json(role.status());
  });
  router.post('/checkin', ...jsonBody, (req, res) => {
    res.json(role.checkIn(req.body));
  });
  router.post('/receive', ...wireBody(role.parameters), (req, res) => {
    res.json({ status: 'accepted', ...role.receive(req.body) });
  });
  return router;
}
