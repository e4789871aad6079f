/** Routes of the aggregator role, mounted under /a. */
import express, { Router } from 'express';
import { requireContentType } from '../net/errors';
import type { AggregatorRole } from '../roles/aggregator';
import { jsonBody, wireBody } from './wire';

/** A log batch holds up to a few thousand entries of a few hundred bytes. */
const LOG_BATCH_LIMIT = 4 * 1024 * 1024;

export function aggregatorBlueprint(role: AggregatorRole): Router {
  const router = Router();
  router.get('/status', (_req, res) => {
    res.json(role.status());
  });
  router.post('/checkin', ...jsonBody, (req, res) => {
    res.json(role.checkIn(req.body));
  });
  router.post('/withheld', ...jsonBody, (req, res) => {
    role.withheld(req.body);
    res.json({ status: 'noted' });
  });
  router.post('/receive', ...wireBody(role.parameters, role.encrypted), async (req, res) => {
    res.json({ status: 'accepted', ...(await role.receive(req.body)) });
  });
  router.post('/logs', requireContentType('application/json'), express.json({ limit: LOG_BATCH_LIMIT }), (req, res) => {
    res.json({ status: 'written', ...role.receiveLogs(req.body) });
  });
  router.get('/he/public-key', (_req, res) => {
    const key = role.publicKey(); // before the content type is set: a refusal must go out as JSON
    res.type('application/octet-stream').send(key);
  });
  return router;
}
