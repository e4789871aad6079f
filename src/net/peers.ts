/** Calls from this node to other nodes: its name and token on every request, bytes counted by the meter; HTTPS with the node's certificate under mutual TLS. */
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import axios, { AxiosError, type AxiosInstance, type AxiosRequestConfig, type AxiosResponse } from 'axios';
import { baseUrl } from '../config/address';
import type { Logger } from '../log/logger';
import { CONFIG_PROOF_HEADER, type Credentials } from './identity';
import { clientOptions, type TlsMaterial } from './tls';
import type { WireMeter } from './wire-meter';
import { ProgressDeadline } from './progress-deadline';

export interface Health {
  status: string;
  role: string | null;
  experiment: string | null;
  /** The fingerprint of the config the worker runs, null when it has none. */
  config: string | null;
  /** With status "failed": why its role cannot work. */
  error?: string;
  /** The longest step its TensorFlow.js work has held it silent, ms (model/stall.ts); unchecked: read it with silenceAllowed. */
  step_ms?: unknown;
}

/** The largest answer a node reads from another (a public key, a switch's scores of its clients). */
const MAX_ANSWER = 32 * 1024 * 1024;
/** The largest answer to a health check or a central-log batch. */
const MAX_PROBE_ANSWER = 1024 * 1024;

export class Peers {
  private readonly http: AxiosInstance;
  /**
   * Health checks and central logs go on connections of their own, left out of the byte counts at
   * both ends: what a round costs is the experiment's traffic, not its monitoring.
   */
  private readonly probes: AxiosInstance;

  private readonly tls: boolean;
  /** The experiment's connections, by transport (http, then https under mutual TLS). */
  private readonly agents: http.Agent[];
  private readonly deadlines = new WeakMap<object, ProgressDeadline>();

  /** How long a call may go without progress (timeouts.request_ms, set as a role mounts). */
  requestMs: number;

  /**
   * `localAddress`: the node's own IP, which its calls leave from, so the nodes it calls see (and
   * count bytes for) its address rather than whatever the route picks (127.0.0.1 on a loopback testbed).
   */
  constructor(private readonly credentials: Credentials, meter: WireMeter, timeoutMs = 30_000, tls?: TlsMaterial, localAddress?: string) {
    this.requestMs = timeoutMs;
    this.tls = Boolean(tls);
    const tlsOptions = tls && clientOptions(tls);
    // Only a specific IP (not 0.0.0.0, ::, a host name), and then only peers of its family: with a
    // local address Node tries no other family, and an IPv6 answer would fail to bind.
    const from = localAddress && isIP(localAddress) && !/^[0:.]+$/.test(localAddress) ? { localAddress, family: isIP(localAddress) } : {};
    // What a node answers another is JSON, a public key at most: an answer beyond these is cut off, not buffered.
    this.probes = axios.create({
      httpAgent: new http.Agent({ keepAlive: true, ...from }),
      httpsAgent: tlsOptions && new https.Agent({ ...tlsOptions, keepAlive: true, ...from }),
      maxContentLength: MAX_PROBE_ANSWER,
      proxy: false,
    });
    this.agents = [meter.agent(from), ...(tlsOptions ? [meter.agent({ ...tlsOptions, ...from })] : [])];
    this.http = axios.create({
      httpAgent: this.agents[0],
      httpsAgent: this.agents[1],
      maxBodyLength: Infinity,
      maxContentLength: MAX_ANSWER,
      proxy: false,
      // No redirects between nodes: axios then uses Node's http directly instead of follow-redirects,
      // which holds on to every request body until the answer (3 MB per encrypted update).
      maxRedirects: 0,
    });
    for (const instance of [this.http, this.probes]) {
      instance.interceptors.request.use((config) => {
        // Who this node is, on every call but the open /health: known once its config named it.
        if (!config.url?.endsWith('/health')) for (const [name, value] of Object.entries(credentials.headers())) config.headers.set(name, value);
        return config;
      });
    }
    // Probes are small: axios's timeout ends once the answer's headers are in, so a peer that trickles its answer is cut off by the wall.
    this.probes.interceptors.request.use((config) => {
      const wall = AbortSignal.timeout(config.timeout || this.requestMs);
      config.signal = config.signal ? anyOf([config.signal as AbortSignal, wall]) : wall;
      return config;
    });
    // The experiment's calls carry models: their deadline moves while their bytes do (net/progress-deadline.ts).
    const deadlines = this.deadlines;
    this.http.interceptors.request.use((config) => {
      const deadline = new ProgressDeadline(this.requestMs);
      deadlines.set(config, deadline);
      // A caller's own timeout is a whole call's limit (a push's deadline, an evaluation's window).
      const limits = [deadline.signal, ...(config.signal ? [config.signal as AbortSignal] : []), ...(config.timeout ? [AbortSignal.timeout(config.timeout)] : [])];
      config.timeout = 0; // axios's own would end a call whose one large write is still draining
      config.signal = anyOf(limits);
      config.transport = deadline.transport(this.tls ? https : http);
      if (Buffer.isBuffer(config.data) || isParts(config.data)) {
        config.headers.set('Content-Length', String([config.data].flat().reduce((n: number, part: Buffer) => n + part.length, 0)));
        config.data = deadline.body(config.data);
      }
      return config;
    });
    const stop = (config?: object) => config && deadlines.get(config)?.stop();
    this.http.interceptors.response.use(
      (res) => (stop(res.config), res),
      (err) => {
        stop((err as AxiosError).config);
        throw err;
      },
    );
  }

