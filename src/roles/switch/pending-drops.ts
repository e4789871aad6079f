/**
 * Drops that come for a client while its update is being added (an encrypted sum takes a while): the
 * update counts if it makes it, so the drop waits. It applies once no request for that client's
 * update is left (a sender may send twice, or a stranger under its name), if none of them made it.
 */
export class PendingDrops<Drop> {
  private readonly adding = new Map<string, { requests: number; made: boolean; drop?: Drop }>();

  /** Updates for these clients are being added. */
  begin(clients: readonly string[]): void {
    for (const client of clients) {
      const adding = this.adding.get(client) ?? this.adding.set(client, { requests: 0, made: false }).get(client)!;
      adding.requests++;
    }
  }

  /** True when the drop waits for an update being added; false when it applies now. */
  park(client: string, drop: Drop): boolean {
    const adding = this.adding.get(client);
    if (adding) adding.drop = drop;
    return adding !== undefined;
  }

  /** A request for these clients is done (`made`: its update is in): the drops that apply now. */
  end(clients: readonly string[], made: boolean): Drop[] {
    const apply: Drop[] = [];
    for (const client of clients) {
      const adding = this.adding.get(client);
      if (!adding) continue;
      adding.requests--;
      adding.made ||= made;
      if (adding.requests > 0) continue;
      this.adding.delete(client);
      if (adding.drop !== undefined && !adding.made) apply.push(adding.drop);
    }
    return apply;
  }
}
