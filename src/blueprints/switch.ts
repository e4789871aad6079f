/** Routes of the switch role, mounted under /s. */
import { Router } from 'express';
import type { SwitchRole } from '../roles/switch';
import { jsonBody, wireBody } from './wire';

export function switchBlueprint(role: SwitchRole): Router {
  const router = Router();
  router.get('/status', (_req, res) => {
    res.json(role.status());
  });
  router.post('/round', ...jsonBody, (req, res) => {
    role.open(req.body);
    res.json({ status: 'open' });
  });
  router.post('/drop', ...jsonBody, (req, res) => {
    role.drop(req.body);
    res.json({ status: 'dropped' });
  });
  router.post('/receive', ...wireBody(role.parameters, role.encrypted), async (req, res) => {
    res.json({ status: 'accepted', ...(await role.receive(req.body)) });
  });
  router.post('/withheld', ...jsonBody, (req, res) => {
    role.withheldBelow(req.body);
    res.json({ status: 'noted' });
  });
  router.post('/model', ...wireBody(role.parameters, role.encrypted), async (req, res) => {
    res.status(202).json({ status: 'relaying', ...(await role.relayModel(req.body)) });
  });
  router.post('/evaluate', ...wireBody(role.parameters, true), async (req, res) => {
    res.json(await role.evaluate(req.body, req.query));
  });
  return router;
}
