/** Routes of the client role, mounted under /c. */
import { Router } from 'express';
import type { ClientRole } from '../roles/client';
import { jsonBody, wireBody } from './wire';

export function clientBlueprint(role: ClientRole): Router {
  const router = Router();
  router.get('/status', (_req, res) => {
    res.json(role.status());
  });
  router.post('/round', ...wireBody(role.parameters, role.encrypted), (req, res) => {
    res.status(202).json({ status: 'training', ...role.receiveModel(req.body) });
  });
  router.post('/evaluate', ...wireBody(role.parameters, true), async (req, res) => {
    res.json(await role.evaluateModel(req.body));
  });
  router.post('/standby', ...jsonBody, (req, res) => {
    role.standBy(req.body);
    res.json({ status: 'standing by' });
  });
  return router;
}
