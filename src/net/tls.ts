/**
 * Mutual TLS between nodes: what a node holds (the testbed's CA, its own certificate and key) and
 * how its server and its calls use it. Each side checks the other's certificate against the CA;
 * the side that calls also checks that the certificate names the address it called.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { parseAddress } from '../config/address';
import { certFiles, type TlsFiles } from './certs';

export interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  files: TlsFiles;
}

export class TlsSetupError extends Error {}

function readPart(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TlsSetupError(`TLS: cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (make them with \`node main.js certs --config config.json\`)`);
  }
}

/**
 * A node's files, checked now rather than at the first handshake: the certificate must come from
 * the CA, be valid today, and name `address` (the host the node serves on).
 */
export function loadTls(files: TlsFiles, address?: string, now = new Date()): TlsMaterial {
  const material = { ca: readPart(files.ca, 'CA certificate'), cert: readPart(files.cert, 'certificate'), key: readPart(files.key, 'key'), files };
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(material.cert);
    ca = new X509Certificate(material.ca);
  } catch (err) {
    throw new TlsSetupError(`TLS: ${files.cert} or ${files.ca} is not a PEM certificate: ${(err as Error).message}`);
  }
  if (!cert.verify(ca.publicKey)) throw new TlsSetupError(`TLS: ${files.cert} was not signed by the CA in ${files.ca}`);
  if (new Date(cert.validTo) < now) throw new TlsSetupError(`TLS: ${files.cert} expired on ${cert.validTo}; make new certificates with \`node main.js certs\``);
  if (new Date(cert.validFrom) > now) throw new TlsSetupError(`TLS: ${files.cert} is valid only from ${cert.validFrom}: is this machine's clock behind?`);
  let keyFits = false;
  try {
    keyFits = cert.checkPrivateKey(createPrivateKey(material.key));
  } catch (err) {
    throw new TlsSetupError(`TLS: ${files.key} is not a PEM private key: ${(err as Error).message}`);
  }
  if (!keyFits) throw new TlsSetupError(`TLS: ${files.key} is not the key of ${files.cert} (another node's key?)`);
  if (address) {
    const { host } = parseAddress(address);
    const named = isIP(host) ? cert.checkIP(host) : cert.checkHost(host);
    if (!named) throw new TlsSetupError(`TLS: ${files.cert} names ${cert.subjectAltName ?? cert.subject}, not ${host}: it is another node's certificate`);
  }
  return material;
}

/** A node's files from a certs folder (`main.js certs` names them by address). */
export const loadTlsFromDir = (dir: string, address: string): TlsMaterial => loadTls(certFiles(dir, address), address);

/** For calls: present our certificate, trust only the testbed's CA (Node checks the called address against the certificate). */
export const clientOptions = (tls: TlsMaterial) => ({ ca: tls.ca, cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' as const });

/**
 * The server asks every caller for a certificate but lets the handshake finish without one, so a
 * browser can open the dashboard; every other route is refused (see clientCertProblem).
 */
export const serverOptions = (tls: TlsMaterial) => ({ ...clientOptions(tls), requestCert: true, rejectUnauthorized: false });

/** Why a request's caller is not a node of this testbed, or undefined when it is. */
export function clientCertProblem(req: IncomingMessage): string | undefined {
  const socket = req.socket as TLSSocket;
  const presented = typeof socket.getPeerCertificate === 'function' && Object.keys(socket.getPeerCertificate()).length > 0;
  // A resumed TLS 1.3 session says `authorized` even when it began without a certificate: ask for one too.
  if (socket.authorized && presented) return undefined;
  if (!presented) return 'no client certificate: nodes call each other with the certificate `main.js certs` made for them';
  return `client certificate refused (${String(socket.authorizationError)}): it is not from this testbed's CA, or not valid now`;
}

/** How nodes talk, as the report names it. */
export const transportName = (tls: boolean): string => (tls ? 'mutual TLS' : 'plain HTTP (no TLS)');

/** How this node talks to the others, as its log and the aggregator's output say: with the certificate it shows. */
export const transportOf = (tls?: TlsMaterial): string => (tls ? `${transportName(true)} (certificate ${tls.files.cert})` : transportName(false));
