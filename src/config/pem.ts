/**
 * What a PEM file the config names must hold for the server to use it, checked the same way at
 * start-up, on a TLS reload and by `check-config`.
 */
import { X509Certificate, createPublicKey } from 'node:crypto';

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
