/** Every refusal is JSON: `{ "error": short kind, "reason": what was wrong }`. */
import type { ErrorRequestHandler, RequestHandler } from 'express';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    readonly reason: string,
    readonly details?: unknown,
  ) {
    super(reason);
  }
}

const KIND_BY_STATUS: Record<number, string> = { 400: 'bad request', 403: 'forbidden', 404: 'not found', 409: 'conflict', 503: 'not ready' };

/** A protocol machine's refusal as an HTTP error; its kind named by the status unless it names one. */
export const refused = (refusal: { status: number; reason: string; kind?: string }) =>
  new HttpError(refusal.status, refusal.kind ?? KIND_BY_STATUS[refusal.status] ?? 'refused', refusal.reason);

export const badRequest = (reason: string, details?: unknown) => new HttpError(400, 'bad request', reason, details);
export const tooLarge = (length: number | undefined, limit: number | undefined) => new HttpError(413, 'body too large', `the body is ${length} bytes; this route takes at most ${limit}`);
export const aborted = () => new HttpError(400, 'aborted', 'the request was aborted before its body arrived');
export const conflict = (reason: string) => new HttpError(409, 'conflict', reason);

interface BodyParserError extends Error {
  type?: string;
  status?: number;
  limit?: number;
  length?: number;
}

/** Translates body-parser's errors into reasons a user can act on. */
function fromBodyParser(err: BodyParserError): HttpError | undefined {
  switch (err.type) {
    case 'entity.parse.failed':
      return new HttpError(400, 'malformed json', `the body is not valid JSON: ${err.message}`);
    case 'entity.too.large':
      return tooLarge(err.length, err.limit);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new HttpError(415, 'unsupported encoding', err.message);
    case 'request.aborted':
      return aborted();
    default:
      // Any other refusal of the body the parser made (a client error it names), rather than a 500.
      return typeof err.status === 'number' && err.status >= 400 && err.status < 500 ? new HttpError(err.status, 'bad request', `the body could not be read: ${err.message}`) : undefined;
  }
}

export function jsonErrorHandler(onServerError: (err: unknown) => void): ErrorRequestHandler {
  return (err, _req, res, _next) => {
    const known = err instanceof HttpError ? err : fromBodyParser(err as BodyParserError);
    if (!known) onServerError(err);
    const status = known?.status ?? 500;
    const body: Record<string, unknown> = {
      error: known?.kind ?? 'internal error',
      reason: known?.reason ?? 'the node failed to handle this request; see its log',
    };
    if (known?.details !== undefined) body.details = known.details;
    if (!res.headersSent) res.status(status).json(body);
  };
}

/** Refuses a body that is not the content type a route parses, or that comes compressed (nodes send bodies as they are). */
export function requireContentType(type: string): RequestHandler {
  return (req, _res, next) => {
    const encoding = req.get('content-encoding');
    if (!req.is(type)) {
      next(new HttpError(415, 'unsupported media type', `expected Content-Type ${type}, got ${req.get('content-type') ?? 'none'}`));
    } else if (encoding && encoding.toLowerCase() !== 'identity') {
      next(new HttpError(415, 'unsupported encoding', `Content-Encoding ${encoding.slice(0, 50)}: nodes send bodies as they are`));
    } else next();
  };
}
