/**
 * What `main.js agg` shows while it runs. On a terminal: a bar for the experiment (rounds done,
 * latest accuracy) and one for the round in flight (clients reported so far), with the log lines
 * printed above them; at the end the bars go and the summary table takes their place. Piped to a
 * file: the lines alone, one per round. Quiet: nothing but the summary.
 */
import type { MultiBar, SingleBar } from 'cli-progress';
import { roundView } from '../roles/aggregator/view';
import type { AggregatorRole } from '../roles/aggregator';

export interface Progress {
  /** A line for the person running the aggregator. */
  print(line: string): void;
  /** Follows the experiment's rounds with the bars. */
  follow(role: AggregatorRole): void;
  stop(): void;
}

export type ProgressMode = 'bars' | 'lines' | 'quiet';

export function progressMode(quiet: boolean, stream: NodeJS.WriteStream = process.stdout): ProgressMode {
  return quiet ? 'quiet' : stream.isTTY ? 'bars' : 'lines';
}

export function createProgress(mode: ProgressMode): Progress {
  if (mode === 'quiet') return { print: () => undefined, follow: () => undefined, stop: () => undefined };
  if (mode === 'lines') return { print: (line) => console.log(line), follow: () => undefined, stop: () => undefined };
  return new ProgressBars();
}

class ProgressBars implements Progress {
  private readonly bars: MultiBar = ProgressBars.multiBar();
  private experiment?: SingleBar;
  private round?: SingleBar;
  private unfollow?: () => void;

  /** cli-progress is loaded for a terminal only: a worker, or an aggregator writing to a file, never draws bars. */
  private static multiBar(): MultiBar {
    const { MultiBar, Presets } = require('cli-progress') as typeof import('cli-progress');
    const options = { format: '{label} [{bar}] {value}/{total} {detail}', hideCursor: true, clearOnComplete: true, stopOnComplete: false, autopadding: true };
    return new MultiBar(options, Presets.shades_classic);
  }

  /** Above the bars once they are drawn; a plain line before. */
  readonly print = (line: string): void => {
    if (!this.experiment) return console.log(line);
    this.bars.log(`${line}\n`);
    this.bars.update(); // drawn now: a line logged just before stop() would otherwise be lost
  };

  follow(role: AggregatorRole): void {
    const update = () => {
      const p = roundView(role);
      const accuracy = p.accuracy === null ? '' : `accuracy ${(p.accuracy * 100).toFixed(2)}%`;
      this.experiment ??= this.bars.create(p.rounds, 0, { label: 'rounds', detail: '' });
      this.round ??= this.bars.create(1, 0, { label: 'round ', detail: '' });
      this.experiment.update(p.rounds_done, { detail: accuracy });
      this.round.setTotal(Math.max(1, p.selected));
      const stage = p.finished ? 'finished' : `round ${p.round}: ${p.stage}`;
      this.round.update(p.finished ? Math.max(1, p.selected) : p.reported, { detail: `clients reported (${stage})` });
    };
    update();
    role.changes.on('change', update);
    this.unfollow = () => role.changes.off('change', update);
  }

  stop(): void {
    this.unfollow?.();
    this.bars.stop();
  }
}
