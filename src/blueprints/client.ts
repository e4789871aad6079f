/** Routes of the client role, mounted under /c. */
import { Router } from 'express';
import type { ClientRole } from '../roles/client';

export function clientBlueprint(role: ClientRole): Router {
  const router = Router();
  router.get('/status', (_req, res) => {
    res.json(role.status());
  });
  return router;
}
