/** The cluster token: compared by value, and scrubbed from every log line. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tokensMatch } from '../../../src/net/auth';
import { createLogger } from '../../../src/log/logger';
import { tempDir } from '../../helpers/temp-dir';

describe('secrets', () => {
  it('compares tokens by value', () => {
    assert.ok(tokensMatch('same-token-value', 'same-token-value'));
    assert.ok(!tokensMatch('same-token-value', 'same-token-valuE'));
    assert.ok(!tokensMatch('short', 'same-token-value'));
  });

  it('scrubs the token from every log line', async () => {
    const dir = tempDir('logger-');
    const secret = 'super-secret-cluster-token';
    const logger = createLogger({ nodeId: 'n1', logsDir: dir, secrets: [secret], console: false });
    logger.info(`header was Bearer ${secret}`, { auth: secret });
    await new Promise((r) => logger.on('finish', r).end());
    const text = readFileSync(join(dir, 'n1.log'), 'utf8');
    assert.match(text, /header was Bearer \[redacted\]/);
    assert.ok(!text.includes(secret));
  });
});
