/** The ssh launcher, with a stand-in `ssh`/`scp` on PATH that records what it is asked to do. */
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { testbedConfig } from '../../src/config/testbed';
import { certFiles, makeTestbedCerts } from '../../src/net/certs';
import { nodeToken, type TokenBook } from '../../src/net/identity';
import { freeSubnet, node, ROOT, script } from '../helpers/cluster';
import { tempDir } from '../helpers/temp-dir';

const TOKEN = 'ssh-launcher-test-token-42';

function fakeTools() {
  const dir = tempDir('fake-ssh-');
  const record = join(dir, 'calls');
  for (const tool of ['ssh', 'scp']) {
    const file = join(dir, tool);
    writeFileSync(file, `#!/bin/sh\necho "${tool} $*" >> "${record}.argv"\ncat >> "${record}.stdin"\necho "started pid 4242"\n`);
    chmodSync(file, 0o755);
  }
  const env = { PATH: `${dir}:${process.env.PATH}`, FL_TOKEN: TOKEN };
  return { env, argv: () => readFileSync(`${record}.argv`, 'utf8'), stdin: () => readFileSync(`${record}.stdin`, 'utf8'), called: () => existsSync(`${record}.argv`) };
}

const reference = JSON.parse(readFileSync(join(ROOT, 'config.json'), 'utf8')) as { others: Record<string, { type: string }> };
const referenceWorkers = Object.entries(reference.others).filter(([, e]) => e.type !== 'aggregator').map(([a]) => a.split(':')[0]);

