/** Routes of the switch role, mounted under /s. */
import { Router } from 'express';
import type { SwitchRole } from '../roles/switch';

export function switchBlueprint(role: SwitchRole): Router {
  const router = Router();
  router.get('/status', (_req, res) => {
    res.json(role.status());
  });
  return router;
}
