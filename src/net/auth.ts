/** Bearer tokens: reading the node's (a token book or the cluster token), the scrape token, comparing them. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RequestHandler } from 'express';
import { HttpError } from './errors';
import { Credentials } from './identity';

export const MIN_TOKEN_LENGTH = 16;
export const TOKEN_ENV = 'FL_TOKEN';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Equal-length digests make the comparison constant-time whatever the lengths of the inputs. */
export function tokensMatch(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** Lets through a request bearing any of `tokens`; `what` names them in the 401 (no token is ever echoed). */
export function requireAnyBearer(tokens: readonly string[], what: string): RequestHandler {
  const expected = tokens.map(digest);
  return (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer (.+)$/.exec(header);
    if (!match) {
      res.set('WWW-Authenticate', 'Bearer');
      return next(new HttpError(401, 'unauthorized', `missing bearer token (Authorization: Bearer <${what}>)`));
    }
    const given = digest(match[1]);
    // Every token compared, so the time taken does not tell which one came close.
    const matches = expected.filter((e) => timingSafeEqual(given, e)).length;
    if (!matches) {
      res.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      return next(new HttpError(401, 'unauthorized', `wrong ${what}`));
    }
    next();
  };
}

/** The scrape token from --metrics-token-file (or $FL_METRICS_TOKEN_FILE), if one is given. */
export function readScrapeToken(file: string | undefined): string | undefined {
  if (!file) return undefined;
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new Error(`--metrics-token-file: cannot read ${file}: ${(err as Error).message}`);
  }
  if (token.length < MIN_TOKEN_LENGTH) throw new Error(`--metrics-token-file ${file}: the scrape token must be at least ${MIN_TOKEN_LENGTH} characters`);
  return token;
}

/**
 * What this node proves itself with, from --token, --token-file or $FL_TOKEN, in that order: a token
 * book from a launcher, or the cluster token itself. Throws a message naming the fix.
 */
export function resolveCredentials(options: { token?: string; tokenFile?: string }, env = process.env): Credentials {
  let text = options.token;
  let from = '--token';
  if (!text && options.tokenFile) {
    try {
      text = readFileSync(options.tokenFile, 'utf8');
    } catch (err) {
      throw new Error(`--token-file: cannot read ${options.tokenFile}: ${(err as Error).message}`);
    }
    from = `--token-file ${options.tokenFile}`;
  }
  if (!text && env[TOKEN_ENV]) {
    text = env[TOKEN_ENV];
    from = `$${TOKEN_ENV}`;
  }
  if (!text?.trim()) {
    throw new Error(`no token: pass --token-file FILE or set $${TOKEN_ENV} (the token book a launcher made for this node, or the cluster token)`);
  }
  const credentials = Credentials.parse(text, from);
  if (credentials.holdsSecret && credentials.operatorToken()!.length < MIN_TOKEN_LENGTH) {
    throw new Error(`${from}: the cluster token must be at least ${MIN_TOKEN_LENGTH} characters`);
  }
  return credentials;
}
