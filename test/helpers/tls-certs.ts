/**
 * Test certificates made with this machine's `openssl`: CAs, server certificates for 127.0.0.1
 * (RSA, so static-RSA suites are possible at all and their refusal means something) and client
 * certificates, written as PEM files under a directory the caller removes.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';

export interface Pem {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
  fingerprint: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function load(certFile: string, keyFile: string): Pem {
  const cert = readFileSync(certFile);
  return { certFile, keyFile, cert, key: readFileSync(keyFile), fingerprint: new X509Certificate(cert).fingerprint256 };
}

/** A self-signed CA named `name` (files `name.crt`, `name.key`). */
export function makeCa(dir: string, name: string): Pem {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return load(join(dir, `${name}.crt`), join(dir, `${name}.key`));
}

/** A leaf certificate signed by `ca`: `server` for 127.0.0.1/localhost, or `client`. */
export function makeLeaf(dir: string, ca: Pem, name: string, kind: 'server' | 'client'): Pem {
  const ext = join(dir, `${name}.ext`);
  writeFileSync(
    ext,
    kind === 'server'
      ? 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n'
      : 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n',
  );
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', ext], dir);
  return load(join(dir, `${name}.crt`), join(dir, `${name}.key`));
}