describe('ssh launcher', () => {
  it('--dry-run prints a start command per worker of config.json and runs nothing', async () => {
    const tools = fakeTools();
    const dryRun = await script('ssh-launcher', ['start', '--dry-run', '--config', 'config.json', '--user', 'lab'], { env: tools.env });
    assert.equal(dryRun.code, 0, dryRun.stderr);
    const lines = dryRun.stdout.trim().split('\n').filter((l) => l.startsWith('ssh '));
    // Off loopback mutual TLS is the default: each machine first gets the CA and its own certificate and key.
    const starts = lines.filter((l) => l.includes('setsid nohup'));
    assert.equal(starts.length, 14);
    for (const host of referenceWorkers) assert.ok(starts.some((l) => l.includes(` lab@${host} `)), `no dry-run line for ${host}`);
    for (const line of starts) {
      const [, host] = /--host (\S+) /.exec(line)!;
      assert.match(line, new RegExp(`setsid nohup node main\\.js --host \\S+ --port 5000 --token-file \\.run/token-${host.replace(/\./g, '\\.')}-5000 .*--tls-dir tls`));
      assert.ok(line.endsWith(`<<< "<the token book of ${host}:5000>"`), line);
    }
    const handOvers = lines.filter((l) => l.includes('TLS '));
    assert.equal(handOvers.length, 3 * 14);
    for (const host of referenceWorkers) {
      const own = handOvers.filter((l) => l.includes(` lab@${host} `));
      assert.deepEqual(own.map((l) => / < (\S+)$/.exec(l)?.[1]?.split('/').pop()), ['ca.pem', `${host}-5000.pem`, `${host}-5000-key.pem`], `${host} gets its own files only`);
      assert.ok(own.every((l) => l.includes('umask 077')), `${host}: owner-only`);
    }
    assert.ok(lines.indexOf(handOvers[handOvers.length - 1]) < lines.indexOf(starts[0]), 'every file is handed over before the first start');
    assert.ok(!dryRun.stdout.includes(TOKEN), 'the dry run shows no token');
    assert.ok(!tools.called(), 'the dry run ran ssh');
  });

  it('--dry-run fetch-logs covers the aggregator machine too', async () => {
    const tools = fakeTools();
    const dryRun = await script('ssh-launcher', ['fetch-logs', '--dry-run', '--config', 'config.json', '--into', '/tmp/x'], { env: tools.env });
    assert.equal(dryRun.stdout.split('\n').filter((l) => l.startsWith('scp ')).length, 15);
    assert.ok(!tools.called());
  });

  it('--dry-run with clients holding the HE key: the key goes to client machines only, on stdin', async () => {
    const tools = fakeTools();
    const dir = tempDir('clients-key-');
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ ...reference, he: { enabled: true, key_holder: 'clients' } }));
    const dryRun = await script('ssh-launcher', ['start', '--dry-run', '--config', config, '--he-key', 'keys/k.json'], { env: tools.env });
    assert.equal(dryRun.code, 0, dryRun.stderr);
    const hostOf = (line: string) => /^ssh -o BatchMode=yes (?:\S+@)?(\S+) /.exec(line)?.[1];
    const keyLines = dryRun.stdout.split('\n').filter((l) => l.includes('cat > keys/he-secret.json.$$ && mv -f keys/he-secret.json.$$ keys/he-secret.json'));
    const clientHosts = Object.entries(reference.others).filter(([, e]) => e.type === 'client').map(([a]) => a.split(':')[0]);
    assert.equal(clientHosts.length, 12);
    // Each client machine gets the key once, and no other machine does.
    assert.deepEqual(keyLines.map(hostOf).sort(), [...clientHosts].sort());
    for (const line of keyLines) {
      assert.match(line, /umask 077/);
      assert.match(line, /< keys\/k\.json$/);
    }
    const starts = dryRun.stdout.split('\n').filter((l) => l.includes('setsid nohup'));
    assert.deepEqual(starts.filter((l) => l.includes('--he-key')).map(hostOf).sort(), [...clientHosts].sort(), 'only clients are started with the key');
    assert.ok(!tools.called(), 'the dry run ran ssh');
  });

  it('start hands the token over on stdin, never on a command line', async () => {
    const tools = fakeTools();
    const hosts = join(tempDir('hosts-'), 'hosts');
    writeFileSync(hosts, '# lab machines\n127.0.0.21\n127.0.0.22:6000\n');
    const res = await script('ssh-launcher', ['start', '--hosts', hosts, '--dir', '/opt/fl'], { env: tools.env });
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /start: 2 of 2 succeeded/);
    const argv = tools.argv();
    assert.match(argv, /ssh -o BatchMode=yes 127\.0\.0\.21 cd \/opt\/fl .*--port 5000/);
    assert.match(argv, /127\.0\.0\.22 .*--port 6000/);
    assert.ok(!argv.includes(TOKEN), 'token on a command line');
    assert.equal(tools.stdin(), `${TOKEN}\n${TOKEN}\n`);
  });

  it('start with config.json hands each worker its own token book on stdin, never the cluster token', async () => {
    const tools = fakeTools();
    const dir = tempDir('books-');
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ ...reference, tls: false }));
    const res = await script('ssh-launcher', ['start', '--config', config, '--dir', '/opt/fl', '--parallel', '1'], { env: tools.env });
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.ok(!tools.argv().includes(TOKEN), 'token on a command line');
    const books = tools.stdin().trim().split('\n').map((line) => JSON.parse(line) as TokenBook);
    // (dash's echo turns the \n of the start command's `tr` into a line break: calls are the lines that begin with ssh.)
    const calls = tools.argv().split('\n').filter((line) => line.startsWith('ssh '));
    assert.equal(books.length, 14);
    books.forEach((book, i) => {
      const [, host] = /--host (\S+) /.exec(calls[i])!;
      assert.equal(book.node, `${host}:5000`, 'the book of the machine it went to');
      assert.equal(book.token, nodeToken(TOKEN, book.node));
      assert.equal(Object.keys(book.peers).length, 15, 'every node of config.json, known by digest');
      assert.ok(!JSON.stringify(book).includes(TOKEN), 'the cluster token is in a book');
      const others = Object.keys(book.peers).filter((peer) => peer !== book.node);
      assert.ok(others.every((peer) => !JSON.stringify(book).includes(nodeToken(TOKEN, peer))), "another node's token is in a book");
    });
  });

  it('with clients_per_process: one process per machine for its clients, each node its own book (on stdin, into a folder of the process) and its own certificate', async () => {
    const tools = fakeTools();
    const dir = tempDir('per-process-');
    const config = testbedConfig({ base: '127.0.0', nodes: 0, clients: 6, perProcess: 3, switches: 1 }) as { others: Record<string, unknown> };
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, tls: true }));
    await makeTestbedCerts(join(dir, 'certs'), Object.keys(config.others));
    const res = await script('ssh-launcher', ['start', '--config', join(dir, 'config.json'), '--dir', '/opt/fl', '--parallel', '1'], { env: tools.env, cwd: dir });
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const calls = tools.argv().split('\n').filter((line) => line.startsWith('ssh '));
    const starts = calls.filter((l) => l.includes('setsid nohup'));
    assert.equal(starts.length, 3, 'two client processes and the switch');
    assert.match(starts[0], /node main\.js --nodes 127\.0\.0\.1:5000,127\.0\.0\.1:5001,127\.0\.0\.1:5002 --token-file \.run\/tokens-127\.0\.0\.1-5000 --logs logs .*--tls-dir tls\/127\.0\.0\.1-5000/);
    assert.match(starts[2], /--host 127\.0\.0\.3 --port 5000 --token-file \.run\/token-127\.0\.0\.3-5000 /);
    // Each client's book went to its own file in its process's folder, and held its own token.
    const bookCalls = calls.filter((l) => l.includes('the token book of'));
    assert.equal(bookCalls.length, 6);
    const books = tools.stdin().split('\n').filter((line) => line.startsWith('{"node"')).map((line) => JSON.parse(line) as TokenBook);
    assert.deepEqual(books.map((b) => b.node), Object.keys(config.others).slice(0, 6).concat(Object.keys(config.others)[6]));
    bookCalls.forEach((call, i) => assert.ok(call.includes(`/${books[i].node.replace(':', '-')}.json`), `${books[i].node}'s book in its own file`));
    for (const book of books) assert.equal(book.token, nodeToken(TOKEN, book.node));
    // The CA once a process, and each node's certificate and key.
    const tls = calls.filter((l) => l.includes('TLS '));
    assert.equal(tls.length, 3 + 2 * 7, 'a CA for each of the 3 processes, a certificate and key for each of the 7 nodes');
  });

  it('with --hosts and --certs: each machine gets its own files first; one whose key did not arrive is not started', async () => {
    const tools = fakeTools();
    // This stand-in ssh fails to write 127.0.0.22's key, as a full disk would.
    const ssh = join(tools.env.PATH.split(':')[0], 'ssh');
    writeFileSync(ssh, `#!/bin/sh\ncase "$*" in *127.0.0.22*"TLS key"*) cat > /dev/null; echo "No space left on device"; exit 1;; esac\n${readFileSync(ssh, 'utf8').split('\n').slice(1).join('\n')}`);
    const dir = tempDir('hosts-certs-');
    const hosts = join(dir, 'hosts');
    writeFileSync(hosts, '127.0.0.21\n127.0.0.22:6000\n');
    await makeTestbedCerts(join(dir, 'certs'), ['127.0.0.21:5000', '127.0.0.22:6000']);
    const res = await script('ssh-launcher', ['start', '--hosts', hosts, '--certs', join(dir, 'certs'), '--dir', '/opt/fl', '--parallel', '1'], { env: tools.env });
    assert.equal(res.code, 1, res.stdout + res.stderr);
    assert.match(res.stdout, /FAILED\s+127\.0\.0\.22:6000\s+No space left on device/);
    assert.match(res.stdout, /skipped 127\.0\.0\.22:6000: its key or certificates did not arrive/);
    assert.match(res.stdout, /start: 6 of 8 succeeded/, 'six files handed over (one failed), one start of two');
    const starts = tools.argv().split('\n').filter((l) => l.includes('setsid nohup'));
    assert.equal(starts.length, 1);
    assert.match(starts[0], /127\.0\.0\.21 .*--port 5000 .*--tls-dir tls/);
    const sent = tools.stdin();
    assert.ok(sent.includes(readFileSync(join(dir, 'certs', '127.0.0.21-5000-key.pem'), 'utf8')), "21's key went to it");
    assert.ok(sent.includes(readFileSync(join(dir, 'certs', '127.0.0.22-6000.pem'), 'utf8')), "22's certificate went to it");
    assert.ok(!sent.includes(readFileSync(join(dir, 'certs', 'ca-key.pem'), 'utf8')), "the CA's key went nowhere");
  });

  it('refuses an unknown action and a broken config with a message', async () => {
    const tools = fakeTools();
    const bad = await script('ssh-launcher', ['reboot', '--dry-run'], { env: tools.env });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown action "reboot"/);
    const missing = await script('ssh-launcher', ['start', '--dry-run', '--config', '/nonexistent.json'], { env: tools.env });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read the file/);
    assert.ok(!tools.called());
  });
});

