/**
 * Attempt ids name one opening of a round: `<session>:<round>.<retry>`, where the session names one
 * run of the aggregator. A switch refuses an older round within a session (a late message), but a
 * new session (an aggregator started again) may start over from any round.
 */
export const attemptId = (session: string, round: number, retry: number) => `${session}:${round}.${retry}`;

export const sessionOf = (attempt: string) => attempt.slice(0, Math.max(0, attempt.lastIndexOf(':')));

/** Which opening of its round an attempt is (0 the first); -1 for an id of another shape. */
export const retryOf = (attempt: string) => {
  const retry = Number(attempt.slice(attempt.lastIndexOf('.') + 1));
  return Number.isInteger(retry) ? retry : -1;
};
