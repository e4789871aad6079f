/** The table printed when an experiment ends. */
import type { RoundMetrics } from '../outputs';
import { overFloor, type RoundFloor } from '../report/floor';

const mb = (bytes: number) => (bytes / 1e6).toFixed(2);

/** `floors`: each round's floor (report/floor.ts), for its time over it. */
export function formatSummary(rows: RoundMetrics[], outputs: string, floors?: ReadonlyMap<number, RoundFloor>): string {
  if (!rows.length) return 'no round finished';
  const lines = [
    `round  accuracy    loss  clients  time (s)  up (MB)  down (MB)${floors ? '  ÷ floor' : ''}`,
    ...rows.map(
      (r) =>
        `${String(r.round).padStart(5)}  ${(r.accuracy * 100).toFixed(2).padStart(7)}%  ${r.loss.toFixed(4).padStart(6)}  ` +
        `${String(r.clients).padStart(7)}  ${(r.round_ms / 1000).toFixed(2).padStart(8)}  ${mb(r.bytes_up).padStart(7)}  ${mb(r.bytes_down).padStart(9)}` +
        (floors ? `  ${overFloor(r, floors.get(r.round)).padStart(7)}` : ''),
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
