/**
 * What clients say at check-in (POST /a/checkin) about what they hold, judged against the
 * experiment: one whose data or model does not fit is named with why, and is never selected. What
 * fitting clients said is kept: their classes for the report, and their model ids until this node
 * has loaded its own model to compare them with.
 */
import { inputOf } from '../../config/data-schema';
import type { Settings } from '../../config/schema';
import type { Checkin } from '../../wire/control';

const anotherModel = (theirs: number, own: number) => `its model is another (id ${theirs}; the aggregator's is ${own}): every node must load the same model (model.path)`;

/** What a client says of its data and model at check-in: the same every time, in one experiment. */
const claimsOf = ({ samples, shape, histogram, model }: Checkin) => JSON.stringify({ samples, shape, histogram, model });

export class CheckIns {
  /** Each client's samples per class, as it said at check-in: the report's class chart. */
  readonly histograms = new Map<string, number[]>();
  /** What each client said at its first check-in (its data and model do not change during an experiment). */
  private readonly first = new Map<string, string>();
  /** Each client's ticket, from its latest check-in: the pass of the model it is selected for is made with it (protocol/client.ts). */
  private readonly tickets = new Map<string, string>();
  /** Each client's model id, as it said at check-in (checked once this node has its own). */
  private readonly modelOf = new Map<string, number>();
  private readonly input: ReturnType<typeof inputOf>;
  /** Under DP every client weighs 1: one client moves the round's sum by at most the clip. */
  private readonly uniform: boolean;

  constructor(settings: Settings) {
    this.input = inputOf(settings.data);
    this.uniform = settings.dp !== undefined;
  }

  /** Why a client of the experiment does not fit it, or undefined (`ownModel`: this node's model id, once loaded). */
  misfitOf(checkin: Checkin, ownModel: number | undefined): string | undefined {
    const { client, shape, histogram, model, samples } = checkin;
    if (model !== undefined) this.modelOf.set(client, model);
    const { input } = this;
    const misfit =
      model !== undefined && ownModel !== undefined && model !== ownModel
        ? anotherModel(model, ownModel)
        : shape && shape.join('x') !== input.shape.join('x')
          ? `its samples have shape [${shape.join(', ')}]; the model takes [${input.shape.join(', ')}] (data.shape)`
          : histogram && histogram.length !== input.classes
            ? `it counts ${histogram.length} classes; the model tells ${input.classes} apart (data.classes)`
            : this.uniform && samples !== 1
              ? `it weighs ${samples}; with dp on every client weighs 1 (so that one client moves a round's sum by at most the clip)`
              : undefined;
    if (!misfit && histogram) this.histograms.set(client, histogram);
    return misfit;
  }

  /**
   * Why a check-in contradicts the client's first accepted one (its samples, its data's shape or
   * classes, its model), or undefined: a client's weight is what it said first, for the whole
   * experiment. A restart does not clear it: a client can say it restarted, and a client whose data
   * changes while the experiment runs is a new experiment's.
   */
  contradiction(checkin: Checkin): string | undefined {
    const first = this.first.get(checkin.client);
    const claims = claimsOf(checkin);
    if (first === undefined || first === claims) return undefined;
    return `${checkin.client} checked in first with ${first}, now with ${claims}: its data and model do not change while it runs`;
  }

  /** The samples a client said it holds at its first check-in taken. */
  samplesOf(client: string): number | undefined {
    const first = this.first.get(client);
    return first === undefined ? undefined : (JSON.parse(first) as { samples: number }).samples;
  }

  /** A check-in taken: the first of the client's is what it holds from now on; its ticket is the latest. */
  accepted(checkin: Checkin): void {
    if (!this.first.has(checkin.client)) this.first.set(checkin.client, claimsOf(checkin));
    this.tickets.set(checkin.client, checkin.ticket);
  }

  /** The ticket a client checked in with last. */
  ticketOf(client: string): string | undefined {
    return this.tickets.get(client);
  }

  /** The clients that checked in with another model while this node was loading its own. */
  otherModels(own: number): [client: string, reason: string][] {
    return [...this.modelOf].filter(([, id]) => id !== own).map(([client, id]) => [client, anotherModel(id, own)]);
  }
}
