/**
 * The search for whoever spoils the round's sums, played against a simulated round: a sum cannot be
 * read when the spoiler's update (or, for a switch, the sum through it) is in it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SuspectSearch, type SearchStep } from '../../../src/protocol/aggregator/suspects';
import { Topology } from '../../../src/topology/tree';

const AGG = 'agg';
// c1, c2 beneath s1; c3, c4 beneath s2; s1 and s2 beneath the spine sp; d1 reports to the aggregator.
const tree = new Topology(AGG, { c1: 's1', c2: 's1', c3: 's2', c4: 's2', s1: 'sp', s2: 'sp', sp: AGG, d1: AGG });
const CLIENTS = ['c1', 'c2', 'c3', 'c4', 'd1'];

/** Every client may be in the next opening; `room` of them may sit it out; any bench leaves each switch able to forward. */
const roomOf = (room: number, viable = (_bench: readonly string[]) => true) => ({ pool: CLIENTS, room, viable });

/** Whether `node`'s update, or the sums through it, are in a sum of these clients. */
const inSum = (node: string, clients: string[]) => clients.some((c) => c === node || tree.chainOf(c).includes(node));

/**
 * Rounds until the search names someone or gives up: each opening takes every client not benched;
 * `spoils(opening)` says whether the spoiler spoils that one. The openings it took, and what it found.
 */
function play(spoiler: string, spoils: (opening: number) => boolean = () => true, room = 2, limit = 30, viable?: (bench: readonly string[]) => boolean) {
  const search = new SuspectSearch(tree);
  let step: SearchStep = { suspects: [], benched: [] };
  const openings: string[][] = [];
  for (let opening = 0; opening < limit; opening++) {
    const clients = CLIENTS.filter((c) => !search.benched.includes(c));
    openings.push(clients);
    const unreadable = inSum(spoiler, clients) && spoils(opening);
    step = unreadable ? search.unreadable(clients, roomOf(room, viable), `opening ${opening}`) : search.readable(clients, roomOf(room, viable));
    if (step.found || (!unreadable && !step.suspects.length && opening > 0)) break;
  }
  return { step, openings };
}

describe('the search for who spoils the sums', () => {
  for (const spoiler of ['c1', 'c2', 'c3', 'c4', 'd1', 's1', 's2', 'sp']) {
    it(`finds ${spoiler} when it spoils every sum it is in, within a few openings, each benching at most the room`, () => {
      const { step, openings } = play(spoiler);
      assert.equal(step.found?.node, spoiler, JSON.stringify(openings));
      assert.ok(step.found!.spoiled >= 2, 'named only after spoiling two sums');
      // 8 nodes halve to one in three unreadable openings; a readable one may come between each two, and a confirmation.
      assert.ok(openings.length <= 9, `${openings.length} openings: ${JSON.stringify(openings)}`);
      for (const clients of openings) assert.ok(CLIENTS.length - clients.length <= 2, `benched more than the room: ${clients}`);
      assert.match(step.found!.last, /^opening \d+$/);
    });
  }

  it('when a switch forwards two updates or none (the key at the aggregator), leaves no client alone under it, and leaves out the pair it cannot split', () => {
    const pairs = (bench: readonly string[]) => ['s1', 's2'].every((sw) => tree.clientsBeneath(sw).filter((c) => !bench.includes(c)).length !== 1);
    // A client under a pair cannot be told from its partner: their switch's subtree is left out, naming both.
    for (const [spoiler, found, among] of [['c1', 's1', ['c1', 'c2']], ['c4', 's2', ['c3', 'c4']], ['d1', 'd1'], ['s1', 's1', ['c1', 'c2']], ['sp', 'sp']] as const) {
      const { step, openings } = play(spoiler, () => true, 2, 30, pairs);
      assert.equal(step.found?.node, found, `${spoiler}: ${JSON.stringify(openings)}`);
      if (among) assert.deepEqual([...step.found!.among!].sort(), [...among]);
      for (const clients of openings) assert.ok(pairs(CLIENTS.filter((c) => !clients.includes(c))), `a switch left with one client: ${clients}`);
    }
  });

  it('drops its bench when an opening failed for want of updates, keeping its suspects', () => {
    const search = new SuspectSearch(tree);
    assert.ok(search.unreadable(CLIENTS, roomOf(2), 'x').benched.length > 0);
    search.stalled();
    assert.deepEqual(search.benched, []);
    assert.ok(search.unreadable(CLIENTS, roomOf(2), 'x').suspects.length > 1, 'the search goes on');
  });

  it('never names an honest client when the spoiler spoils only now and then, in whatever pattern', () => {
    // Every on/off pattern of 10 openings: the spoiler spoils opening k when bit k is set (when it is in the sum).
    for (const spoiler of ['c3', 'd1']) {
      for (let pattern = 0; pattern < 1 << 10; pattern++) {
        const { step, openings } = play(spoiler, (opening) => (pattern >> opening) % 2 === 1, 2, 10);
        if (step.found) assert.ok(step.found.node === spoiler || step.found.among?.includes(spoiler), `pattern ${pattern.toString(2)}: named ${step.found.node}: ${JSON.stringify(openings)}`);
      }
    }
  });

  it('names no one when the spoiler spoiled once and then stopped', () => {
    const { step, openings } = play('c3', (opening) => opening === 0);
    assert.equal(step.found, undefined);
    assert.deepEqual(step.suspects, [], `the search ended: ${JSON.stringify(openings)}`);
  });

  it('benches no one when the quorum leaves no room, and then names no one it cannot tell apart', () => {
    const search = new SuspectSearch(tree);
    const step = search.unreadable(CLIENTS, roomOf(0), 'x');
    assert.deepEqual(step.benched, []);
    assert.equal(search.unreadable(CLIENTS, roomOf(0), 'x').found, undefined);
  });

  it('keeps as suspects only the nodes every unreadable sum shares, and starts over when none is left', () => {
    const search = new SuspectSearch(tree);
    search.unreadable(['c1', 'c2'], roomOf(2), 'first');
    assert.deepEqual(search.unreadable(['c3'], roomOf(2), 'second').suspects, ['sp'], 'the spine carried both');
    const step = search.unreadable(['d1'], roomOf(2), 'third');
    assert.deepEqual(step.suspects, ['d1'], 'nothing in common with the sums before: the search starts from this one');
    assert.equal(step.found, undefined, 'spoiled once, since the search began again');
  });
});
