/** The cluster's shared secret: every request between nodes carries `Authorization: Bearer <token>`. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RequestHandler } from 'express';
import { HttpError } from './errors';

export const MIN_TOKEN_LENGTH = 16;
export const TOKEN_ENV = 'FL_TOKEN';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Equal-length digests make the comparison constant-time whatever the lengths of the inputs. */
export function tokensMatch(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

export function requireBearer(token: string): RequestHandler {
  const expected = digest(token);
  return (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer (.+)$/.exec(header);
    if (!match) {
      res.set('WWW-Authenticate', 'Bearer');
      return next(new HttpError(401, 'unauthorized', 'missing bearer token (Authorization: Bearer <cluster token>)'));
    }
    if (!timingSafeEqual(digest(match[1]), expected)) {
      res.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      return next(new HttpError(401, 'unauthorized', 'wrong cluster token'));
    }
    next();
  };
}

/** The token from --token, --token-file or $FL_TOKEN, in that order; throws a message naming the fix. */
export function resolveToken(options: { token?: string; tokenFile?: string }, env = process.env): string {
  let token = options.token;
  let from = '--token';
  if (!token && options.tokenFile) {
    try {
      token = readFileSync(options.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new Error(`--token-file: cannot read ${options.tokenFile}: ${(err as Error).message}`);
    }
    from = `--token-file ${options.tokenFile}`;
  }
  if (!token && env[TOKEN_ENV]) {
    token = env[TOKEN_ENV]!.trim();
    from = `$${TOKEN_ENV}`;
  }
  if (!token) {
    throw new Error(`no cluster token: pass --token-file FILE or set $${TOKEN_ENV} (the same secret on every node)`);
  }
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new Error(`${from}: the cluster token must be at least ${MIN_TOKEN_LENGTH} characters`);
  }
  return token;
}
