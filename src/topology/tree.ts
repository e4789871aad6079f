/**
 * The reporting tree: clients report to a switch or to the root, switches to another switch or to
 * the root, to any depth (clients, rack switches, a spine switch, the aggregator). The aggregator
 * holds the whole tree, a switch the part beneath it. This is the one module that walks it: every
 * question about who is above or beneath whom is a method here.
 *
 * Built from one map, every node beneath the root to the node it reports to. A switch is a node
 * that others report to (config.json's checks, `./checks.ts`, make sure every switch has a client
 * beneath it); the rest are clients.
 */
export class Topology {
  private readonly upstream: ReadonlyMap<string, string>;
  private readonly children = new Map<string, string[]>();
  /** Every client beneath the root, in the map's order. */
  readonly clients: readonly string[];
  /** Every switch beneath the root, in the map's order. */
  readonly switches: readonly string[];

  constructor(
    /** The node the tree is seen from: the aggregator, or a switch for the part beneath it. */
    readonly root: string,
    upstream: Readonly<Record<string, string>> | ReadonlyMap<string, string>,
  ) {
    this.upstream = upstream instanceof Map ? new Map(upstream) : new Map(Object.entries(upstream));
    for (const [node, above] of this.upstream) this.children.set(above, [...(this.children.get(above) ?? []), node]);
    const nodes = [...this.upstream.keys()];
    this.switches = nodes.filter((node) => this.children.has(node));
    this.clients = nodes.filter((node) => !this.children.has(node));
  }

  /** The map it was built from, as a config ships it. */
  toRecord(): Record<string, string> {
    return Object.fromEntries(this.upstream);
  }

  has(node: string): boolean {
    return this.upstream.has(node);
  }

  isClient(node: string): boolean {
    return this.upstream.has(node) && !this.children.has(node);
  }

  isSwitch(node: string): boolean {
    return this.upstream.has(node) && this.children.has(node);
  }

  /** Whether a node reports to the root itself. */
  reportsToRoot(node: string): boolean {
    return this.upstream.get(node) === this.root;
  }

  /** A switch that reports to the root itself. */
  isSwitchBelowRoot(node: string): boolean {
    return this.isSwitch(node) && this.reportsToRoot(node);
  }

  /** Where a node reports: a switch, or the root. */
  upstreamOf(node: string): string | undefined {
    return this.upstream.get(node);
  }

  /** The nodes that report to `node` itself (the root's: the switches and clients right beneath it). */
  childrenOf(node: string): string[] {
    return [...(this.children.get(node) ?? [])];
  }

  /** The switches a node's update passes through on its way to the root, nearest first (none when it reports to the root). */
  chainOf(node: string): string[] {
    const chain: string[] = [];
    for (let at = this.upstream.get(node); at !== undefined && at !== this.root && !chain.includes(at); at = this.upstream.get(at)) chain.push(at);
    return chain;
  }

  /** Who hands a node's update to the root: the top switch of its chain, or the node itself. */
  reporterOf(node: string): string {
    return this.chainOf(node).at(-1) ?? node;
  }

  /** The part of the tree beneath `node`, as a map like the one it was built from (what a switch is shipped). */
  subtree(node: string): Record<string, string> {
    return Object.fromEntries([...this.upstream].filter(([beneath]) => this.chainOf(beneath).includes(node)));
  }

  /** Every client whose updates pass through `node` (every client, for the root). */
  clientsBeneath(node: string): string[] {
    if (node === this.root) return [...this.clients];
    return this.clients.filter((client) => this.chainOf(client).includes(node));
  }

  /** The switch deepest in the tree that each of `nodes` is, or reports through; undefined when none is. */
  switchOver(nodes: readonly string[]): string | undefined {
    const holdsAll = (sw: string) => nodes.every((node) => node === sw || this.chainOf(node).includes(sw));
    return this.switches.filter(holdsAll).sort((a, b) => this.chainOf(b).length - this.chainOf(a).length)[0];
  }

  /** The clients of `clients` that can take part now: neither they nor a switch they report through is down. */
  reachable(clients: Iterable<string>, isDown: (node: string) => boolean): string[] {
    return [...clients].filter((client) => this.isClient(client) && !isDown(client) && !this.chainOf(client).some(isDown));
  }

  /** The clients whose every hop to the root is in `up` (the rest cannot take part). */
  clientsReaching(up: ReadonlySet<string>): string[] {
    return this.reachable(this.clients, (node) => !up.has(node));
  }

  /**
   * The switches that never reach the root, each cycle once: its switches in the map's order,
   * starting with the first. Empty for a tree.
   */
  cycles(): string[][] {
    const cycles: string[][] = [];
    for (const sw of this.switches) {
      const path = [sw, ...this.chainOf(sw).filter((s) => s !== sw)]; // in a circle, the chain comes back to sw
      const last = this.upstream.get(path.at(-1)!);
      if (last === this.root || last === undefined) continue;
      const cycle = path.slice(path.indexOf(last));
      if (!cycle.includes(sw)) continue; // it leads into a cycle that the cycle's own switches name
      const first = Math.min(...cycle.map((s) => this.switches.indexOf(s)));
      if (this.switches[first] !== sw) continue; // named from its first switch only
      const start = cycle.indexOf(sw);
      cycles.push([...cycle.slice(start), ...cycle.slice(0, start)]);
    }
    return cycles;
  }
}

/** The route of a node's upstream for `path`: the aggregator's (/a) or a switch's (/s). */
export const upstreamRoute = (node: { upstream: string; aggregator: string }, path: 'receive' | 'withheld') =>
  `${node.upstream === node.aggregator ? '/a' : '/s'}/${path}`;
