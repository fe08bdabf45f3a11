/**
 * A TLS key of another type than the certificate (an EC key next to an RSA certificate: a renewal
 * that switched key type, with the key file replaced first) is refused, at start-up and on reload.
 *
 * docs/operations.md "Certificate renewal": a key that does not match the certificate keeps the
 * previous certificate on reload (logged `tls reload failed`), and start-up refuses it. OpenSSL's
 * own check (`createSecureContext`) only notices a mismatch between keys of the same type, so such
 * a pair used to be installed, and from then on every new handshake failed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect, type SecureContextOptions } from 'node:tls';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../helpers/harness.js';
import { makeCa, makeLeaf, type Pem } from '../helpers/tls-certs.js';
import { reloadSecureContext } from '../../src/server/tls-options.js';
import { parseConfig } from '../../src/config/load-config.js';

let dir: string;
let leaf: Pem;
let ecKeyFile: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'rampart-tls-keytype-'));
  leaf = makeLeaf(dir, makeCa(dir, 'ca'), 'server', 'server'); // RSA
  ecKeyFile = join(dir, 'ec.key');
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ecKeyFile], { stdio: 'ignore' });
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** One handshake: 'ok' or the error code. */
function handshake(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve('ok');
      socket.destroy();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      resolve(err.code ?? err.message);
      socket.destroy();
    });
  });
}

const MISMATCH = /^tls\.keyFile: .*: does not match tls\.certFile/;

test('reload: an EC key next to the RSA certificate is refused, the previous certificate keeps serving', async () => {
  const live = { certFile: join(dir, 'live.crt'), keyFile: join(dir, 'live.key') };
  copyFileSync(leaf.certFile, live.certFile);
  copyFileSync(leaf.keyFile, live.keyFile);
  const ts = await startServer({ tls: live, allowedOrigins: [] });
  try {
    assert.equal(await handshake(ts.port), 'ok');
    copyFileSync(ecKeyFile, live.keyFile);
    const result = ts.server.reloadTls();
    assert.equal(result.ok, false, 'a key that is not the certificate\'s must be refused');
    assert.match(result.ok ? '' : result.error, MISMATCH);
    assert.equal(await handshake(ts.port), 'ok', 'new handshakes still get the previous certificate');
    assert.ok(ts.logs.some((l) => l.includes('tls reload failed')));
    assert.ok(!ts.logs.some((l) => l.includes('PRIVATE KEY')), 'no key material in the logs');
  } finally {
    await ts.close();
  }
});

test('reload never installs the mismatched pair (the context is not swapped)', () => {
  const files: Record<string, Buffer> = { cert: readFileSync(leaf.certFile), key: readFileSync(ecKeyFile) };
  let swapped = 0;
  const server = { setSecureContext: (_options: SecureContextOptions) => void swapped++ };
  const result = reloadSecureContext(server, parseConfig({ tls: { certFile: 'cert', keyFile: 'key' } }).tls!, (path) => files[path]!);
  assert.equal(swapped, 0);
  assert.equal(result.ok, false);
  assert.match(result.ok ? '' : result.error, /^tls\.keyFile: key: does not match tls\.certFile/);
});

test('start-up: an EC key next to the RSA certificate refuses to start, naming tls.keyFile', async () => {
  const home = mkdtempSync(join(dir, 'start-'));
  const outcome = await startServer({ tls: { certFile: leaf.certFile, keyFile: ecKeyFile }, allowedOrigins: [] }, { keepDir: home }).then(
    async (ts) => {
      const seen = `listening; handshake: ${await handshake(ts.port)}`;
      await ts.close(); // so a server that did start does not keep the run alive
      return seen;
    },
    (err: Error) => err.message,
  );
  assert.match(outcome, MISMATCH);
  assert.ok(outcome.includes(ecKeyFile), 'the key file is named');
});
