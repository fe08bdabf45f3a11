/**
 * A token is accepted only in its one canonical spelling (RFC 7515 §5.2: base64url with no line
 * breaks, whitespace or other characters). The decoders skip whitespace and `=` padding, so a valid
 * token with padding, a trailing newline, whitespace inside it, or other unused bits in the
 * signature's last character authenticated too: one token spelled any number of ways, and
 * whatever keys on the token string (a cache, a deny-list, a proxy revoking by token hash) saw a
 * new token each time. Both verification paths (the HMAC fast path and jose), and the issuer router.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { createTokenVerifier, isCompactJws } from '../../src/auth/token-verifier.js';
import { secretKeySource } from '../../src/auth/key-source.js';
import { createIssuerRouter } from '../../src/auth/issuers.js';

const SECRET = 'canonical-secret-canonical-secret-0123456789';
const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

function mint(claims: Record<string, unknown> = {}): string {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: randomUUID(), exp: Math.floor(Date.now() / 1000) + 600, ...claims })}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

/** The same token with the signature's last character's unused low bits set (HS256: 2 of them). */
function otherBits(token: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(token.at(-1)!);
  return token.slice(0, -1) + alphabet[last | 1];
}

function variants(token: string): Record<string, string> {
  return {
    'padded signature': `${token}=`,
    'trailing newline': `${token}\n`,
    'leading space': ` ${token}`,
    'space inside the signature': `${token.slice(0, -4)} ${token.slice(-4)}`,
    'tab inside the signature': `${token.slice(0, -4)}\t${token.slice(-4)}`,
    'other unused bits in the signature': otherBits(token),
    'a signature of impossible length (1 mod 4)': `${token}AA`,
  };
}

for (const hmacFastPath of [true, false]) {
  test(`only the canonical spelling of a valid token is accepted (hmacFastPath: ${hmacFastPath})`, async () => {
    const verify = createTokenVerifier({ keySource: secretKeySource(SECRET), clockTolerance: 5, maxTokenLength: 4096, hmacFastPath });
    const token = mint();
    assert.equal((await verify(token)).ok, true, 'the canonical token is accepted');
    for (const [name, variant] of Object.entries(variants(token))) {
      assert.notEqual(variant, token, name);
      assert.deepEqual(await verify(variant), { ok: false, reason: 'invalid_token' }, name);
    }
  });
}

test('the issuer router refuses non-canonical spellings before routing', async () => {
  let asked = 0;
  const verify = createIssuerRouter(
    [
      { issuer: 'https://a.example', verify: async () => ((asked++, { ok: true, identity: { userId: randomUUID(), role: undefined, tenantId: 'default', expiresAt: 0 } })) },
      { issuer: 'https://b.example', verify: async () => ((asked++, { ok: false, reason: 'invalid_token' })) },
    ],
    4096,
  );
  const token = mint({ iss: 'https://a.example' });
  assert.equal((await verify(token)).ok, true);
  assert.equal(asked, 1);
  for (const [name, variant] of Object.entries(variants(token))) assert.deepEqual(await verify(variant), { ok: false, reason: 'invalid_token' }, name);
  assert.equal(asked, 1, 'no issuer verifier was asked');
});

test('isCompactJws: three non-empty base64url parts of possible lengths, signature bits canonical', () => {
  const token = mint();
  assert.equal(isCompactJws(token), true);
  for (const bad of ['', 'a.b', 'a..b', '.a.b', 'a.b.', 'a.b.c.d', 'ab.cd.e', 'a=.b.c', 'a+b.cd.ef', 'a/b.cd.ef']) assert.equal(isCompactJws(bad), false, bad);
});
