/**
 * Who calls: every request between nodes names its caller (`X-FL-Node: <address>`) and proves it
 * with that node's own token (`Authorization: Bearer <token>`), and, under mutual TLS, with the
 * certificate made for that address. A node can then act only as itself.
 *
 * The cluster secret (the "cluster token" file) is the operator's. A node's token is derived from
 * it and the node's address, so the launchers hand each node its own: a *token book*, the node's
 * token and only the SHA-256 digests of the others', from which no node can compute another's.
 * A node given the secret itself (started by hand, or the aggregator, which the operator runs)
 * checks callers the same way, but could act as any node: the threat model says so.
 * The secret alone, with no node named, is the operator: it may read status and metrics.
 *
 * A node started with the secret and no book knows no aggregator until its first config: that push
 * carries a *config proof* (HMAC of the secret and the worker's address), which the aggregator's own
 * book holds for each worker, so another node of the testbed cannot be the first to configure it.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { canonicalAddress } from '../config/address';

/** The header that names the calling node. */
export const NODE_HEADER = 'x-fl-node';

/** The header of a config push that proves the pusher is the operator's aggregator (see above). */
export const CONFIG_PROOF_HEADER = 'x-fl-config-proof';

/** A node's own token: derived from the cluster secret and its address. */
export const nodeToken = (secret: string, address: string): string => createHmac('sha256', secret).update(`fl-node\0${canonicalAddress(address)}`).digest('hex');

/** What proves a config push to `worker` comes from the operator's side: only the secret makes it. */
export const configProof = (secret: string, worker: string): string => createHmac('sha256', secret).update(`fl-config\0${canonicalAddress(worker)}`).digest('hex');

const digestOf = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

/** Constant-time equality of two digests (or tokens made into digests). */
const same = (a: string, b: string): boolean => timingSafeEqual(Buffer.from(digestOf(a)), Buffer.from(digestOf(b)));

/** A node's token book's file name in a folder of them (a process of several nodes reads its own so). */
export const bookFileName = (address: string): string => `${canonicalAddress(address).replace(':', '-')}.json`;

/** What the launchers hand a node: its own token, and how to know every other node's. */
export interface TokenBook {
  node: string;
  token: string;
  /** Every node of the testbed by address (this one too): the SHA-256 (hex) of its token. */
  peers: Record<string, string>;
  /** The SHA-256 of the cluster secret: its holder, the operator, may read status and metrics. */
  operator: string;
  /** The one node that may push this node its config. */
  aggregator: string;
  /** The aggregator's book only: each worker's config proof, for workers started with the secret and no book. */
  config_proofs?: Record<string, string>;
}

/** The book for `node`, among `nodes` (every node of the testbed, the aggregator included). */
export function tokenBook(secret: string, node: string, nodes: Iterable<string>, aggregator: string): TokenBook {
  const all = [...nodes];
  const peers = Object.fromEntries(all.map((address) => [canonicalAddress(address), digestOf(nodeToken(secret, address))]));
  const book: TokenBook = { node: canonicalAddress(node), token: nodeToken(secret, node), peers, operator: digestOf(secret), aggregator: canonicalAddress(aggregator) };
  if (book.node === book.aggregator) book.config_proofs = Object.fromEntries(all.map((address) => [canonicalAddress(address), configProof(secret, address)]));
  return book;
}

/** A caller that proved who it is. */
export type Caller = { node: string } | { operator: true };

export const callerName = (caller: Caller): string => ('node' in caller ? caller.node : 'the operator');

/** What a node proves itself with, and knows its callers by. */
export class Credentials {
  private self?: string;

  private constructor(
    /** Given by a launcher: the node's own token and the others' digests. */
    private readonly book?: TokenBook,
    /** Given the cluster secret itself. */
    private readonly secret?: string,
  ) {
    this.self = book?.node;
  }

  static fromBook(book: TokenBook): Credentials {
    return new Credentials(book);
  }

  /** `self`: the node's address when it is known already (the aggregator's, from config.json). */
  static fromSecret(secret: string, self?: string): Credentials {
    const credentials = new Credentials(undefined, secret);
    if (self) credentials.bind(self);
    return credentials;
  }

