/**
 * A TLS certificate or key file that reads but cannot be used is an error, in `check-config` and
 * at start-up, naming the config key.
 *
 * docs/operations.md (TLS, renewal): "a certificate that does not parse, a key that does not match
 * it … at start-up the same refuses to start, and `check-config` reports it"; protocol.md §9: a bad
 * value exits "with the key and the rule named". `check-config` only checked that the files could
 * be read (a garbage certificate graded "A"), and `serve` failed with a bare OpenSSL message
 * ("PEM routines::no start line") naming neither the key nor the file. Messages never carry the
 * files' content (a key file's content is the secret).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfigReport } from '../../src/cli/check-config.js';
import { parseConfig } from '../../src/config/load-config.js';
import { startServer } from '../helpers/harness.js';
import { makeCa, makeLeaf, type Pem } from '../helpers/tls-certs.js';

let dir: string;
let leaf: Pem;
let badCert: string;
let badKey: string;
let ecKey: string;
let encryptedKey: string;
/** Text written into the garbage key file: it must never show up in a message. */
const SECRET_GARBAGE = 'c2VjcmV0LWtleS1tYXRlcmlhbC10aGF0LWRvZXMtbm90LXBhcnNl';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'rampart-tls-files-'));
  leaf = makeLeaf(dir, makeCa(dir, 'ca'), 'server', 'server');
  badCert = join(dir, 'bad.crt');
  writeFileSync(badCert, 'this is not a certificate\n');
  badKey = join(dir, 'bad.key');
  writeFileSync(badKey, `-----BEGIN PRIVATE KEY-----\n${SECRET_GARBAGE}\n-----END PRIVATE KEY-----\n`);
  ecKey = join(dir, 'ec.key');
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ecKey], { stdio: 'ignore' });
  encryptedKey = join(dir, 'encrypted.key');
  execFileSync('openssl', ['pkey', '-in', leaf.keyFile, '-aes256', '-passout', 'pass:x', '-out', encryptedKey], { stdio: 'ignore' });
});
after(() => rmSync(dir, { recursive: true, force: true }));

const keyLines = (): string[] => leaf.key.toString().split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'));

test('check-config: a certificate that does not parse is an error under tls.certFile (it graded A)', () => {
  const report = checkConfigReport({ tls: { certFile: badCert, keyFile: leaf.keyFile } }, [], false);
  assert.match(report.text, /^ERROR\s+tls\.certFile: file holds no PEM certificate that parses/m, report.text);
  assert.equal(report.code, 1);
  assert.match(report.text, /grade: F/);
  assert.ok(!report.text.includes(badCert), 'findings name keys, not values');
});

test('check-config: a key that does not parse, an encrypted key, a key of another type: errors under tls.keyFile', () => {
  for (const [keyFile, expected] of [
    [badKey, /^ERROR\s+tls\.keyFile: file holds no PEM private key that parses/m],
    [encryptedKey, /^ERROR\s+tls\.keyFile: file holds an encrypted private key/m],
    [ecKey, /^ERROR\s+tls\.keyFile: file does not match tls\.certFile/m],
  ] as const) {
    const report = checkConfigReport({ tls: { certFile: leaf.certFile, keyFile } }, [], false);
    assert.match(report.text, expected, report.text);
    assert.equal(report.code, 1);
    assert.ok(!report.text.includes(SECRET_GARBAGE));
    for (const line of keyLines()) assert.ok(!report.text.includes(line), 'no key material in the report');
  }
  // Control: the right pair passes.
  const good = checkConfigReport({ tls: { certFile: leaf.certFile, keyFile: leaf.keyFile } }, [], false);
  assert.doesNotMatch(good.text, /tls\./, good.text);
  assert.equal(good.code, 0);
});

test('production start-up (parseConfig) refuses the same, naming the key', () => {
  const production = { mode: 'production', jwt: { secret: 'x'.repeat(40), issuer: 'i', audience: 'a' }, allowedOrigins: ['https://chat.example.com'], metrics: { token: 't'.repeat(32) } };
  assert.throws(() => parseConfig({ ...production, tls: { certFile: badCert, keyFile: leaf.keyFile } }), /tls\.certFile: file holds no PEM certificate/);
  assert.throws(() => parseConfig({ ...production, tls: { certFile: leaf.certFile, keyFile: ecKey } }), /tls\.keyFile: file does not match tls\.certFile/);
});

test('serve: a certificate or key that does not parse refuses start-up as tls.certFile/tls.keyFile: PATH: reason', async () => {
  for (const [tls, expected] of [
    [{ certFile: badCert, keyFile: leaf.keyFile }, `tls.certFile: ${badCert}: holds no PEM certificate that parses (`],
    [{ certFile: leaf.certFile, keyFile: badKey }, `tls.keyFile: ${badKey}: holds no PEM private key that parses (`],
    [{ certFile: leaf.certFile, keyFile: encryptedKey }, `tls.keyFile: ${encryptedKey}: holds an encrypted private key`],
  ] as const) {
    const home = mkdtempSync(join(dir, 'start-'));
    await assert.rejects(startServer({ tls }, { keepDir: home }), (err: Error) => {
      assert.ok(err.message.startsWith(expected), `start-up error: ${err.message}`);
      assert.ok(!err.message.includes(SECRET_GARBAGE), 'no key file content in the error');
      return true;
    });
  }
});

test('serve: a file that cannot be read names its key and path', async () => {
  const missing = join(dir, 'missing.key');
  await assert.rejects(startServer({ tls: { certFile: leaf.certFile, keyFile: missing } }, { keepDir: mkdtempSync(join(dir, 'start-')) }), (err: Error) => {
    assert.ok(err.message.startsWith(`tls.keyFile: ${missing}: `), err.message);
    return true;
  });
});
