/**
 * What `check-config` says and what `serve` does agree (a config serve refuses is never graded
 * OK), environment names under map keys, and config errors that never show a secret.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, applyEnvOverrides, loadConfig, parseConfig } from '../../src/config/load-config.js';
import { checkConfigReport } from '../../src/cli/check-config.js';
import { ContentCipher } from '../../src/store/content-cipher.js';
import { takeSynchronousParam } from '../../src/store/open-store.js';
import { publicKeySource } from '../../src/auth/key-source.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// docs/protocol.md §9: "Under the map keys (`chat.roles`, `encryption.keys`) names are read in
// camelCase: set roles and key ids with upper-case letters in the file, not the environment."
test('env: a role named under chat.roles is read in camelCase (RAMPART_CHAT__ROLES__MOD → "mod")', () => {
  const c = loadConfig(undefined, { RAMPART_CHAT__ROLES__MOD: '{"send":true,"read":true}', RAMPART_CHAT__DEFAULT_ROLE: 'mod' }, { onUnknownEnv: () => assert.fail('known') });
  assert.deepEqual(Object.keys(c.chat.roles), ['mod']);
});

test('env: a key id under encryption.keys is read in camelCase (RAMPART_ENCRYPTION__KEYS__K1 with activeKeyId k1 loads)', () => {
  const key = Buffer.alloc(32, 7).toString('base64');
  const c = loadConfig(undefined, { RAMPART_ENCRYPTION__KEYS__K1: key, RAMPART_ENCRYPTION__ACTIVE_KEY_ID: 'k1' });
  assert.deepEqual(Object.keys(c.encryption?.keys ?? {}), ['k1']);
});

// README / docs/operations.md: check-config "prints every finding of that file ... and exits
// non-zero on an error"; serve refuses these configs at start-up, so check-config must not pass them.
test('check-config reports an encryption key that is not base64 of 32 bytes (serve refuses it)', () => {
  const input = { encryption: { activeKeyId: 'a', keys: { a: 'c2hvcnQ=' } } };
  assert.throws(() => ContentCipher.fromBase64('a', input.encryption.keys)); // what serve does at start-up
  const { code, text } = checkConfigReport(input, [], false);
  assert.equal(code, 1, text);
  assert.ok(!text.includes('c2hvcnQ='), 'the key is never echoed');
});

test('check-config reports an encryption key id that serve refuses', () => {
  const key = Buffer.alloc(32, 1).toString('base64');
  const input = { encryption: { activeKeyId: 'a b', keys: { 'a b': key } } };
  assert.throws(() => ContentCipher.fromBase64('a b', input.encryption.keys));
  const { code, text } = checkConfigReport(input, [], false);
  assert.equal(code, 1, text);
});

test('check-config reports a sqlite storage parameter that serve refuses', () => {
  const storage = 'sqlite:./data/rampart.db?synchronous=fulll';
  assert.throws(() => takeSynchronousParam(storage.slice('sqlite:'.length)));
  const { code, text } = checkConfigReport({ storage }, [], false);
  assert.equal(code, 1, text);
});

test('check-config reports a postgres ?schema= name that serve refuses', () => {
  const { code, text } = checkConfigReport({ storage: 'postgres://rampart@db/rampart?schema=Prod-Chat' }, [], false);
  assert.equal(code, 1, text);
});

// load-config.ts: "Errors name the key and the rule". The key that is not an object is `jwt`.
test('env override below a non-object names the key that is not an object', () => {
  try {
    applyEnvOverrides({ jwt: 'x' }, { RAMPART_JWT__SECRET: 'y' });
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.doesNotMatch(err.message, /jwt\.secret is not an object/);
    assert.match(err.message, /\bjwt\b.*not an object/);
  }
});

test('check-config reports a jwt.publicKeyFile that holds no key (serve refuses it)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-cfg-'));
  try {
    const file = join(dir, 'jwt.pem');
    writeFileSync(file, 'not a PEM key\n');
    assert.throws(() => publicKeySource(file)); // what serve does at start-up
    const { code, text } = checkConfigReport({ jwt: { publicKeyFile: file } }, [], false);
    assert.equal(code, 1, text);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// load-config.ts: errors name the key and the rule and never echo the value (it may be a secret).
const SWAPPED_KEY = Buffer.alloc(32, 9).toString('base64');

test('an encryption key written where its id belongs (keys/ids swapped) is not echoed in the error', () => {
  const input = { encryption: { activeKeyId: 'k1', keys: { [SWAPPED_KEY]: 'k1' } } };
  try {
    parseConfig(input);
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /encryption\.keys/);
    assert.ok(!err.message.includes(SWAPPED_KEY), err.message);
  }
  const { text } = checkConfigReport(input, [], false);
  assert.ok(!text.includes(SWAPPED_KEY), text);
});

test('admin.token and metrics.token must be what an Authorization header carries: a space is refused at start, not a lock-out later', () => {
  for (const input of [{ admin: { token: 'a token with spaces that is long enough!!' } }, { metrics: { token: 'metrics token w/ space' } }]) {
    const secret = Object.values(input)[0]!.token;
    try {
      parseConfig(input);
      assert.fail('expected a ConfigError');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /(admin|metrics)\.token: printable ASCII without spaces/);
      assert.ok(!err.message.includes(secret), 'the value is never echoed');
    }
  }
});

test('chat.editWindowMs must be shorter than chat.retentionDays: an edit of a message retention deletes would outlive it', () => {
  assert.throws(() => parseConfig({ chat: { retentionDays: 1, editWindowMs: 86_400_000 } }), /chat\.editWindowMs: must be shorter than chat\.retentionDays/);
  assert.doesNotThrow(() => parseConfig({ chat: { retentionDays: 1, editWindowMs: 86_399_999 } }));
});
