/** Body parsing shared by the blueprints: JSON for small control messages, raw bytes for models and updates. */
import express, { type RequestHandler } from 'express';
import { requireContentType } from '../net/errors';
import type { Settings } from '../config/schema';
import type { Topology } from '../topology/tree';
import { HEADER_BYTES, WIRE_CONTENT_TYPE } from '../wire/codec';
import { forwardsEachUpdate } from '../wire/receive';

export const CONTROL_BODY_LIMIT = 64 * 1024;

export const jsonBody: RequestHandler[] = [requireContentType('application/json'), express.json({ limit: CONTROL_BODY_LIMIT, inflate: false })];

/** Bytes per parameter a ciphertext may take on the wire (public-key, N=32768: about 2x the 4096 figure). */
const MAX_CIPHER_BYTES_PER_PARAMETER = 80;

/** Room for a message of `updates` × `parameters` values (float32, or encrypted) plus header, sender and instructions. */
export function wireBody(parameters: number, encrypted = false, updates = 1): RequestHandler[] {
  const limit = HEADER_BYTES + 64 * 1024 + updates * parameters * (encrypted ? MAX_CIPHER_BYTES_PER_PARAMETER : 4);
  return [requireContentType(WIRE_CONTENT_TYPE), express.raw({ type: WIRE_CONTENT_TYPE, limit, inflate: false })];
}

/**
 * Room for what a switch or the aggregator receives: one update or sum, or, for a robust rule, a
 * bundle of the updates of every client beneath it.
 */
export function receiveBody(role: { parameters: number; encrypted: boolean; config: { settings: Settings }; topology: Topology }): RequestHandler[] {
  return wireBody(role.parameters, role.encrypted, forwardsEachUpdate(role.config.settings) ? role.topology.clients.length : 1);
}
