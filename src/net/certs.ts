/**
 * The testbed's certificates: one CA, and per node a certificate naming its address, so nodes can
 * prove to each other that they belong to the testbed (mutual TLS). node-forge builds and signs
 * the X.509 (Node's crypto parses certificates but cannot issue them); Node makes the RSA keys.
 *
 * Files in the certs folder, named by address as config.json writes it:
 *   ca.pem, ca-key.pem              the CA (its key stays with whoever runs `main.js certs`)
 *   <host>-<port>.pem, …-key.pem    one node's certificate and key
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type forge from 'node-forge';
import { canonicalAddress, parseAddress } from '../config/address';
import { writeFileAtomic } from '../files/atomic';

const makeRsaKey = promisify(generateKeyPair);
/** Loaded when a certificate is made, not by every process that only reads them. */
const nodeForge = (): typeof forge => require('node-forge');
const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_VALID_DAYS = 365;
/** Clocks across a lab drift; a certificate made a minute ago on another machine is already good. */
const CLOCK_SKEW_MS = 5 * 60 * 1000;

export interface Pem {
  cert: string;
  key: string;
}

export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/** Where a node's files are in a certs folder. */
export function certFiles(dir: string, address: string): TlsFiles {
  const id = canonicalAddress(address).replace(':', '-');
  return { ca: join(dir, 'ca.pem'), cert: join(dir, `${id}.pem`), key: join(dir, `${id}-key.pem`) };
}

async function keyPair(): Promise<{ pem: string; forgeKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey }> {
  const { privateKey, publicKey } = await makeRsaKey('rsa', { modulusLength: 2048 });
  return {
    pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    forgeKey: nodeForge().pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }) as string),
    publicKey: nodeForge().pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string),
  };
}

interface Validity {
  notBefore?: Date;
  notAfter?: Date;
  days?: number;
}

/**
 * 16 random bytes, so two CAs' serials never collide in a browser's store, with the first byte in
 * 0x40..0x7f: positive, and a DER integer with no leading zero byte. (An odd count of hex digits
 * starting "00" made an integer OpenSSL refuses as "illegal padding", one certificate in 32.)
 */
export function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] & 0x3f) | 0x40;
  return bytes.toString('hex');
}

function newCertificate(publicKey: forge.pki.rsa.PublicKey, validity: Validity): forge.pki.Certificate {
  const cert = nodeForge().pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serialNumber();
  const now = Date.now();
  cert.validity.notBefore = validity.notBefore ?? new Date(now - CLOCK_SKEW_MS);
  cert.validity.notAfter = validity.notAfter ?? new Date(now + (validity.days ?? DEFAULT_VALID_DAYS) * DAY_MS);
  return cert;
}

/** A self-signed CA for one testbed. */
export async function makeCa(name = 'fl-testbed CA', validity: Validity = {}): Promise<Pem> {
  const keys = await keyPair();
  const cert = newCertificate(keys.publicKey, { days: 10 * DEFAULT_VALID_DAYS, ...validity });
  const subject = [{ name: 'commonName', value: name }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.forgeKey, nodeForge().md.sha256.create());
  return { cert: nodeForge().pki.certificateToPem(cert), key: keys.pem };
}

/** A node's certificate: it names the node's host (IP or DNS name), good for both ends of a connection. */
export async function issueNodeCert(ca: Pem, address: string, validity: Validity = {}): Promise<Pem> {
  const { host } = parseAddress(address);
  const caCert = nodeForge().pki.certificateFromPem(ca.cert);
  const caKey = nodeForge().pki.privateKeyFromPem(ca.key);
  const keys = await keyPair();
  const cert = newCertificate(keys.publicKey, validity);
  cert.setSubject([{ name: 'commonName', value: canonicalAddress(address) }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [isIP(host) ? { type: 7, ip: host } : { type: 2, value: host }] },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, nodeForge().md.sha256.create());
  return { cert: nodeForge().pki.certificateToPem(cert), key: keys.pem };
}

/** Written in one rename; keys owner-only. */
const writeFile = (file: string, text: string, secret: boolean) => writeFileAtomic(file, text, { mode: secret ? 0o600 : 0o644 });

export interface MadeCerts {
  dir: string;
  ca: string;
  /** True when the folder's CA was made now (false: an existing one signed the new certificates). */
  newCa: boolean;
  nodes: { address: string; files: TlsFiles }[];
}

/**
 * A certificate for every address, signed by the folder's CA (made when the folder has none, so
 * running it again for a grown testbed keeps the nodes already handed out valid).
 */
export async function makeTestbedCerts(dir: string, addresses: string[], validity: Validity = {}): Promise<MadeCerts> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caFile = join(dir, 'ca.pem');
  const caKeyFile = join(dir, 'ca-key.pem');
  const newCa = !existsSync(caFile) || !existsSync(caKeyFile);
  let ca: Pem;
  if (newCa) {
    ca = await makeCa();
    writeFile(caKeyFile, ca.key, true);
    writeFile(caFile, ca.cert, false);
  } else ca = { cert: readFileSync(caFile, 'utf8'), key: readFileSync(caKeyFile, 'utf8') };
  const nodes = await Promise.all(
    addresses.map(async (address) => {
      const files = certFiles(dir, address);
      const pem = await issueNodeCert(ca, address, validity);
      writeFile(files.key, pem.key, true);
      writeFile(files.cert, pem.cert, false);
      return { address: canonicalAddress(address), files };
    }),
  );
  return { dir, ca: caFile, newCa, nodes };
}

/** Certificates for the addresses that have none in `dir` yet (the others, and the CA, are kept); how many were made. */
export async function ensureTestbedCerts(dir: string, addresses: string[]): Promise<number> {
  const missing = addresses.filter((address) => {
    const files = certFiles(dir, address);
    return !existsSync(files.cert) || !existsSync(files.key);
  });
  if (missing.length) await makeTestbedCerts(dir, missing);
  return missing.length;
}

/**
 * One node's files alone (the CA's certificate, its own certificate and key) copied to a folder of
 * its own, as a machine of the lab would hold them: a worker pointed at the certs folder itself
 * could read the CA's key.
 */
export function copyNodeFiles(dir: string, address: string, into: string): void {
  mkdirSync(into, { recursive: true, mode: 0o700 });
  const from = certFiles(dir, address);
  const to = certFiles(into, address);
  writeFile(to.ca, readFileSync(from.ca, 'utf8'), false);
  writeFile(to.cert, readFileSync(from.cert, 'utf8'), false);
  writeFile(to.key, readFileSync(from.key, 'utf8'), true);
}
