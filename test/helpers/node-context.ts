import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/log/logger';
import { createNodeMetrics } from '../../src/net/metrics';
import { Peers } from '../../src/net/peers';
import { WireMeter } from '../../src/net/wire-meter';
import type { NodeContext } from '../../src/roles/role';

export const TOKEN = 'test-cluster-token-0123456789';

export function nodeContext(nodeId = 'test-node'): NodeContext {
  const dir = mkdtempSync(join(tmpdir(), 'fl-node-'));
  const meter = new WireMeter();
  return {
    nodeId,
    logger: createLogger({ nodeId, logsDir: join(dir, 'logs'), console: false, secrets: [TOKEN] }),
    meter,
    metrics: createNodeMetrics({ meter }),
    peers: new Peers(TOKEN, meter, 2000),
    logsDir: join(dir, 'logs'),
    outputsDir: join(dir, 'outputs'),
  };
}
