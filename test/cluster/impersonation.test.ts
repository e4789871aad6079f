/**
 * One client's identity used to act as others, during a real run, over mutual TLS and plain HTTP.
 * The attacker holds client 1's own credentials: its token book (plain HTTP); under TLS its
 * certificate and key, the CA, and the cluster token besides (the worst case: it can compute every
 * node's token, but cannot prove a certificate it does not hold). Every impersonation is refused,
 * named in the aggregator's log, and changes nothing: each victim is still in the last round.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildModel, modelId } from '../../src/model/model';
import { expectedParameterCount } from '../../src/model/size';
import { nodeToken, NODE_HEADER, type TokenBook } from '../../src/net/identity';
import { encode, Kind, WIRE_CONTENT_TYPE } from '../../src/wire/codec';
import type { RoundMetrics } from '../../src/outputs';
import { Testbed, waitFor } from '../helpers/cluster';

const ROUNDS = 12;

interface Answer {
  status: number;
  body: any;
}

/**
 * Calls as the attacker: `send` names `as` (itself, unless it lies) with `token`; `read` is the
 * operator's (the cluster token, no node named). Under TLS both go with client 1's certificate.
 */
function attackerOf(testbed: Testbed, tls: boolean) {
  const [self] = testbed.addresses('client');
  const book = JSON.parse(readFileSync(testbed.tokenFile(self), 'utf8')) as TokenBook;
  const id = self.replace(':', '-');
  const files = join(testbed.state, 'tls', id);
  const material = tls ? { ca: readFileSync(join(files, 'ca.pem')), cert: readFileSync(join(files, `${id}.pem`)), key: readFileSync(join(files, `${id}-key.pem`)) } : undefined;
  const call = (address: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Answer> => {
    const method = body === undefined ? 'GET' : 'POST';
    const wire = Buffer.isBuffer(body);
    const text = body === undefined ? undefined : wire ? body : JSON.stringify(body);
    const all = { ...headers, ...(text ? { 'Content-Type': wire ? WIRE_CONTENT_TYPE : 'application/json' } : {}) };
    if (!material) return fetch(`http://${address}${path}`, { method, headers: all, body: text }).then(async (res) => ({ status: res.status, body: await res.json() }));
    const [host, port] = address.split(':');
    return new Promise((resolve, reject) => {
      const req = https.request({ host, port, path, method, headers: all, ...material, agent: false }, (res) => {
        let data = '';
        res.on('data', (d) => (data += d)).on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(data) }));
      });
      req.on('error', reject).end(text);
    });
  };
  return {
    self,
    send: (address: string, path: string, body: unknown, as = self, token = book.token) => call(address, path, { Authorization: `Bearer ${token}`, [NODE_HEADER]: as }, body),
    read: (address: string, path: string) => call(address, path, { Authorization: `Bearer ${testbed.token}` }),
  };
}

