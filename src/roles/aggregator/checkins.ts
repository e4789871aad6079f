/**
 * Check-ins as the aggregator reads them (POST /a/checkin): a client is free for a round and says
 * what it holds. One whose data or model does not fit the experiment is named with why, and is
 * never selected. What fitting clients said is kept: their classes for the report, and their model
 * ids until this node has loaded its own model to compare them with.
 */
import { inputOf, type Settings } from '../../config/schema';
import { HttpError } from '../../net/errors';
import type { Topology } from '../../topology/tree';
import { checkinSchema, readControl, type Checkin } from '../../wire/control';

const anotherModel = (theirs: number, own: number) => `its model is another (id ${theirs}; the aggregator's is ${own}): every node must load the same model (model.path)`;

export class CheckIns {
  /** Each client's samples per class, as it said at check-in: the report's class chart. */
  readonly histograms = new Map<string, number[]>();
  /** Each client's model id, as it said at check-in (checked once this node has its own). */
  private readonly modelOf = new Map<string, number>();
  private readonly input: ReturnType<typeof inputOf>;

  constructor(
    settings: Settings,
    private readonly topology: Topology,
  ) {
    this.input = inputOf(settings.data);
  }

  /** The check-in, read; with why its client does not fit the experiment (`ownModel`: this node's model id, once loaded). */
  read(body: unknown, ownModel: number | undefined): Checkin & { misfit?: string } {
    const checkin = readControl(checkinSchema, body, 'expected {"client": "<address>", "samples": <count>}');
    const { client, shape, histogram, model } = checkin;
    // Nothing is kept for a name that is not the experiment's.
    if (!this.topology.isClient(client)) throw new HttpError(403, 'forbidden', `${client} is not a client of this experiment`);
    if (model !== undefined) this.modelOf.set(client, model);
    const { input } = this;
    const misfit =
      model !== undefined && ownModel !== undefined && model !== ownModel
        ? anotherModel(model, ownModel)
        : shape && shape.join('x') !== input.shape.join('x')
          ? `its samples have shape [${shape.join(', ')}]; the model takes [${input.shape.join(', ')}] (data.shape)`
          : histogram && histogram.length !== input.classes
            ? `it counts ${histogram.length} classes; the model tells ${input.classes} apart (data.classes)`
            : undefined;
    if (!misfit && histogram) this.histograms.set(client, histogram);
    return misfit ? { ...checkin, misfit } : checkin;
  }

  /** The clients that checked in with another model while this node was loading its own. */
  otherModels(own: number): [client: string, reason: string][] {
    return [...this.modelOf].filter(([, id]) => id !== own).map(([client, id]) => [client, anotherModel(id, own)]);
  }
}
