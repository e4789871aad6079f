/**
 * Mutual TLS between nodes: the certificates `main.js certs` makes, the refusals (another CA, an
 * expired certificate, a certificate for another address, none at all), and a recording of the
 * bytes between a client and the aggregator that finds the token and the update without TLS and
 * neither with it. Real sockets, real handshakes, real training.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { certFiles, issueNodeCert, makeCa, makeTestbedCerts, serialNumber, type Pem } from '../../src/net/certs';
import { Credentials, nodeToken } from '../../src/net/identity';
import { describeFailure, Peers } from '../../src/net/peers';
import type { TlsMaterial } from '../../src/net/tls';
import { WireMeter } from '../../src/net/wire-meter';
import { startNode, type StartedNode } from '../../src/node/start';
import { freeSubnet, node, runExperiment, Testbed } from '../helpers/cluster';
import { TOKEN } from '../helpers/node-context';
import { tempDir } from '../helpers/temp-dir';

const DAY_MS = 24 * 60 * 60 * 1000;

/** A node's material from PEM text written to a folder of its own (the CA file being the one given). */
function material(dir: string, name: string, ca: string, pem: Pem): TlsMaterial {
  const files = { ca: join(dir, `${name}-ca.pem`), cert: join(dir, `${name}.pem`), key: join(dir, `${name}-key.pem`) };
  writeFileSync(files.ca, ca);
  writeFileSync(files.cert, pem.cert);
  writeFileSync(files.key, pem.key);
  // Read as a node would, without loadTls's checks at start: these are meant to fail at the handshake.
  return { ca: Buffer.from(ca), cert: Buffer.from(pem.cert), key: Buffer.from(pem.key), files };
}

describe('main.js certs', () => {
  it('gives certificates serials that are positive DER integers with no leading zero byte (OpenSSL refuses those)', () => {
    for (let i = 0; i < 2000; i++) {
      const serial = serialNumber();
      assert.match(serial, /^[4-7][0-9a-f]{31}$/, serial);
    }
  });

  it('makes a CA and a certificate per node named by its address, keys owner-only, and keeps the CA when run again', async () => {
    const dir = tempDir('fl-certs-');
    const configFile = join(dir, 'config.json');
    const others = { '10.10.1.1:5000': { type: 'client', client_number: 1, index: 0, switch: '10.10.1.2' }, '10.10.1.2': { type: 'switch' }, 'agg.lab:6000': { type: 'aggregator' } };
    writeFileSync(configFile, JSON.stringify({ experiment: 'tls', others }));
    const first = await node(['main.js', 'certs', '--config', configFile]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /made the testbed CA/);
    assert.match(first.stdout, /config\.json runs with mutual TLS/, 'off loopback, TLS is the default');
    const ca = new X509Certificate(readFileSync(join(dir, 'certs', 'ca.pem')));
    assert.equal(ca.ca, true);
    assert.equal(statSync(join(dir, 'certs', 'ca-key.pem')).mode & 0o777, 0o600);
    for (const [address, ip, host] of [['10.10.1.1:5000', '10.10.1.1'], ['10.10.1.2', '10.10.1.2'], ['agg.lab:6000', undefined, 'agg.lab']] as const) {
      const files = certFiles(join(dir, 'certs'), address);
      const cert = new X509Certificate(readFileSync(files.cert));
      assert.ok(cert.verify(ca.publicKey), `${address}: signed by the CA`);
      if (ip) assert.equal(cert.checkIP(ip), ip, `${address}: names ${ip}`);
      if (host) assert.equal(cert.checkHost(host), host, `${address}: names ${host}`);
      assert.equal(cert.checkIP('10.10.1.99'), undefined, `${address}: names no other address`);
      assert.equal(statSync(files.key).mode & 0o777, 0o600, `${address}: key owner-only`);
    }
    const again = await node(['main.js', 'certs', '--config', configFile]);
    assert.match(again.stdout, /signed with the existing CA/);
    assert.equal(new X509Certificate(readFileSync(join(dir, 'certs', 'ca.pem'))).fingerprint256, ca.fingerprint256, 'the CA is kept');
  });

  it('a worker will not start with a certificate for another address, from another CA, or expired', async () => {
    const dir = tempDir('fl-certs-');
    const base = freeSubnet();
    await makeTestbedCerts(dir, [`${base}.1:5000`, `${base}.2:5000`]);
    const start = (host: string) => node(['main.js', '--host', host, '--port', '5000', '--token', TOKEN, '--tls-dir', dir, '--logs', join(dir, 'logs')], { timeout: 20_000 });
    const noCert = await start(`${base}.3`);
    assert.equal(noCert.code, 1);
    assert.match(noCert.stderr, new RegExp(`cannot read the certificate .*${base}\\.3-5000\\.pem`));
    // Another node's files under this node's name.
    writeFileSync(certFiles(dir, `${base}.3:5000`).cert, readFileSync(certFiles(dir, `${base}.1:5000`).cert));
    writeFileSync(certFiles(dir, `${base}.3:5000`).key, readFileSync(certFiles(dir, `${base}.1:5000`).key));
    const other = await start(`${base}.3`);
    assert.match(other.stderr, new RegExp(`names IP Address:${base}\\.1, not ${base}\\.3: it is another node's certificate`));

    const stranger = await makeCa('another lab');
    const foreign = await issueNodeCert(stranger, `${base}.4:5000`);
    writeFileSync(certFiles(dir, `${base}.4:5000`).cert, foreign.cert);
    writeFileSync(certFiles(dir, `${base}.4:5000`).key, foreign.key);
    assert.match((await start(`${base}.4`)).stderr, /was not signed by the CA/);

    const ca = { cert: readFileSync(join(dir, 'ca.pem'), 'utf8'), key: readFileSync(join(dir, 'ca-key.pem'), 'utf8') };
    const expired = await issueNodeCert(ca, `${base}.5:5000`, { notBefore: new Date(Date.now() - 10 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) });
    writeFileSync(certFiles(dir, `${base}.5:5000`).cert, expired.cert);
    writeFileSync(certFiles(dir, `${base}.5:5000`).key, expired.key);
    assert.match((await start(`${base}.5`)).stderr, /expired on/);

    // Its own certificate, another node's key.
    await makeTestbedCerts(dir, [`${base}.6:5000`]);
    writeFileSync(certFiles(dir, `${base}.6:5000`).key, readFileSync(certFiles(dir, `${base}.1:5000`).key));
    assert.match((await start(`${base}.6`)).stderr, /-key\.pem is not the key of .*6-5000\.pem/);
  });
});