for (const tls of [true, false]) {
  describe(`impersonations during a run, ${tls ? 'over mutual TLS' : 'over plain HTTP'}`, () => {
    it('refuses each, changes nothing, and every victim is in the last round', { timeout: 240_000 }, async () => {
      const testbed = new Testbed({ nodes: 6, switches: 1, rounds: ROUNDS, he: false, experiment: `impersonation-${tls ? 'tls' : 'plain'}`, trainSize: 'all' }, (config) => {
        config.model = { architecture: 'mlp', hidden_units: 32 };
        config.tls = tls;
      });
      try {
        const up = await testbed.up();
        assert.equal(up.code, 0, up.stdout + up.stderr);
        const agg = testbed.launchAggregator(['--log-level', 'info']);
        const [aggregator] = testbed.addresses('aggregator');
        const [sw] = testbed.addresses('switch');
        const [, second, third] = testbed.addresses('client');
        const attacker = attackerOf(testbed, tls);
        const status = async () => (await attacker.read(aggregator, '/a/status').catch(() => undefined))?.body;
        // Mid-run, with rounds left: the victims must take part in them.
        await waitFor(async () => (await status())?.round >= 2, 120_000).catch(() => assert.fail(`round 2 never started:\n${agg.output}`));
        const { round, attempt } = await status();
        assert.ok(round < ROUNDS, `round ${round} of ${ROUNDS}: no round left to show the victims in`);
        const config = (await attacker.read(third, '/config')).body;

        const checkin = await attacker.send(aggregator, '/a/checkin', { client: second, samples: 1e9, model: 999, ticket: 'ab'.repeat(16) });
        assert.equal(checkin.status, 403, JSON.stringify(checkin.body));
        assert.equal(checkin.body.reason, `client names ${second}, but the call comes from ${attacker.self}: a node may act only as itself`);

        // Twice: the same refusal is logged once (below).
        await attacker.send(aggregator, '/a/withheld', { round, attempt, switch: sw, clients: [], reason: 'forged' });
        const withheld = await attacker.send(aggregator, '/a/withheld', { round, attempt, switch: sw, clients: [], reason: 'forged' });
        assert.equal(withheld.status, 403);
        assert.equal(withheld.body.reason, `POST /a/withheld takes calls from a switch that reports to the aggregator, not from ${attacker.self}`);

        const push = await attacker.send(third, '/config', { ...config, experiment: 'hijacked' });
        assert.equal(push.status, 403);
        assert.equal(push.body.reason, `only this node's aggregator pushes its config; the call comes from ${attacker.self}`);

        const declined = await attacker.send(aggregator, '/a/declined', { round, attempt, client: second, reason: 'forged' });
        assert.equal(declined.status, 403);

        // A sum in the switch's name, and an update in the second client's, for the round under way.
        const parameters = expectedParameterCount(config.settings.model);
        const built = buildModel(config.settings.model, config.settings.data.seed);
        const id = modelId(built);
        built.dispose();
        const message = (sender: string, kind: Kind, clients?: string[]) =>
          encode({ kind, round, modelId: id, contributors: clients?.length ?? 1, weight: 1e9, sender, meta: { attempt, ...(clients ? { clients } : {}) }, parameters: new Float32Array(parameters).fill(3e4) });
        const sum = await attacker.send(aggregator, '/a/receive', message(sw, Kind.WeightedSum, [second, third]));
        assert.equal(sum.status, 403);
        assert.equal(sum.body.reason, `POST /a/receive takes calls from a switch or client that reports to the aggregator, not from ${attacker.self}`);
        // The attacker is a client of this switch: while its own update is on its way up, the switch
        // takes no other call of it on the route (429, which changes nothing too), so it tries again.
        let update = await attacker.send(sw, '/s/receive', message(second, Kind.Update));
        await waitFor(async () => update.status !== 429 || ((update = await attacker.send(sw, '/s/receive', message(second, Kind.Update))), false), 60_000);
        assert.equal(update.status, 403);
        assert.equal(update.body.reason, `the message's sender names ${second}, but the call comes from ${attacker.self}: a node may act only as itself`);

        // Naming the victim outright: its own token is not the attacker's to show; under TLS, not even with the cluster token.
        if (tls) {
          const secondToken = nodeToken(testbed.token, second);
          const named = await attacker.send(aggregator, '/a/checkin', { client: second, samples: 1, model: 999, ticket: 'ab'.repeat(16) }, second, secondToken);
          assert.equal(named.status, 403);
          assert.equal(named.body.reason, `the call names ${second}, but its certificate is ${attacker.self}'s: a node may act only as itself`);
          const asAggregator = await attacker.send(third, '/config', config, aggregator, nodeToken(testbed.token, aggregator));
          assert.equal(asAggregator.status, 403);
        } else {
          const named = await attacker.send(aggregator, '/a/checkin', { client: second, samples: 1, model: 999, ticket: 'ab'.repeat(16) }, second);
          assert.equal(named.status, 401);
          assert.match(named.body.reason!, new RegExp(`^the token is not ${second.replace(/\./g, '\\.')}'s here`));
          const asAggregator = await attacker.send(third, '/config', config, aggregator);
          assert.equal(asAggregator.status, 401);
        }

        const after = (await status())?.round;
        assert.ok(after !== undefined && after < ROUNDS, `the attacks ended in round ${after} of ${ROUNDS}: rounds must remain to show the victims in`);

        assert.equal(await agg.exited, 0, agg.output);
        const rows: RoundMetrics[] = JSON.parse(readFileSync(join(testbed.outputs, `impersonation-${tls ? 'tls' : 'plain'}`, 'metrics.json'), 'utf8')).rounds;
        assert.equal(rows.length, ROUNDS);
        assert.deepEqual([rows.at(-1)!.clients, rows.at(-1)!.missing], [4, []], 'every client, the victims included, in the last round');
        assert.deepEqual(rows.filter((r) => r.round > round).map((r) => r.clients), rows.filter((r) => r.round > round).map(() => 4), 'and in every round after the attacks');
        assert.doesNotMatch(agg.output, /going on without|failed|left out|forwards nothing/);
        assert.equal((await attacker.read(third, '/config')).body.experiment, config.experiment, 'the third client runs the config it had');
        const log = readFileSync(join(testbed.logs, `${aggregator.replace(':', '-')}.log`), 'utf8');
        assert.match(log, new RegExp(`refused POST /a/checkin from ${attacker.self.replace(/\./g, '\\.')}: client names ${second.replace(/\./g, '\\.')}`));
        assert.equal(log.split('refused POST /a/withheld').length - 1, 1, 'each refusal is logged once');
      } finally {
        await testbed.down();
      }
    });
  });
}
