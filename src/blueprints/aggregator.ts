/** Routes of the aggregator role, mounted under /a; each says whom it takes calls from. */
import express, { Router } from 'express';
import { callerOf, oneAtATime, only } from '../net/callers';
import { requireContentType } from '../net/errors';
import type { AggregatorRole } from '../roles/aggregator';
import { jsonBody, receiveBody } from './wire';

/** A log batch holds up to a few thousand entries of a few hundred bytes. */
const LOG_BATCH_LIMIT = 4 * 1024 * 1024;

export function aggregatorBlueprint(role: AggregatorRole): Router {
  const { topology } = role;
  const operator = only(() => false, 'the operator', true);
  const clients = only((node) => topology.isClient(node), 'a client of the experiment');
  const reporters = only((node) => topology.reportsToRoot(node), 'a switch or client that reports to the aggregator');
  const topSwitches = only((node) => topology.isSwitchBelowRoot(node), 'a switch that reports to the aggregator');
  const workers = only((node) => topology.has(node), 'a worker of the experiment');
  const router = Router();
  router.get('/status', operator, (_req, res) => {
    res.json(role.status());
  });
  router.post('/checkin', clients, ...jsonBody, (req, res) => {
    res.json(role.notices.checkIn(req.body, callerOf(res)));
  });
  router.post('/declined', clients, ...jsonBody, (req, res) => {
    role.notices.declined(req.body, callerOf(res));
    res.json({ status: 'noted' });
  });
  router.post('/withheld', topSwitches, ...jsonBody, (req, res) => {
    role.notices.withheld(req.body, callerOf(res));
    res.json({ status: 'noted' });
  });
  router.post('/receive', reporters, oneAtATime(), ...receiveBody(role), async (req, res) => {
    res.json({ status: 'accepted', ...(await role.receive(req.body, callerOf(res))) });
  });
  router.post('/logs', workers, oneAtATime(), requireContentType('application/json'), express.json({ limit: LOG_BATCH_LIMIT }), (req, res) => {
    res.json({ status: 'written', ...role.receiveLogs(req.body, callerOf(res)) });
  });
  router.get('/he/public-key', clients, (_req, res) => {
    const key = role.publicKey(); // before the content type is set: a refusal must go out as JSON
    res.type('application/octet-stream').send(key);
  });
  return router;
}
