/** Body parsing shared by the blueprints: JSON for small control messages, raw bytes for models and updates. */
import express, { type RequestHandler } from 'express';
import { requireContentType } from '../net/errors';
import { rawBody } from '../net/raw-body';
import type { Settings } from '../config/schema';
import type { Topology } from '../topology/tree';
import { callerOf } from '../net/callers';
import { HEADER_BYTES, maxMetaBytes, WIRE_CONTENT_TYPE } from '../wire/codec';
import { forwardsEachUpdate } from '../wire/receive';

export const CONTROL_BODY_LIMIT = 64 * 1024;

export const jsonBody: RequestHandler[] = [requireContentType('application/json'), express.json({ limit: CONTROL_BODY_LIMIT, inflate: false })];

/** Bytes per parameter a ciphertext may take on the wire (public-key, N=32768: about 2x the 4096 figure). */
const MAX_CIPHER_BYTES_PER_PARAMETER = 80;

/** Room for a message of `updates` × `parameters` values (float32, or encrypted) plus header, sender and metadata (codec's limit). */
export function wireBody(parameters: number, encrypted = false, updates = 1): RequestHandler[] {
  const limit = HEADER_BYTES + maxMetaBytes(updates) + updates * parameters * (encrypted ? MAX_CIPHER_BYTES_PER_PARAMETER : 4);
  return [requireContentType(WIRE_CONTENT_TYPE), rawBody(limit)];
}

/**
 * Room for what a switch or the aggregator receives: one update or sum; for a robust rule, from a
 * switch below, a bundle of an update for each client beneath that switch. The limit is the
 * caller's (the routes have identified it): a client gets room for its one update, whatever the tree.
 */
export function receiveBody(role: { parameters: number; encrypted: boolean; config: { settings: Settings }; topology: Topology }): RequestHandler[] {
  if (!forwardsEachUpdate(role.config.settings)) return wireBody(role.parameters, role.encrypted);
  const parsers = new Map<number, RequestHandler>();
  const parserFor = (updates: number) => parsers.get(updates) ?? parsers.set(updates, wireBody(role.parameters, role.encrypted, updates)[1]).get(updates)!;
  const { topology } = role;
  return [
    requireContentType(WIRE_CONTENT_TYPE),
    (req, res, next) => {
      const caller = callerOf(res);
      const node = 'node' in caller ? caller.node : undefined;
      parserFor(node && topology.isSwitch(node) ? topology.clientsBeneath(node).length : 1)(req, res, next);
    },
  ];
}
