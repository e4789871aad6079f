/**
 * What a process loads as it starts. A worker, a switch and the command line never load TensorFlow.js
 * (about 30 MB resident and 0.2 s of every start, and most of a testbed's processes are these); a
 * client loads it as its role mounts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MAIN, ROOT } from '../../helpers/cluster';
import { tempDir } from '../../helpers/temp-dir';

const DIST = join(ROOT, 'dist');
/** Loaded before the program: as it exits, says on stderr whether TensorFlow.js was loaded. */
function probe(): string {
  const file = join(tempDir('fl-startup-'), 'probe.js');
  writeFileSync(file, "process.on('exit', () => process.stderr.write(`\\ntfjs loaded: ${Object.keys(require.cache).some((f) => f.includes('@tensorflow'))}\\n`));\n");
  return file;
}
const tfjsLoaded = (args: string[]) => /tfjs loaded: (true|false)/.exec(spawnSync(process.execPath, ['-r', probe(), ...args], { encoding: 'utf8', timeout: 60_000 }).stderr)?.[1];

describe('what a process loads as it starts', () => {
  it('main.js and the testbed launcher load no TensorFlow.js; a worker loads it only as a client mounts, not as a switch', () => {
    assert.equal(tfjsLoaded([MAIN, '--help']), 'false');
    assert.equal(tfjsLoaded([join(DIST, 'scripts', 'testbed.js'), '--help']), 'false');
    const roles = (...modules: string[]) => ['-e', modules.map((m) => `require(${JSON.stringify(join(DIST, 'src', m))});`).join('')];
    assert.equal(tfjsLoaded(roles('node/worker.js', 'node/start.js', 'roles/switch/index.js', 'blueprints/switch.js')), 'false');
    assert.equal(tfjsLoaded(roles('node/worker.js', 'roles/client/index.js')), 'true', 'the probe sees it when it is loaded');
  });
});
