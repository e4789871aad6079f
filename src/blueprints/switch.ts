/** Routes of the switch role, mounted under /s; each says whom it takes calls from. */
import { Router } from 'express';
import { callerOf, oneAtATime, only } from '../net/callers';
import type { SwitchRole } from '../roles/switch';
import { jsonBody, receiveBody, wireBody } from './wire';

export function switchBlueprint(role: SwitchRole): Router {
  const { topology, config } = role;
  const readers = only((node) => node === config.aggregator, 'its aggregator or the operator', true);
  const upstream = only((node) => node === config.upstream, `its upstream ${config.upstream}`);
  const below = only((node) => topology.reportsToRoot(node), 'a client or a switch that reports to it');
  const switchesBelow = only((node) => topology.isSwitchBelowRoot(node), 'a switch that reports to it');
  const router = Router();
  router.get('/status', readers, (_req, res) => {
    res.json(role.status());
  });
  router.post('/round', upstream, ...jsonBody, (req, res) => {
    role.open(req.body);
    res.json({ status: 'open' });
  });
  router.post('/drop', upstream, ...jsonBody, (req, res) => {
    role.drop(req.body);
    res.json({ status: 'dropped' });
  });
  router.post('/receive', below, oneAtATime(), ...receiveBody(role), async (req, res) => {
    res.json({ status: 'accepted', ...(await role.receive(req.body, callerOf(res))) });
  });
  router.post('/withheld', switchesBelow, ...jsonBody, (req, res) => {
    role.withheldBelow(req.body, callerOf(res));
    res.json({ status: 'noted' });
  });
  router.post('/model', upstream, ...wireBody(role.parameters, role.encrypted), async (req, res) => {
    res.status(202).json({ status: 'relaying', ...(await role.relayModel(req.body)) });
  });
  router.post('/evaluate', upstream, oneAtATime(), ...wireBody(role.parameters, true), async (req, res) => {
    res.json(await role.evaluate(req.body, req.query));
  });
  return router;
}
