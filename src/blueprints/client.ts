/** Routes of the client role, mounted under /c; each says whom it takes calls from. */
import { Router } from 'express';
import { oneAtATime, oneTaskAtATime, only } from '../net/callers';
import type { ClientRole } from '../roles/client';
import { jsonBody, wireBody } from './wire';

export function clientBlueprint(role: ClientRole): Router {
  const { upstream, aggregator, above } = role.config;
  // Who is training when is the operator's to read (and its aggregator's): a node that knew could spoil selectively.
  const readers = only((node) => node === aggregator, 'its aggregator or the operator', true);
  const fromUpstream = only((node) => node === upstream, `its upstream ${upstream}`);
  // A stand-by comes from the aggregator, or from a switch above that lost the way down to this client.
  const fromAbove = only((node) => node === aggregator || above.includes(node), 'its aggregator or a switch above it');
  // Decrypting and scoring go on after the caller hangs up: one at a time, or a caller could pile them up.
  const scoring = oneTaskAtATime('this client is scoring a model already: one at a time');
  const router = Router();
  router.get('/status', readers, (_req, res) => {
    res.json(role.status());
  });
  router.post('/round', fromUpstream, ...wireBody(role.parameters, role.encrypted), (req, res) => {
    res.status(202).json({ status: 'training', ...role.receiveModel(req.body) });
  });
  router.post('/evaluate', fromUpstream, oneAtATime(), ...wireBody(role.parameters, true), async (req, res) => {
    res.json(await scoring(() => role.evaluateModel(req.body)));
  });
  router.post('/standby', fromAbove, ...jsonBody, (req, res) => {
    role.standBy(req.body);
    res.json({ status: 'standing by' });
  });
  return router;
}
