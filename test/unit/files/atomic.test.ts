/** Writing a file whole or not at all: in parts as they are made, and nothing left behind when a part cannot be. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, mock } from 'node:test';
import crypto from 'node:crypto';
import { writeFileAtomic } from '../../../src/files/atomic';
import { tempDir } from '../../helpers/temp-dir';

describe('an atomic write', () => {
  it('writes parts in turn, as a list or made one at a time, the same bytes as joined', () => {
    const dir = tempDir('atomic-');
    const parts = [Buffer.from('head '), new Uint8Array([1, 2, 3]), Buffer.alloc(0), Buffer.from(' tail')];
    writeFileAtomic(join(dir, 'list'), parts);
    writeFileAtomic(join(dir, 'made'), (function* () {
      yield* parts;
    })());
    for (const name of ['list', 'made']) assert.deepEqual(readFileSync(join(dir, name)), Buffer.concat(parts), name);
    assert.deepEqual(readdirSync(dir).sort(), ['list', 'made']);
  });

  it('leaves the old file, and no temp file, when a part cannot be made', () => {
    const dir = tempDir('atomic-');
    const file = join(dir, 'model');
    writeFileSync(file, 'old');
    const failing = (function* () {
      yield Buffer.from('half of a new one');
      throw new Error('the model was disposed of');
    })();
    assert.throws(() => writeFileAtomic(file, failing, { durable: true }), /disposed of/);
    assert.equal(readFileSync(file, 'utf8'), 'old');
    assert.deepEqual(readdirSync(dir), ['model']);
  });

  it('writes through no link planted where its temp file used to be named (the file, the pid, .tmp)', () => {
    const dir = tempDir('atomic-');
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched');
    const file = join(dir, 'report.html');
    symlinkSync(victim, `${file}.${process.pid}.tmp`);
    writeFileAtomic(file, 'the report');
    assert.equal(readFileSync(victim, 'utf8'), 'untouched');
    assert.equal(readFileSync(file, 'utf8'), 'the report');
  });

  it('refuses a link planted at the very name it would make, rather than write through it', () => {
    const dir = tempDir('atomic-');
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched');
    const file = join(dir, 'report.html');
    // The name foretold: the random part made all zeros for this write.
    const random = mock.method(crypto, 'randomBytes', (size: number) => Buffer.alloc(size));
    try {
      symlinkSync(victim, `${file}.${process.pid}.000000000000.tmp`);
      assert.throws(() => writeFileAtomic(file, 'the report'), /EEXIST/);
    } finally {
      random.mock.restore();
    }
    assert.equal(readFileSync(victim, 'utf8'), 'untouched');
  });
});