  private url(address: string): string {
    return baseUrl(address, this.tls);
  }

  /** What a config push to `worker` carries besides the caller's identity: the config proof, when this node holds it. */
  configProofHeaders(worker: string): Record<string, string> {
    const proof = this.credentials.configProofFor(worker);
    return proof ? { [CONFIG_PROOF_HEADER]: proof } : {};
  }

  /** `body` may be a message in parts (an array of buffers: codec's encodeParts, withMeta): streamed as one body, never joined. */
  post<T = unknown>(address: string, path: string, body: unknown, config: AxiosRequestConfig = {}): Promise<T> {
    return this.againIfClosedWhileIdle(config, (c) => this.http.post<T>(this.url(address) + path, body, c));
  }

  get<T = unknown>(address: string, path: string, config: AxiosRequestConfig = {}): Promise<T> {
    return this.againIfClosedWhileIdle(config, (c) => this.http.get<T>(this.url(address) + path, c));
  }

  /**
   * A kept-alive connection the peer closed while it sat idle fails the next call on it at once:
   * ECONNRESET or EPIPE on a reused socket (Node's documented race; seen once opening a round after
   * a round of 128 s). When the peer said nothing at all during the call (no byte of an answer, no
   * 102 for its body), it is made once more, on a new connection (the other idle ones go too: they
   * are as old), within what is left of the caller's own limit. A call that fails so on a new
   * connection, or after the peer answered, is not made again: that is the peer's doing.
   */
  private async againIfClosedWhileIdle<T>(config: AxiosRequestConfig, call: (config: AxiosRequestConfig) => Promise<AxiosResponse<T>>): Promise<T> {
    const started = performance.now();
    try {
      return (await call(config)).data;
    } catch (err) {
      if (!closedWhileIdle(err) || this.deadlines.get((err as AxiosError).config ?? {})?.heardFromPeer() !== false) throw err;
      for (const agent of this.agents) for (const socket of Object.values(agent.freeSockets).flat()) socket?.destroy();
      const left = config.timeout ? config.timeout - (performance.now() - started) : undefined;
      if (left !== undefined && left <= 0) throw err;
      return (await call(left ? { ...config, timeout: left } : config)).data;
    }
  }

  async health(address: string, timeoutMs: number): Promise<Health> {
    const res = await this.probes.get<Health>(this.url(address) + '/health', { timeout: timeoutMs });
    return res.data;
  }

  /** A request that is not the experiment's traffic (central logs): unmetered, on the probes' connections. */
  async outOfBand<T = unknown>(address: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
    const res = await this.probes.post<T>(this.url(address) + path, body, { timeout: timeoutMs });
    return res.data;
  }
}

/** ECONNRESET or EPIPE before any answer, on a socket an earlier call left open. */
function closedWhileIdle(err: unknown): boolean {
  if (!(err instanceof AxiosError) || err.response || !['ECONNRESET', 'EPIPE'].includes(err.code ?? '')) return false;
  return (err.request as { reusedSocket?: boolean } | undefined)?.reusedSocket === true;
}

const SOURCES = Symbol('sources');

