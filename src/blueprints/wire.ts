/** Body parsing shared by the blueprints: JSON for small control messages, raw bytes for models and updates. */
import express, { type RequestHandler } from 'express';
import { requireContentType } from '../net/errors';
import { HEADER_BYTES, WIRE_CONTENT_TYPE } from '../wire/codec';

export const CONTROL_BODY_LIMIT = 64 * 1024;

export const jsonBody: RequestHandler[] = [requireContentType('application/json'), express.json({ limit: CONTROL_BODY_LIMIT })];

/** Room for a message of `parameters` float32 values plus header, sender and instructions. */
export function wireBody(parameters: number): RequestHandler[] {
  const limit = HEADER_BYTES + 4096 + parameters * 4;
  return [requireContentType(WIRE_CONTENT_TYPE), express.raw({ type: WIRE_CONTENT_TYPE, limit })];
}
