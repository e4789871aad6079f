/** Node addresses as config.json writes them: `IP` or `IP:port` (a host name works too). */

export const DEFAULT_PORT = 5000;

export interface Address {
  host: string;
  port: number;
}

const HOST = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)$/;

/** Why `text` is not an address, or undefined when it is one. */
export function addressProblem(text: string): string | undefined {
  const [host, port, extra] = text.split(':');
  if (extra !== undefined) return `"${text}" has more than one ':' (expected IP or IP:port)`;
  if (!host || !HOST.test(host)) return `"${text}" is not an IP address or host name (expected IP or IP:port)`;
  if (/^\d+(\.\d+){3}$/.test(host) && host.split('.').some((octet) => Number(octet) > 255)) {
    return `"${text}" has an octet above 255`;
  }
  if (port !== undefined) {
    const n = Number(port);
    if (!/^\d+$/.test(port) || n < 1 || n > 65535) return `"${text}" has port "${port}" (expected 1-65535)`;
  }
  return undefined;
}

export function parseAddress(text: string, defaultPort = DEFAULT_PORT): Address {
  const problem = addressProblem(text);
  if (problem) throw new Error(problem);
  const [host, port] = text.split(':');
  return { host, port: port === undefined ? defaultPort : Number(port) };
}

/** The canonical `host:port` form, so `10.10.1.3` and `10.10.1.3:5000` name the same node. */
export function canonicalAddress(text: string, defaultPort = DEFAULT_PORT): string {
  const { host, port } = parseAddress(text, defaultPort);
  return `${host}:${port}`;
}

/** A key that names a node by its address, or (a bare IP) every node on that machine: `links` keys. */
export function namesNode(key: string, address: string): boolean {
  return key.includes(':') ? canonicalAddress(key) === address : address.split(':')[0] === key;
}

export function baseUrl(address: string, tls = false): string {
  return `${tls ? 'https' : 'http'}://${canonicalAddress(address)}`;
}
