/** The iteration log every node keeps: the original shape after every round, bytes from the meter, and restarts. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { IterationLog } from '../../../src/log/iteration-log';
import { Peers } from '../../../src/net/peers';
import { WireMeter } from '../../../src/net/wire-meter';
import { rawServer } from '../../helpers/raw-server';
import { Credentials } from '../../../src/net/identity';
import { tempDir } from '../../helpers/temp-dir';

describe('iteration log', () => {
  it('writes the original shape after every round, bytes from the meter', async () => {
    const dir = tempDir('iterlog-');
    const meter = new WireMeter();
    const server = await rawServer('{}');
    const log = new IterationLog(dir, 'node-1', 'exp', meter);
    log.beginRound(1);
    await new Peers(Credentials.fromSecret('a-token-of-some-length'), meter, 5000).post(`127.0.0.1:${server.port}`, '/', { a: 1 });
    await new Promise((r) => setTimeout(r, 50));
    log.endRound({ accuracy: 0.9 });
    const written = JSON.parse(readFileSync(log.file, 'utf8'));
    assert.equal(written.iteration.length, 1);
    const [entry] = written.iteration;
    assert.equal(entry.byte_send, server.counts().received);
    assert.equal(entry.byte_received, server.counts().sent);
    assert.ok(Date.parse(entry.start_time) <= Date.parse(entry.end_time));
    assert.equal(entry.accuracy, 0.9);
    log.beginRound(2);
    log.endRound();
    assert.equal(JSON.parse(readFileSync(log.file, 'utf8')).iteration.length, 2);
    assert.deepEqual(readdirSync(dir), ['node-1_exp.json'], 'no temporary file left behind');
    await server.close();
  });
});

const temp = () => tempDir('fl-ckpt-');

describe('across restarts', () => {
  it('a node that restarts carries on its iteration log; a resumed aggregator drops the rounds it runs again', () => {
    const dir = temp();
    const first = new IterationLog(dir, 'n1', 'exp', new WireMeter());
    for (const round of [1, 2, 3]) (first.beginRound(round), first.endRound({ note: `first process, round ${round}` }));
    const second = new IterationLog(dir, 'n1', 'exp', new WireMeter());
    second.beginRound(4);
    second.endRound();
    assert.deepEqual(second.rounds.map((e) => e.round), [1, 2, 3, 4]);
    second.keepRounds(2);
    const onDisk = JSON.parse(readFileSync(second.file, 'utf8')).iteration;
    assert.deepEqual(onDisk.map((e: { round: number }) => e.round), [1, 2]);
  });

});
