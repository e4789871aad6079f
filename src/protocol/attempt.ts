/**
 * Attempt ids name one opening of a round: `<session>:<round>.<retry>`, where the session names one
 * run of the aggregator. A switch refuses an older round within a session (a late message), but a
 * new session (an aggregator started again) may start over from any round.
 */
export const attemptId = (session: string, round: number, retry: number) => `${session}:${round}.${retry}`;

export const sessionOf = (attempt: string) => attempt.slice(0, Math.max(0, attempt.lastIndexOf(':')));
