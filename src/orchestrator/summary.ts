/** The table printed when an experiment ends. */
import type { RoundMetrics } from '../outputs';

const mb = (bytes: number) => (bytes / 1e6).toFixed(2);

export function formatSummary(rows: RoundMetrics[], outputs: string): string {
  if (!rows.length) return 'no round finished';
  const lines = [
    'round  accuracy    loss  clients  time (s)  up (MB)  down (MB)',
    ...rows.map(
      (r) =>
        `${String(r.round).padStart(5)}  ${(r.accuracy * 100).toFixed(2).padStart(7)}%  ${r.loss.toFixed(4).padStart(6)}  ` +
        `${String(r.clients).padStart(7)}  ${(r.round_ms / 1000).toFixed(2).padStart(8)}  ${mb(r.bytes_up).padStart(7)}  ${mb(r.bytes_down).padStart(9)}`,
    ),
  ];
  const last = rows[rows.length - 1];
  const meanSeconds = rows.reduce((s, r) => s + r.round_ms, 0) / rows.length / 1000;
  const totalMb = rows.reduce((s, r) => s + r.bytes_up + r.bytes_down, 0) / 1e6;
  lines.push(
    `final accuracy ${(last.accuracy * 100).toFixed(2)}% after ${rows.length} rounds; ` +
      `${meanSeconds.toFixed(2)} s and ${(totalMb / rows.length).toFixed(2)} MB per round at the aggregator`,
    `outputs: ${outputs}`,
  );
  return lines.join('\n');
}