describe('mutual TLS between running nodes', () => {
  const dir = tempDir('fl-mtls-');
  const base = freeSubnet();
  const serverAddress = `${base}.1`;
  let ca: Pem;
  let caPem: string;
  let server: StartedNode;
  let serverTls: TlsMaterial;
  let good: TlsMaterial;

  /** A node with `tls` calling the server; what it gets back, or why it failed. */
  async function call(tls: TlsMaterial | undefined, path = '/config', address = `${serverAddress}:${server.address.port}`, as = `${base}.2:5000`) {
    const peers = new Peers(Credentials.fromSecret(TOKEN, as), new WireMeter(), 5000, tls);
    try {
      return { ok: true as const, body: await peers.get(address, path) };
    } catch (err) {
      return { ok: false as const, ...describeFailure(err) };
    }
  }

  before(async () => {
    ca = await makeCa();
    caPem = ca.cert;
    serverTls = material(dir, 'server', caPem, await issueNodeCert(ca, `${serverAddress}:5000`));
    good = material(dir, 'good', caPem, await issueNodeCert(ca, `${base}.2:5000`));
    server = await startNode({ host: serverAddress, port: 0, credentials: Credentials.fromSecret(TOKEN), logsDir: join(dir, 'logs'), console: false, tls: serverTls });
  });
  after(() => server.close());

  it('a node of the testbed gets through (the token still required); no client certificate opens only /health', async () => {
    const answered = await call(good);
    assert.equal(answered.ok, false);
    // Past TLS and the token, known as itself: only GET /config is not a client's to read.
    assert.equal(answered.ok === false && answered.status, 403);
    assert.match(answered.ok === false ? answered.reason : '', new RegExp(`GET /config takes calls from its aggregator or the operator, not from ${base.replace(/\./g, '\\.')}\\.2:5000`));
    const withoutToken = await new Promise<number>((resolve, reject) => {
      https.get(`https://${serverAddress}:${server.address.port}/config`, { ca: good.ca, cert: good.cert, key: good.key, agent: false }, (res) => resolve(res.statusCode!)).on('error', reject);
    });
    assert.equal(withoutToken, 401, 'mutual TLS does not replace the token');
    const bare = await call(undefined);
    assert.equal(bare.ok === false && bare.kind, 'unreachable', 'plain HTTP to a TLS node gets no answer');
    assert.match(bare.ok === false ? bare.reason : '', /ECONNRESET: .*config\.json needs "tls": true/);
    const health = await new Promise<number>((resolve, reject) => {
      https.get(`https://${serverAddress}:${server.address.port}/health`, { ca: serverTls.ca, agent: false }, (res) => resolve(res.statusCode!)).on('error', reject);
    });
    assert.equal(health, 200, '/health needs no certificate (launchers probe it)');
    const noCert = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      https.get(`https://${serverAddress}:${server.address.port}/config`, { ca: serverTls.ca, agent: false, headers: { Authorization: `Bearer ${TOKEN}` } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      }).on('error', reject);
    });
    assert.equal(noCert.status, 403, 'the token alone is not enough');
    assert.match(noCert.body, /no client certificate/);
    // A session begun without a certificate (at /health), resumed on a new connection: still none.
    const agent = new https.Agent({ ca: serverTls.ca, keepAlive: false, maxCachedSessions: 10 });
    const statusOf = (path: string) =>
      new Promise<{ status: number; resumed: boolean }>((resolve, reject) => {
        https
          .get(`https://${serverAddress}:${server.address.port}${path}`, { agent, headers: { Authorization: `Bearer ${TOKEN}` } }, (res) => {
            res.resume();
            resolve({ status: res.statusCode!, resumed: (res.socket as import('node:tls').TLSSocket).isSessionReused() });
          })
          .on('error', reject);
      });
    assert.deepEqual(await statusOf('/health'), { status: 200, resumed: false });
    assert.deepEqual(await statusOf('/config'), { status: 403, resumed: true }, 'a resumed session without a certificate gets no further');
    // Prometheus holds no node's key: /metrics takes its token without a certificate.
    const scraped = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      https.get(`https://${serverAddress}:${server.address.port}/metrics`, { agent, headers: { Authorization: `Bearer ${TOKEN}` } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      }).on('error', reject);
    });
    assert.equal(scraped.status, 200);
    assert.match(scraped.body, /^process_resident_memory_bytes \d+/m);
    agent.destroy();
  });

  it('a TLS node calling a worker still on plain HTTP says so', async () => {
    const plain = await startNode({ host: `${base}.9`, port: 0, credentials: Credentials.fromSecret(TOKEN), logsDir: join(dir, 'logs'), console: false });
    try {
      const answer = await call(good, '/config', `${base}.9:${plain.address.port}`);
      assert.match(answer.ok === false ? answer.reason : '', /answers plain HTTP, not TLS \(start it with --tls-dir/);
    } finally {
      await plain.close();
    }
  });

  it('refuses a caller whose certificate is from another CA, or expired', async () => {
    const stranger = await makeCa('another lab');
    // It trusts our CA (so it can reach the server), but its own certificate is the other lab's.
    const foreign = material(dir, 'foreign', caPem, await issueNodeCert(stranger, `${base}.3:5000`));
    const refused = await call(foreign);
    assert.equal(refused.ok === false && refused.status, 403);
    assert.match(refused.ok === false ? refused.reason : '', /client certificate refused .*not from this testbed's CA/);

    const expired = material(dir, 'expired', caPem, await issueNodeCert(ca, `${base}.4:5000`, { notBefore: new Date(Date.now() - 10 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) }));
    const late = await call(expired);
    assert.equal(late.ok === false && late.status, 403);
    assert.match(late.ok === false ? late.reason : '', /CERT_HAS_EXPIRED/);
  });

  it('a caller refuses a node whose certificate names another address, is from another CA, or expired', async () => {
    // A node at base.7 serving the certificate of base.8: whoever answers there is not the node called.
    const misnamed = await startNode({ host: `${base}.7`, port: 0, credentials: Credentials.fromSecret(TOKEN), logsDir: join(dir, 'logs'), console: false, tls: material(dir, 'misnamed', caPem, await issueNodeCert(ca, `${base}.8:5000`)) });
    try {
      const elsewhere = await call(good, '/config', `${base}.7:${misnamed.address.port}`);
      assert.equal(elsewhere.ok, false);
      assert.match(elsewhere.ok === false ? elsewhere.reason : '', /ERR_TLS_CERT_ALTNAME_INVALID.*names another address/);
    } finally {
      await misnamed.close();
    }

    const stranger = await makeCa('another lab');
    const trustsOther = material(dir, 'trusts-other', stranger.cert, await issueNodeCert(stranger, `${base}.5:5000`));
    const untrusted = await call(trustsOther);
    assert.match(untrusted.ok === false ? untrusted.reason : '', /not from this testbed's CA/);

    const expiredServer = await startNode({
      host: `${base}.6`,
      port: 0,
      credentials: Credentials.fromSecret(TOKEN),
      logsDir: join(dir, 'logs'),
      console: false,
      tls: material(dir, 'expired-server', caPem, await issueNodeCert(ca, `${base}.6:5000`, { notBefore: new Date(Date.now() - 10 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) })),
    });
    try {
      const stale = await call(good, '/config', `${base}.6:${expiredServer.address.port}`);
      assert.match(stale.ok === false ? stale.reason : '', /CERT_HAS_EXPIRED.*expired/);
    } finally {
      await expiredServer.close();
    }
  });
});

/** A TCP proxy that keeps every byte it forwards, both ways. */
async function recordingProxy(listen: { host: string; port: number }, target: { host: string; port: number }) {
  const chunks: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((inbound) => {
    const outbound = net.connect(target);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => inbound.destroy());
      s.on('close', () => sockets.delete(s));
    }
    inbound.on('data', (d: Buffer) => chunks.push(Buffer.from(d)));
    outbound.on('data', (d: Buffer) => chunks.push(Buffer.from(d)));
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    outbound.on('error', () => outbound.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(listen.port, listen.host, resolve));
  return {
    recorded: () => Buffer.concat(chunks),
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      proxy.close(() => resolve());
    }),
  };
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });

