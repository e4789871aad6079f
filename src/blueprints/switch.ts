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
  router.post('/receive', ...wireBody(role.maxParameters, role.encrypted), async (req, res) => {
    res.json({ status: 'accepted', ...(await role.receive(req.body)) });
  });
  return router;
}