  /** A token file's content: a token book (JSON), or the cluster secret. */
  static parse(text: string, from: string): Credentials {
    const trimmed = text.trim();
    if (!trimmed.startsWith('{')) return Credentials.fromSecret(trimmed);
    let book: TokenBook;
    try {
      book = JSON.parse(trimmed);
    } catch (err) {
      throw new Error(`${from}: not a token book (JSON) nor a cluster token: ${(err as Error).message}`);
    }
    const wellFormed = ['node', 'token', 'operator', 'aggregator'].every((key) => typeof book[key as keyof TokenBook] === 'string') && book.peers && typeof book.peers === 'object';
    if (!wellFormed) throw new Error(`${from}: a token book holds "node", "token", "peers", "operator" and "aggregator"`);
    return Credentials.fromBook(book);
  }

  /**
   * Whether `caller` may push this node a config for `address` naming `aggregator` as its
   * aggregator: only that aggregator, and only the one the launcher named in the book; without a
   * book, once a node has a config, only that config's aggregator (`current`), and before, only one
   * with the config proof for `address`.
   */
  mayConfigure(caller: Caller, config: { address: string; aggregator: string }, current: string | undefined, proof: string | undefined): boolean {
    if (!('node' in caller) || caller.node !== canonicalAddress(config.aggregator)) return false;
    const pinned = this.book?.aggregator ?? current;
    if (pinned !== undefined) return pinned === caller.node;
    return proof !== undefined && same(proof, configProof(this.secret!, config.address));
  }

  /** The config proof for `worker`, when this node can make or hand it (the aggregator). */
  configProofFor(worker: string): string | undefined {
    if (this.secret !== undefined) return configProof(this.secret, worker);
    return this.book?.config_proofs?.[canonicalAddressOrUndefined(worker) ?? ''];
  }

  /** Whether this node holds the cluster secret (and could act as any node). */
  get holdsSecret(): boolean {
    return this.secret !== undefined;
  }

  /** The node this is, once known. */
  get node(): string | undefined {
    return this.self;
  }

  /**
   * The node learns its address from its config. A book is one node's: a config for another address
   * is refused (a launcher's mistake, or a config meant for another machine).
   */
  bind(address: string): void {
    const named = canonicalAddress(address);
    if (this.book && this.book.node !== named) throw new Error(`this node's token book is ${this.book.node}'s; the config is for ${named}`);
    this.self = named;
  }

  /** What this node's calls carry (nothing before it knows who it is: it calls no one before its config). */
  headers(): Record<string, string> {
    if (!this.self) return {};
    const token = this.book ? this.book.token : nodeToken(this.secret!, this.self);
    return { Authorization: `Bearer ${token}`, [NODE_HEADER]: this.self };
  }

  /** What must never reach a log: the secret, and this node's own token. */
  secrets(): string[] {
    const own = this.self && (this.book ? this.book.token : nodeToken(this.secret!, this.self));
    return [this.secret, own].filter((s): s is string => Boolean(s));
  }

  /** The operator's token (the secret itself), when this node holds it. */
  operatorToken(): string | undefined {
    return this.secret;
  }

  /** Who a request comes from, by its bearer token and the node it names; a reason when it proves no one. */
  callerOf(bearer: string | undefined, named: string | undefined): Caller | { refused: string } {
    if (!bearer) return { refused: 'missing bearer token (Authorization: Bearer <this node\'s token>)' };
    if (!named) return this.isOperator(bearer) ? { operator: true } : { refused: `a node's call names it in ${NODE_HEADER}; the token alone is no operator's` };
    const node = canonicalAddressOrUndefined(named);
    if (!node) return { refused: `${NODE_HEADER}: "${named}" is not an address` };
    if (this.book) {
      const digest = this.book.peers[node];
      if (digest === undefined) return { refused: `${node} is not a node of this testbed` };
      return same(digestOf(bearer), digest) ? { node } : { refused: notTheirs(node) };
    }
    return same(bearer, nodeToken(this.secret!, node)) ? { node } : { refused: notTheirs(node) };
  }

  private isOperator(bearer: string): boolean {
    return this.book ? same(digestOf(bearer), this.book.operator) : same(bearer, this.secret!);
  }
}

const notTheirs = (node: string) => `the token is not ${node}'s here (a token of another testbed, or a token book made before a change of config.json)`;

function canonicalAddressOrUndefined(text: string): string | undefined {
  try {
    return canonicalAddress(text);
  } catch {
    return undefined;
  }
}
