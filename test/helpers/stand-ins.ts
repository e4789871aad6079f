/**
 * Stand-in switches for an aggregator mounted in the test's own process: each listens on its
 * switch's address and takes any call (a round opening, a model), so the aggregator opens its rounds
 * and waits for sums the test sends in the switch's name.
 */
import http from 'node:http';
import { parseAddress } from '../../src/config/address';
import type { NodeConfig } from '../../src/config/node-config';

export async function standInSwitches(nodes: readonly NodeConfig[]): Promise<http.Server[]> {
  const servers: http.Server[] = [];
  for (const config of nodes.filter((n) => n.type === 'switch')) {
    const { host, port } = parseAddress(config.address);
    const server = http.createServer((req, res) => (req.resume(), res.setHeader('Content-Type', 'application/json'), res.end('{"status":"open"}')));
    await new Promise<void>((resolve) => server.listen(port, host, resolve));
    servers.push(server);
  }
  return servers;
}