describe('on the wire between a client and the aggregator', () => {
  /**
   * One client straight to the aggregator, one round, HE off: the update the client sends is its
   * trained weights, and with one client the round's global model (saved by the aggregator) is that
   * update, float for float. The client reaches the aggregator through a recording proxy.
   */
  async function record(tls: boolean) {
    const proxyPort = await freePort();
    const aggPort = await freePort();
    const testbed = new Testbed({ nodes: 2, switches: 0, rounds: 1, he: false, experiment: tls ? 'wire-tls' : 'wire-plain' }, (config) => {
      config.model = { architecture: 'mlp', hidden_units: 16 };
      config.tls = tls;
      const others = config.others as Record<string, unknown>;
      const aggregator = Object.keys(others).find((a) => (others[a] as { type: string }).type === 'aggregator')!;
      // The config names the proxy's port; the aggregator listens on another port of the same address.
      others[aggregator.replace(/:\d+$/, `:${proxyPort}`)] = others[aggregator];
      delete others[aggregator];
    });
    const host = `${testbed.base}.2`;
    const proxy = await recordingProxy({ host, port: proxyPort }, { host, port: aggPort });
    try {
      const up = await testbed.up();
      assert.equal(up.code, 0, up.stdout + up.stderr);
      if (tls) {
        const client = testbed.addresses('client')[0].replace(':', '-');
        // As on a lab machine: the CA's certificate and the node's own two files, not the CA's key.
        assert.deepEqual(readdirSync(join(testbed.state, 'tls', client)).sort(), [`${client}-key.pem`, `${client}.pem`, 'ca.pem']);
      }
      const run = await runExperiment(testbed, 5 * 60_000, ['--port', String(aggPort)]);
      assert.equal(run.code, 0, run.output);
      const model = readFileSync(join(testbed.outputs, tls ? 'wire-tls' : 'wire-plain', 'models', 'round-001', 'weights.bin'));
      // The client's own token: what it proves itself with on every call to the aggregator.
      return { recorded: proxy.recorded(), model, token: nodeToken(testbed.token, testbed.addresses('client')[0]), output: run.output, report: readFileSync(join(testbed.outputs, tls ? 'wire-tls' : 'wire-plain', 'report.html'), 'utf8') };
    } finally {
      await proxy.close();
      await testbed.down();
    }
  }

  /** Windows of the update (the dense layers' weights, far from the zero-initialised biases) to look for. */
  const windowsOf = (model: Buffer) => [0.25, 0.5, 0.75].map((at) => model.subarray(Math.floor((model.length * at) / 4) * 4, Math.floor((model.length * at) / 4) * 4 + 64));

  it('without TLS the recording holds the client\'s token and the plaintext update: the test can see them', { timeout: 300_000 }, async () => {
    const { recorded, model, token, output, report } = await record(false);
    assert.ok(recorded.length > model.length, `recorded ${recorded.length} bytes, the update alone is ${model.length}`);
    assert.ok(recorded.includes(Buffer.from(token)), 'the token in clear');
    for (const window of windowsOf(model)) assert.ok(recorded.includes(window), 'the update in clear');
    assert.match(output, /transport: plain HTTP \(no TLS\), as config\.json says \("tls": false\)/);
    assert.match(report, /<th>transport<\/th><td>plain HTTP \(no TLS\)<\/td>/);
  });

  it('with mutual TLS the same recording holds neither', { timeout: 300_000 }, async () => {
    const { recorded, model, token, output, report } = await record(true);
    assert.ok(recorded.length > model.length, `recorded ${recorded.length} bytes, the update alone is ${model.length}`);
    assert.ok(!recorded.includes(Buffer.from(token)), 'the token went in clear');
    for (const window of windowsOf(model)) assert.ok(!recorded.includes(window), 'the update went in clear');
    assert.match(output, /transport: mutual TLS/);
    assert.match(report, /<th>transport<\/th><td>mutual TLS<\/td>/);
  });
});
