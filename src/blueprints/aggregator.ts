/** Routes of the aggregator role, mounted under /a. */
import { Router } from 'express';
import type { AggregatorRole } from '../roles/aggregator';

export function aggregatorBlueprint(role: AggregatorRole): Router {
  const router = Router();
  router.get('/status', (_req, res) => {
    res.json(role.status());
  });
  return router;
}
