import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ContentCipher, DecryptionError, UnknownKeyError } from '../../src/store/content-cipher.js';

const k1 = randomBytes(32);
const k2 = randomBytes(32);

describe('ContentCipher', () => {
  test('round-trips text, including multi-byte characters', () => {
    const cipher = new ContentCipher({ activeKeyId: 'k1', keys: { k1 } });
    for (const text of ['hello', '', 'héllo wörld ✓ 🔐🔐 漢字', 'x'.repeat(5000)]) {
      assert.equal(cipher.open('k1', cipher.seal(text, 'ctx'), 'ctx'), text);
    }
  });

  test('sealed output hides the plaintext and differs every time (random IV)', () => {
    const cipher = new ContentCipher({ activeKeyId: 'k1', keys: { k1 } });
    const a = cipher.seal('top secret words', 'ctx');
    const b = cipher.seal('top secret words', 'ctx');
    assert.notEqual(a, b);
    assert.ok(!a.includes('secret'));
    assert.match(a, /^[A-Za-z0-9+/]+=*$/);
    // 12-byte IV + 16 plaintext bytes + 16-byte tag.
    assert.equal(Buffer.from(a, 'base64').length, 12 + 16 + 16);
  });

  test('a value opened under another context fails (ciphertext moved to another row or field)', () => {
    const cipher = new ContentCipher({ activeKeyId: 'k1', keys: { k1 } });
    const sealed = cipher.seal('hello', 'row-1/content');
    assert.throws(() => cipher.open('k1', sealed, 'row-2/content'), DecryptionError);
  });

  test('tampered or truncated ciphertext fails authentication', () => {
    const cipher = new ContentCipher({ activeKeyId: 'k1', keys: { k1 } });
    const raw = Buffer.from(cipher.seal('hello world', 'c'), 'base64');
    raw[14]! ^= 1;
    assert.throws(() => cipher.open('k1', raw.toString('base64'), 'c'), DecryptionError);
    assert.throws(() => cipher.open('k1', raw.subarray(0, 20).toString('base64'), 'c'), DecryptionError);
    assert.throws(() => cipher.open('k1', '', 'c'), DecryptionError);
  });

  test('a value sealed with one key does not open with another under the same id', () => {
    const sealed = new ContentCipher({ activeKeyId: 'k1', keys: { k1 } }).seal('hello', 'c');
    const impostor = new ContentCipher({ activeKeyId: 'k1', keys: { k1: k2 } });
    assert.throws(() => impostor.open('k1', sealed, 'c'), DecryptionError);
  });

  test('rotation: the new active key seals, rotated-out keys still open', () => {
    const old = new ContentCipher({ activeKeyId: 'k1', keys: { k1 } });
    const sealedOld = old.seal('before rotation', 'c');
    const rotated = new ContentCipher({ activeKeyId: 'k2', keys: { k1, k2 } });
    assert.equal(rotated.activeKeyId, 'k2');
    assert.equal(rotated.open('k1', sealedOld, 'c'), 'before rotation');
    const sealedNew = rotated.seal('after rotation', 'c');
    assert.equal(rotated.open('k2', sealedNew, 'c'), 'after rotation');
    assert.throws(() => old.open('k2', sealedNew, 'c'), UnknownKeyError);
  });

  test('an unknown key id throws UnknownKeyError naming the key', () => {
    const cipher = new ContentCipher({ activeKeyId: 'k2', keys: { k2 } });
    const sealed = new ContentCipher({ activeKeyId: 'k1', keys: { k1 } }).seal('x', 'c');
    assert.throws(
      () => cipher.open('k1', sealed, 'c'),
      (err: unknown) => err instanceof UnknownKeyError && err.keyId === 'k1' && /"k1"/.test(err.message),
    );
    assert.equal(cipher.hasKey('k1'), false);
    assert.equal(cipher.hasKey('k2'), true);
  });

  test('refuses a bad keyring: wrong key size, missing active key, bad key id', () => {
    assert.throws(() => new ContentCipher({ activeKeyId: 'k1', keys: { k1: randomBytes(16) } }), /32 bytes/);
    assert.throws(() => new ContentCipher({ activeKeyId: 'k9', keys: { k1 } }), /active content key "k9"/);
    assert.throws(() => new ContentCipher({ activeKeyId: 'k1', keys: {} }), /active content key/);
    assert.throws(() => new ContentCipher({ activeKeyId: 'a b', keys: { 'a b': k1 } }), /key id/);
  });

  test('keeps its own copy of the keys', () => {
    const key = Buffer.from(k1);
    const cipher = new ContentCipher({ activeKeyId: 'k1', keys: { k1: key } });
    const sealed = cipher.seal('hello', 'c');
    key.fill(0);
    assert.equal(cipher.open('k1', sealed, 'c'), 'hello');
  });

  test('fromBase64 builds the same keyring from encoded keys', () => {
    const sealed = new ContentCipher({ activeKeyId: 'k1', keys: { k1 } }).seal('hello', 'c');
    const cipher = ContentCipher.fromBase64('k2', { k1: k1.toString('base64'), k2: k2.toString('base64') });
    assert.equal(cipher.open('k1', sealed, 'c'), 'hello');
    assert.throws(() => ContentCipher.fromBase64('k1', { k1: 'c2hvcnQ=' }), /32 bytes/);
  });
});
