/**
 * What a PEM file the config names must hold for the server to use it, checked the same way at
 * start-up, on a TLS reload and by `check-config`.
 */
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

/** A certificate block, or OpenSSL's trusted form (`openssl x509 -addtrust`, distributions' `*.trust.crt`). */
const PEM_CERTIFICATE = /-----BEGIN (TRUSTED )?CERTIFICATE-----([^-]+)-----END \1?CERTIFICATE-----/g;

/**
 * Why a CA bundle's text is unusable, or undefined. OpenSSL takes a bundle with no certificate in
 * it (empty, truncated by a renewal half done, not PEM) without complaint, and then refuses every
 * client certificate.
 */
export function caBundleProblem(pem: string): string | undefined {
  const blocks = [...pem.matchAll(PEM_CERTIFICATE)];
  if (blocks.length === 0) return 'holds no PEM certificate';
  for (const [, , body] of blocks) {
    try {
      // The DER of either form starts with the certificate (the trusted form appends its trust settings).
      new X509Certificate(Buffer.from(body!.replace(/\s/g, ''), 'base64'));
    } catch {
      return 'holds a certificate that does not parse';
    }
  }
  return undefined;
}

/** A file `jwt.publicKeyFile` may name: serve's createPublicKey takes it. */
export function holdsPublicKey(pem: string): boolean {
  try {
    createPublicKey(pem);
    return true;
  } catch {
    return false;
  }
}

/** Which file of a TLS certificate/key pair is unusable, and why (never any of the file's content). */
export interface TlsPairProblem {
  key: 'tls.certFile' | 'tls.keyFile';
  problem: string;
}

/** Why a `tls.certFile`'s text is unusable (its first certificate does not parse), or undefined. */
export function certificateProblem(pem: string | Buffer): string | undefined {
  return parseCertificate(pem).problem;
}

/** Why a `tls.keyFile`'s text is unusable (no private key parses), or undefined. */
export function privateKeyProblem(pem: string | Buffer): string | undefined {
  return parsePrivateKey(pem).problem;
}

/**
 * Why a TLS certificate and key cannot serve together, or undefined: the certificate (the first of
 * the chain) must parse, the key must parse, and the key must be the certificate's. OpenSSL's own
 * check (`createSecureContext`) only notices a mismatch of keys of the same type: an EC key next
 * to an RSA certificate is installed, and then every handshake fails. Rampart has no passphrase
 * option, so an encrypted key is refused here as OpenSSL would refuse it.
 */
export function tlsPairProblem(cert: string | Buffer, key: string | Buffer): TlsPairProblem | undefined {
  const { certificate, problem: certProblem } = parseCertificate(cert);
  if (certificate === undefined) return { key: 'tls.certFile', problem: certProblem! };
  const { privateKey, problem: keyProblem } = parsePrivateKey(key);
  if (privateKey === undefined) return { key: 'tls.keyFile', problem: keyProblem! };
  if (!certificate.checkPrivateKey(privateKey)) return { key: 'tls.keyFile', problem: "does not match tls.certFile (it is not the certificate's key)" };
  return undefined;
}

// OpenSSL's and Node's parse errors say what failed, never what the file holds.
const reason = (err: unknown): string => (err instanceof Error ? err.message : 'unknown error');

function parseCertificate(pem: string | Buffer): { certificate?: X509Certificate; problem?: string } {
  try {
    return { certificate: new X509Certificate(pem) };
  } catch (err) {
    return { problem: `holds no PEM certificate that parses (${reason(err)})` };
  }
}

function parsePrivateKey(pem: string | Buffer): { privateKey?: KeyObject; problem?: string } {
  try {
    return { privateKey: createPrivateKey(pem) };
  } catch (err) {
    // Node asks for no passphrase and OpenSSL's answer ("interrupted or cancelled") says little.
    const text = typeof pem === 'string' ? pem : pem.toString('latin1');
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) {
      return { problem: 'holds an encrypted private key: Rampart takes no passphrase (store it decrypted, readable by the server only)' };
    }
    return { problem: `holds no PEM private key that parses (${reason(err)})` };
  }
}
