/**
 * Attempt ids name one opening of a round: `<session>:<round>.<retry>`, where the session names one
 * run of the aggregator. Within a session openings are ordered (round, then retry): a message for an
 * older one is stale. A new session (an aggregator started again) may start over from any round, so
 * openings of two sessions are not ordered: the newer one is whichever arrives.
 */
export const attemptId = (session: string, round: number, retry: number) => `${session}:${round}.${retry}`;

export interface Attempt {
  session: string;
  round: number;
  retry: number;
}

/** What an attempt id looks like: a session of letters, digits, "_" and "-", then the round and the retry. */
export const ATTEMPT_PATTERN = /^([\w-]{1,64}):(\d{1,9})\.(\d{1,9})$/;
/** An aggregator's session, as an attempt begins with it. */
export const SESSION_PATTERN = /^[\w-]{1,64}$/;

/** An attempt id read back; undefined for one of another shape. */
export function parseAttempt(attempt: string): Attempt | undefined {
  const match = ATTEMPT_PATTERN.exec(attempt);
  if (!match) return undefined;
  return { session: match[1], round: Number(match[2]), retry: Number(match[3]) };
}

export const sessionOf = (attempt: string) => attempt.slice(0, Math.max(0, attempt.lastIndexOf(':')));

/** Which opening of its round an attempt is (0 the first); -1 for an id of another shape. */
export const retryOf = (attempt: string) => parseAttempt(attempt)?.retry ?? -1;

/**
 * Whether `attempt` is an opening before `than` in the same session (a late message); false for the
 * same opening, a later one, one of another session, or either not an attempt id.
 */
export function isEarlier(attempt: string, than: string): boolean {
  const a = parseAttempt(attempt);
  const b = parseAttempt(than);
  if (!a || !b || a.session !== b.session) return false;
  return a.round < b.round || (a.round === b.round && a.retry < b.retry);
}

/** Why a message's round and attempt do not belong together, or undefined when they do. */
export function attemptProblem(round: number, attempt: string): string | undefined {
  const parsed = parseAttempt(attempt);
  if (!parsed) return `attempt "${attempt.slice(0, 80)}" is not <session>:<round>.<retry>`;
  if (parsed.round !== round) return `attempt ${attempt} is an opening of round ${parsed.round}, not of round ${round}`;
  return undefined;
}
