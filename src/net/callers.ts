/**
 * Identity on the routes: who called (net/identity.ts proves it), which routes take calls from whom
 * (each blueprint declares it beside the route with `only`), and the fields that name a node (a
 * client, a sender, a switch) matching the caller. A refusal is a 401 or 403 that names why,
 * changes nothing, and is logged once.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { RequestHandler, Response } from 'express';
import { canonicalAddress } from '../config/address';
import type { Logger } from '../log/logger';
import { HttpError } from './errors';
import { callerName, NODE_HEADER, type Caller, type Credentials } from './identity';

/**
 * How many distinct refusals are logged of each node of the testbed, and of all callers that prove no
 * one: past that they are only answered (a flood must not fill the disk, and neither one node nor
 * callers with no token may use up the lines that name another node acting as someone else).
 */
const MAX_LOGGED_REFUSALS_EACH = 100;
const MAX_LOGGED_REFUSALS = 500;

/** The certificate's name for its node (`main.js certs` puts the address in the subject's CN). */
function certifiedNode(req: IncomingMessage): string | undefined {
  const socket = req.socket as TLSSocket;
  const cn = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate().subject?.CN : undefined;
  return typeof cn === 'string' ? cn : undefined;
}

const bearerOf = (header: string | undefined) => /^Bearer (.+)$/.exec(header ?? '')?.[1];

/**
 * Sets `res.locals.caller`, or refuses: 401 when the token proves no one; under mutual TLS, 403 when
 * the certificate is another node's than the one the call names.
 */
export function identifyCallers(credentials: Credentials, tls: boolean): RequestHandler {
  return (req, res, next) => {
    const caller = credentials.callerOf(bearerOf(req.get('authorization')), req.get(NODE_HEADER));
    if ('refused' in caller) {
      res.set('WWW-Authenticate', 'Bearer');
      return next(new HttpError(401, 'unauthorized', caller.refused));
    }
    const certified = tls && 'node' in caller ? certifiedNode(req) : undefined;
    if (tls && 'node' in caller && certified !== caller.node) {
      return next(new HttpError(403, 'forbidden', `the call names ${caller.node}, but its certificate is ${certified ?? 'no node'}'s: a node may act only as itself`));
    }
    res.locals.caller = caller;
    next();
  };
}

export const callerOf = (res: Response): Caller => res.locals.caller as Caller;

/**
 * A route that takes calls only from the nodes `allowed` says yes to (and the operator, when
 * `operator`: reading); `who` names them in the refusal.
 */
export function only(allowed: (node: string) => boolean, who: string, operator = false): RequestHandler {
  return (req, res, next) => {
    const caller = callerOf(res);
    if ('node' in caller ? allowed(caller.node) : operator) return next();
    next(new HttpError(403, 'forbidden', `${req.method} ${req.baseUrl}${req.path} takes calls from ${who}, not from ${callerName(caller)}`));
  };
}

/**
 * One request at a time from each caller on a route (an update, a sum): a node has one to send, and
 * many at once would each be read whole before one is refused (429 for the others).
 */
export function oneAtATime(): RequestHandler {
  const busy = new Set<string>();
  return (req, res, next) => {
    const caller = callerName(callerOf(res));
    if (busy.has(caller)) return next(new HttpError(429, 'too many requests', `${caller} has a request on ${req.baseUrl}${req.path} in flight already: one at a time`));
    busy.add(caller);
    res.on('close', () => busy.delete(caller));
    next();
  };
}

/**
 * One piece of work at a time (a route's, which has one caller): a second while the first runs is
 * refused (429, `busy` its reason). Freed as the work ends, not as its caller hangs up (oneAtATime):
 * a caller that asks and hangs up, again and again, piles up no work.
 */
export function oneTaskAtATime(busy: string): <T>(work: () => Promise<T>) => Promise<T> {
  let running = false;
  return async (work) => {
    if (running) throw new HttpError(429, 'too many requests', busy);
    running = true;
    try {
      return await work();
    } finally {
      running = false;
    }
  };
}

/** Refuses (403) a message whose `field` names a node other than its caller: a node may act only as itself. */
export function actingAsItself(caller: Caller, field: string, named: string): void {
  let node: string | undefined;
  try {
    node = canonicalAddress(named);
  } catch {
    node = undefined;
  }
  if ('node' in caller && node === caller.node) return;
  throw new HttpError(403, 'forbidden', `${field} names ${named}, but the call comes from ${callerName(caller)}: a node may act only as itself`);
}

/**
 * Logs each distinct refusal of a caller once (who, what, why), so an impersonation shows without
 * flooding the log: each node of the testbed has a budget of its own (one cannot use up another's),
 * callers that prove no one share one. What a caller sent is echoed on one line.
 */
export function refusalLogger(logger: Logger): (req: IncomingMessage & { originalUrl?: string }, res: Response, err: HttpError) => void {
  const seen = new Map<string, Set<string>>();
  return (req, res, err) => {
    if (err.status !== 401 && err.status !== 403) return;
    const caller = res.locals.caller as Caller | undefined;
    const who = caller ? callerName(caller) : req.headers[NODE_HEADER] ? `a caller naming itself ${String(req.headers[NODE_HEADER]).slice(0, 100)}` : 'an unnamed caller';
    const line = oneLine(`refused ${req.method} ${(req.originalUrl ?? req.url ?? '').split('?')[0].slice(0, 200)} from ${who}: ${err.reason}`);
    const budget = caller ? callerName(caller) : '';
    const lines = seen.get(budget) ?? new Set<string>();
    seen.set(budget, lines);
    const cap = caller ? MAX_LOGGED_REFUSALS_EACH : MAX_LOGGED_REFUSALS;
    if (lines.has(line) || lines.size > cap) return;
    lines.add(line);
    const whose = caller ? `of ${who}` : 'of callers that proved no one';
    logger.warn(lines.size > cap ? `${cap} refusals ${whose} logged: further ones are answered, not logged` : line);
  };
}

const oneLine = (text: string) => text.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
