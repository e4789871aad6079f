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
  router.post('/receive', ...wireBody(role.parameters, role.encrypted), async (req, res) => {
    res.json({ status: 'accepted', ...(await role.receive(req.body)) });
  });
  router.get('/he/public-key', (_req, res) => {
    const key = role.publicKey(); // before the content type is set: a refusal must go out as JSON
    res.type('application/octet-stream').send(key);
  });
  return router;
}