describe('ssh launcher: a worker that exits at start', () => {
  it('is named in its own words by the launcher, and by the aggregator, which cannot reach it', { timeout: 120_000 }, async () => {
    const dir = tempDir('fl-launch-');
    // The machines' project folder (one, as the emulated machines share theirs); an ssh that runs the command here.
    const project = join(dir, 'project');
    mkdirSync(project);
    symlinkSync(join(ROOT, 'main.js'), join(project, 'main.js'));
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'ssh'), '#!/bin/bash\nexec bash -c "${@: -1}"\n', { mode: 0o755 });
    const base = freeSubnet();
    const config = testbedConfig({ base, nodes: 4, switches: 1, rounds: 1, he: false }) as Record<string, any>;
    Object.assign(config, { tls: true, model: { architecture: 'mlp', hidden_units: 8 }, timeouts: { push_ms: 12_000, request_ms: 5000, round_ms: 60_000 } });
    const configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify(config));
    const [broken, other] = Object.keys(config.others).filter((a) => config.others[a].type === 'client');
    await makeTestbedCerts(join(dir, 'certs'), Object.keys(config.others));
    // Its certificate and key swapped for another machine's, as a copy to the wrong machine would leave them.
    for (const part of ['cert', 'key'] as const) copyFileSync(certFiles(join(dir, 'certs'), other)[part], certFiles(join(dir, 'certs'), broken)[part]);
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'launch-test-cluster-token-0123456789\n', { mode: 0o600 });
    const env = { PATH: `${bin}:${process.env.PATH}` };
    try {
      const start = await script('ssh-launcher', ['start', '--config', configFile, '--dir', project, '--token-file', tokenFile], { env });
      assert.equal(start.code, 1, start.stdout + start.stderr);
      const escaped = broken.replace(/\./g, '\\.');
      assert.match(start.stdout, new RegExp(`FAILED\\s+${escaped}\\s+the worker exited at start: .*certificate`), start.stdout);
      assert.equal((start.stdout.match(/ok\s+\S+\s+.*started pid \d+/g) ?? []).length, 2, 'the other two started');
      const report = JSON.parse(readFileSync(join(dir, 'launch.json'), 'utf8'));
      assert.deepEqual(Object.keys(report.failures), [broken]);
      const agg = await node([join(ROOT, 'main.js'), 'agg', '--config', configFile, '--token-file', tokenFile, '--logs', join(dir, 'logs'), '--outputs', join(dir, 'outputs')], { cwd: dir, timeout: 90_000 });
      assert.equal(agg.code, 0, agg.stdout + agg.stderr);
      assert.match(agg.stdout, new RegExp(`\\?\\?\\s+${escaped}\\s+client\\s+unreachable: ECONNREFUSED.*; the launcher saw it the worker exited at start: .*certificate`));
    } finally {
      await script('ssh-launcher', ['stop', '--config', configFile, '--dir', project], { env });
    }
  });
});
