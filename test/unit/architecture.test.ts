/**
 * The house rules, checked on the sources: no import cycle in src/ (madge reads the TypeScript,
 * type-only imports included), each floor importing only from its own and those below it
 * (ARCHITECTURE.md), files small enough to read, and the reporting tree walked only in
 * src/topology/ (every other module asks it).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import madge from 'madge';
import { ROOT } from '../helpers/cluster';
import { tempDir } from '../helpers/temp-dir';

const SRC = join(ROOT, 'src');
const sources = readdirSync(SRC, { recursive: true, encoding: 'utf8' })
  .filter((file) => file.endsWith('.ts'))
  .map((file) => ({ file: join('src', file), text: readFileSync(join(SRC, file), 'utf8') }));
const lines = (text: string) => text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
/** The text without comments, so a comment that names a method does not count as a call. */
const code = (text: string) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');

/** The questions only the topology answers: a function or method of these names elsewhere walks the tree again. */
const TREE_WALKS = ['chainOf', 'reporterOf', 'clientsBeneath', 'clientsReaching', 'reachable', 'reaches', 'switchOf', 'childrenOf', 'subtree', 'upstreamOf'];
const walkDeclared = new RegExp(`(?:function\\s+|^\\s*(?:(?:private|protected|public|static|readonly)\\s+)*|const\\s+)(${TREE_WALKS.join('|')})\\s*[(=<]`, 'gm');
const walksIn = (text: string) => [...code(text).matchAll(walkDeclared)].map((m) => m[1]);
/** Reads of a node config's tree, but for building a Topology from it. */
const treeReadsIn = (text: string) =>
  [...code(text).matchAll(/\b\w+(?:\.\w+)*\.tree\b(?!\s*:)/g)].filter((m) => !/new Topology\([^)]*$/.test(code(text).slice(0, m.index! + m[0].length))).map((m) => m[0]);
/** ARCHITECTURE.md's floors, ground first, by the top-level entries of src/. */
const FLOORS = [
  ['topology', 'wire', 'he', 'config', 'net', 'log', 'files', 'model', 'data', 'report', 'emulate', 'privacy', 'outputs.ts', 'checkpoint.ts'],
  ['protocol', 'aggregation', 'strategy'],
  ['roles'],
  ['node', 'blueprints', 'dashboard'],
  ['orchestrator'],
];
const floorOf = (module: string) => FLOORS.findIndex((floor) => floor.includes(module.split('/')[0]));
/** Imports from a floor above the importer's, as `importer -> imported`. */
const upwardImports = (graph: Record<string, string[]>) =>
  Object.entries(graph).flatMap(([module, imports]) => imports.filter((imported) => floorOf(imported) > floorOf(module)).map((imported) => `${module} -> ${imported}`));
const cyclesIn = async (dir: string) => (await madge(dir, { fileExtensions: ['ts'], tsConfig: join(ROOT, 'tsconfig.json') })).circular();

describe('the house', () => {
  it('has no import cycle in src/, type-only imports included', async () => {
    const graph = await madge(SRC, { fileExtensions: ['ts'], tsConfig: join(ROOT, 'tsconfig.json') });
    assert.ok(Object.keys(graph.obj()).length > 100, 'madge read the sources');
    assert.deepEqual(graph.circular(), []);
  });

  it('imports, on each floor, only from that floor and those below it', async () => {
    const graph = (await madge(SRC, { fileExtensions: ['ts'], tsConfig: join(ROOT, 'tsconfig.json') })).obj();
    assert.deepEqual(Object.keys(graph).filter((module) => floorOf(module) < 0), [], 'every module of src/ is on a floor');
    assert.deepEqual(upwardImports(graph), []);
    assert.deepEqual(upwardImports({ 'protocol/switch.ts': ['roles/role.ts', 'topology/tree.ts'] }), ['protocol/switch.ts -> roles/role.ts'], 'the check can fail');
  });

  it('keeps every file under src/roles/ within 300 lines, and every file under src/ within 360', () => {
    assert.ok(sources.length > 100);
    const long = sources.filter(({ file, text }) => lines(text) > (file.startsWith(join('src', 'roles')) ? 300 : 360));
    assert.deepEqual(long.map(({ file, text }) => `${file}: ${lines(text)} lines`), []);
  });

  it('walks the reporting tree only in src/topology/: nowhere else declares a walk, or reads a config tree but to build a Topology', () => {
    const outside = sources.filter(({ file }) => !file.startsWith(join('src', 'topology')));
    assert.deepEqual(outside.flatMap(({ file, text }) => walksIn(text).map((walk) => `${file}: ${walk}`)), []);
    assert.deepEqual(outside.flatMap(({ file, text }) => treeReadsIn(text).map((read) => `${file}: ${read}`)), []);
    assert.ok(sources.some(({ file, text }) => file === join('src', 'topology', 'tree.ts') && /chainOf\(node: string\)/.test(text)), 'the check looks where the walks are');
  });

  it('the checks can fail: a type-only cycle and a walk of the tree written again are found, a call to the topology is not', async () => {
    const dir = tempDir('fl-cycle-');
    writeFileSync(join(dir, 'a.ts'), "import type { B } from './b';\nexport interface A { b?: B }\n");
    writeFileSync(join(dir, 'b.ts'), "import type { A } from './a';\nexport interface B { a?: A }\n");
    assert.deepEqual(await cyclesIn(dir), [['a.ts', 'b.ts']]);
    const again = 'export function chainOf(tree: Tree, node: string) {\n  return [];\n}\nclass X {\n  private switchOf(client: string) {}\n}';
    assert.deepEqual(walksIn(again), ['chainOf', 'switchOf']);
    assert.deepEqual(walksIn('this.topology.chainOf(client); // a comment: function chainOf(x)'), []);
    assert.deepEqual(treeReadsIn('for (const [node, up] of Object.entries(config.tree)) walk(node, up);'), ['config.tree']);
    assert.deepEqual(treeReadsIn('readonly topology = new Topology(this.config.address, this.config.tree);'), []);
  });
});
