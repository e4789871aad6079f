/** What a state machine says of an event it does not take: the HTTP status to answer with, and why. */
export interface Refusal {
  type: 'refuse';
  status: number;
  reason: string;
  /** A short name for it (`busy`, `stale`), when the status does not say enough. */
  kind?: string;
}
