/**
 * TLS for `wss://`: the https server options built from `config.tls` (forward-secret AEAD suites,
 * TLS 1.2–1.3, optional client certificates), the HSTS header, and the certificate reload that
 * SIGHUP triggers. Pure builders over a file reader, so tests and reloads share one code path.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate, createHash } from 'node:crypto';
import { createSecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RampartConfig } from '../config/schema.js';
import { caBundleProblem, tlsPairProblem } from '../config/pem.js';

export type TlsConfig = NonNullable<RampartConfig['tls']>;
export type ReadFile = (path: string) => Buffer;

/**
 * What can be swapped on a running server (`server.setSecureContext`): keys, CAs and protocol policy.
 * Checked before use: the certificate and the key parse and belong together (pem.ts), so a bad pair
 * is refused at start-up and on reload with the key named, not left to fail every handshake.
 * Errors read `tls.certFile: PATH: …` / `tls.keyFile: PATH: …` and never carry key material.
 */
export function secureContextOptions(tls: TlsConfig, read: ReadFile = readFileSync): SecureContextOptions {
  const cert = readNamed('tls.certFile', tls.certFile, read);
  const key = readNamed('tls.keyFile', tls.keyFile, read);
  const pair = tlsPairProblem(cert, key);
  if (pair !== undefined) throw new Error(`${pair.key}: ${pair.key === 'tls.certFile' ? tls.certFile : tls.keyFile}: ${pair.problem}`);
  return {
    cert,
    key,
    ...(tls.caFile !== undefined ? { ca: caBundle(tls.caFile, read) } : {}),
    ciphers: tls.ciphers,
    honorCipherOrder: tls.honorCipherOrder,
    minVersion: tls.minVersion,
    maxVersion: tls.maxVersion,
  };
}

/** A file's bytes; a read error names the config key and the path (fs messages hold no content). */
function readNamed(key: string, path: string, read: ReadFile): Buffer {
  try {
    return read(path);
  } catch (err) {
    throw new Error(`${key}: ${path}: ${err instanceof Error ? err.message : 'cannot be read'}`);
  }
}

/**
 * The CA bundle, checked: OpenSSL takes a file with no certificate in it (empty, truncated by a
 * renewal half done, not PEM) without complaint, and then refuses every client certificate.
 */
function caBundle(path: string, read: ReadFile): Buffer {
  const pem = readNamed('tls.caFile', path, read);
  const problem = caBundleProblem(pem.toString('latin1'));
  if (problem !== undefined) throw new Error(`tls.caFile: ${path} ${problem}`);
  return pem;
}


export interface HttpsTlsOptions extends SecureContextOptions {
  requestCert: boolean;
  rejectUnauthorized: boolean;
}

/**
 * The TLS part of `https.createServer` options, checked as a reload checks them (a bad file or
 * pair refuses start-up naming its key; whatever else OpenSSL refuses is prefixed `tls:`).
 */
export function httpsOptions(tls: TlsConfig, read: ReadFile = readFileSync): HttpsTlsOptions {
  const requestCert = tls.requestClientCert || tls.requireClientCert;
  const options = secureContextOptions(tls, read);
  try {
    createSecureContext(options);
  } catch (err) {
    throw new Error(`tls: ${err instanceof Error ? err.message : 'the certificate, key or CA cannot be used'}`);
  }
  return { ...options, requestCert, rejectUnauthorized: tls.requireClientCert };
}

/** Problems in a `tls` section that the schema cannot express (refused at start-up). */
export function tlsConfigProblems(tls: TlsConfig): string[] {
  const problems: string[] = [];
  if (tls.minVersion === 'TLSv1.3' && tls.maxVersion === 'TLSv1.2') problems.push('tls.maxVersion: must be ≥ tls.minVersion');
  if ((tls.requestClientCert || tls.requireClientCert) && tls.caFile === undefined) {
    problems.push('tls.caFile: required with tls.requestClientCert or tls.requireClientCert (the CA that signs client certificates)');
  }
  return problems;
}

/**
 * With `requestClientCert` alone a client may send no certificate, but one it sends must verify:
 * an unverifiable certificate is refused rather than silently treated as none.
 */
export function refuseUnverifiedClientCert(socket: TLSSocket): void {
  if (!socket.authorized && socket.getPeerCertificate().raw !== undefined) socket.destroy();
}

export function hstsHeader(tls: TlsConfig | undefined): string | undefined {
  return tls && tls.hstsMaxAge > 0 ? `max-age=${tls.hstsMaxAge}` : undefined;
}

/** Wraps an HTTP handler so every response carries `headers` (merged by `writeHead`). */
export function withResponseHeaders(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  headers: Record<string, string>,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    handler(req, res);
  };
}

/** SHA-256 fingerprint of the first certificate of a PEM chain (logged on reload; not secret). */
export function certificateFingerprint(pem: Buffer | string): string {
  try {
    return new X509Certificate(pem).fingerprint256;
  } catch {
    return createHash('sha256').update(pem).digest('hex');
  }
}

export type TlsReloadResult = { ok: true; fingerprint: string } | { ok: false; error: string };

/**
 * Reads the certificate, key and CA again and applies them to new handshakes; open connections
 * keep their session. Anything unreadable or inconsistent (a key that does not match the
 * certificate, of the same type or not) keeps the old context.
 */
export function reloadSecureContext(server: { setSecureContext(options: SecureContextOptions): void }, tls: TlsConfig, read: ReadFile = readFileSync): TlsReloadResult {
  let options: SecureContextOptions;
  try {
    options = secureContextOptions(tls, read);
    createSecureContext(options); // what else OpenSSL refuses (a CA bundle, the cipher list)
    server.setSecureContext(options);
  } catch (err) {
    // OpenSSL and fs messages name the file or the problem, never key material.
    return { ok: false, error: err instanceof Error ? err.message : 'unknown' };
  }
  return { ok: true, fingerprint: certificateFingerprint(options.cert as Buffer) };
}