/**
 * AbortSignal.any, holding its sources for as long as itself. Node holds them weakly, and a source
 * nothing else holds (AbortSignal.timeout's) can be collected with its timer, so the call's limit
 * never comes: seen on Node 20 with a peer sending 102s without end, whose parsing made garbage
 * enough (Node 24 here kept it; Node's issue tracker reports the like on other versions).
 */
function anyOf(signals: AbortSignal[]): AbortSignal {
  const combined = AbortSignal.any(signals);
  Object.defineProperty(combined, SOURCES, { value: signals });
  return combined;
}

const isParts = (body: unknown): body is readonly Buffer[] => Array.isArray(body) && body.length > 0 && body.every((part) => Buffer.isBuffer(part));

export interface PeerFailure {
  /** `refused`: the node answered with an error; `unreachable`: no answer at all. */
  kind: 'refused' | 'unreachable';
  status?: number;
  /** The answer's error, in short (`unusable model`, `forbidden`, …). */
  error?: string;
  reason: string;
  details?: unknown;
}

/** What a failed handshake means on a testbed, in words that name the fix. */
const TLS_HINTS: Record<string, string> = {
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate names another address',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet (check the clocks)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "its certificate is not from this testbed's CA",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "its certificate is not from this testbed's CA",
  DEPTH_ZERO_SELF_SIGNED_CERT: "its certificate is not from this testbed's CA",
  SELF_SIGNED_CERT_IN_CHAIN: "its certificate is not from this testbed's CA",
  CERT_SIGNATURE_FAILURE: "its certificate is not from this testbed's CA",
};

function tlsHint(err: AxiosError): string | undefined {
  const code = err.code ?? '';
  if (TLS_HINTS[code]) return `TLS refused (${code}): ${TLS_HINTS[code]}`;
  // A plain-HTTP server answering a TLS hello.
  if (code === 'EPROTO' && /wrong version number|packet length too long/i.test(err.message)) {
    return 'EPROTO: it answers plain HTTP, not TLS (start it with --tls-dir, or set "tls": false in config.json)';
  }
  // A TLS server hangs up at once on plain HTTP, on a fresh connection (a kept-alive one the peer
  // closed while idle is another matter).
  if (code === 'ECONNRESET' && err.config?.url?.startsWith('http://') && (err.request as { reusedSocket?: boolean } | undefined)?.reusedSocket === false) {
    return 'ECONNRESET: it closed the connection (if it serves TLS, started with --tls-dir, config.json needs "tls": true)';
  }
  return undefined;
}

export function describeFailure(err: unknown): PeerFailure {
  if (err instanceof AxiosError && err.response) {
    const data = err.response.data as { reason?: string; error?: string; details?: unknown } | undefined;
    const reason = data?.reason ?? data?.error ?? `HTTP ${err.response.status}`;
    return { kind: 'refused', status: err.response.status, error: typeof data?.error === 'string' ? data.error : undefined, reason, details: data?.details };
  }
  if (err instanceof AxiosError && err.code === 'ERR_CANCELED') return { kind: 'unreachable', reason: 'no whole answer in time (or this node is stopping)' };
  if (err instanceof AxiosError && /maxContentLength/.test(err.message)) return { kind: 'unreachable', reason: `its answer is larger than this node reads (${err.message})` };
  if (err instanceof AxiosError) return { kind: 'unreachable', reason: tlsHint(err) ?? err.code ?? err.message };
  return { kind: 'unreachable', reason: (err as Error)?.message ?? String(err) };
}

/** What a call that may fail needs: where it goes from, where failures are said, and whether the caller is stopping. */
export interface CallerIo {
  peers: Peers;
  logger: Logger;
  signal: AbortSignal;
  isStopped(): boolean;
}

/**
 * A call that may fail without stopping what made it (a round goes on without that node); never
 * rejects. Resolves with why it failed (logged, unless the caller is stopping), or undefined.
 */
export async function tryPost(io: CallerIo, address: string, path: string, body: unknown, headers?: Record<string, string>): Promise<string | undefined> {
  try {
    await io.peers.post(address, path, body, { headers, signal: io.signal });
    return undefined;
  } catch (err) {
    const { reason } = describeFailure(err);
    if (!io.isStopped()) io.logger.warn(`${path} to ${address} failed: ${reason}`);
    return reason;
  }
}
