/**
 * The synchronous HMAC path (src/auth/hmac-jwt.ts) against jose: every token goes through a
 * verifier with the fast path and one without it, at the same fixed clock, and both must give the
 * same result — the same identity, or the same refusal reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { createTokenVerifier, type TokenVerifierOptions, type VerifyResult } from '../../src/auth/token-verifier.js';
import { secretKeySource } from '../../src/auth/key-source.js';
import { verifyHmacJwt } from '../../src/auth/hmac-jwt.js';

const SECRET = 'hmac-equivalence-secret-0123456789abcdef';
const OTHER = 'another-secret-0123456789abcdef-0123456789';
const SUB = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const NOW = 1_700_000_000; // seconds: a fixed clock for both paths
const TOL = 30;

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const HASH: Record<string, string> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

/** Signs `header.payload` raw, so any header or payload text can be built. */
function sign(headerPart: string, payloadPart: string, alg = 'HS256', secret = SECRET): string {
  const mac = createHmac(HASH[alg] ?? 'sha256', secret).update(`${headerPart}.${payloadPart}`).digest('base64url');
  return `${headerPart}.${payloadPart}.${mac}`;
}
const tok = (header: unknown, claims: unknown, alg = 'HS256', secret = SECRET): string => sign(b64(header), b64(claims), alg, secret);
const good = (extra: Record<string, unknown> = {}) => ({ sub: SUB, exp: NOW + 600, iat: NOW, ...extra });
const H = { alg: 'HS256', typ: 'JWT' };

function pair(o: Partial<TokenVerifierOptions> = {}) {
  const base: TokenVerifierOptions = { keySource: secretKeySource(SECRET), clockTolerance: TOL, maxTokenLength: 4096, now: () => NOW * 1000, ...o };
  return { fast: createTokenVerifier({ ...base, hmacFastPath: true }), jose: createTokenVerifier({ ...base, hmacFastPath: false }) };
}

async function same(v: ReturnType<typeof pair>, token: string, expect?: VerifyResult['ok'] | string): Promise<VerifyResult> {
  const [a, b] = [await v.fast(token), await v.jose(token)];
  assert.deepEqual(a, b, `fast and jose disagree on ${token.slice(0, 80)}…`);
  if (expect === true || expect === false) assert.equal(a.ok, expect, token);
  else if (typeof expect === 'string') assert.equal(a.ok ? 'ok' : a.reason, expect, token);
  return a;
}

test('valid tokens: the same identity through both paths, for HS256/384/512', async () => {
  const v = pair({ algorithms: ['HS256', 'HS384', 'HS512'] });
  for (const alg of ['HS256', 'HS384', 'HS512']) {
    const r = await same(v, tok({ alg, typ: 'JWT' }, good({ role: 'admin', tid: 'acme', jti: 'j-1' }), alg), true);
    assert.ok(r.ok && r.identity.userId === SUB && r.identity.tenantId === 'acme' && r.identity.jti === 'j-1');
  }
  await same(v, tok({ alg: 'HS256' }, good()), true); // no typ
  await same(v, tok({ alg: 'HS256', typ: 'at+jwt' }, good()), true);
  await same(v, tok({ alg: 'HS256', typ: 'application/JWT' }, good()), true);
  await same(v, tok({ alg: 'HS256', crit: ['b64'], b64: true }, good()), true);
  await same(v, tok(H, good({ sub: SUB.toUpperCase() })), true);
});

test('signature and structure refusals', async () => {
  const v = pair();
  const t = tok(H, good());
  const [h, p, s] = t.split('.') as [string, string, string];
  await same(v, tok(H, good(), 'HS256', OTHER), 'invalid_token');
  await same(v, `${h}.${p}.`, 'invalid_token');
  await same(v, `${h}.${p}.${s.slice(0, -2)}`, 'invalid_token');
  await same(v, `${h}.${p}.${s}AA`, 'invalid_token');
  await same(v, `${h}.${p}.${s.replace(/./, (c) => (c === 'A' ? 'B' : 'A'))}`, 'invalid_token');
  await same(v, `${h}.${p}.${s}=`, undefined); // padding: whatever jose's decoder says
  await same(v, `${h}.${p}.${s.slice(0, 10)} ${s.slice(10)}`, undefined); // whitespace in the signature
  await same(v, `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}`, undefined);
  await same(v, `${h}.${p}`, 'invalid_token');
  await same(v, `${h}.${p}.${s}.x`, 'invalid_token');
  await same(v, `${h}.${p}.${s}.x.y`, 'invalid_token');
  await same(v, '', 'invalid_token');
  await same(v, '..', 'invalid_token');
  await same(v, 'not a token', 'invalid_token');
  await same(v, sign('', p), 'invalid_token');
  await same(v, sign(h, ''), 'invalid_token');
  await same(v, sign(b64('[1,2]'), p), 'invalid_token'); // header not an object
  await same(v, sign(b64('{"alg":"HS256"'), p), 'invalid_token'); // header not JSON
  await same(v, sign(h, b64('[1]')), 'invalid_token'); // claims not an object
  await same(v, sign(h, b64('null')), 'invalid_token');
  await same(v, sign(h, b64('{"sub":')), 'invalid_token');
  await same(v, sign(h, Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')), 'invalid_token'); // not UTF-8
  await same(v, sign(h, `${p}é`), 'invalid_token'); // non-ASCII payload part
  await same(v, sign(h, `${p}*`), 'invalid_token'); // not base64url
  await same(v, t, 'ok');
  const short = pair({ maxTokenLength: 50 });
  await same(short, t, 'token_too_large');
});

test('alg allowlist, crit and b64', async () => {
  const v = pair(); // HS256 only
  await same(v, tok({ alg: 'HS384' }, good(), 'HS384'), 'invalid_token');
  await same(v, tok({ alg: 'HS512' }, good(), 'HS512'), 'invalid_token');
  await same(v, tok({ alg: 'none' }, good()), 'invalid_token');
  await same(v, `${b64({ alg: 'none' })}.${b64(good())}.`, 'invalid_token');
  await same(v, tok({ alg: 'RS256' }, good()), 'invalid_token');
  await same(v, tok({ alg: 'hs256' }, good()), 'invalid_token');
  await same(v, tok({ alg: '' }, good()), 'invalid_token');
  await same(v, tok({ alg: 256 }, good()), 'invalid_token');
  await same(v, tok({}, good()), 'invalid_token');
  await same(v, tok({ alg: 'HS256', crit: ['exp'] }, good()), 'invalid_token');
  await same(v, tok({ alg: 'HS256', crit: [] }, good()), 'invalid_token');
  await same(v, tok({ alg: 'HS256', crit: 'b64', b64: true }, good()), 'invalid_token');
  await same(v, tok({ alg: 'HS256', crit: [''] }, good()), 'invalid_token');
  await same(v, tok({ alg: 'HS256', crit: ['b64'] }, good()), 'invalid_token');
  await same(v, tok({ alg: 'HS256', crit: ['b64'], b64: 'yes' }, good()), 'invalid_token');
  await same(v, tok({ alg: 'HS256', crit: ['b64'], b64: false }, good()), 'invalid_token');
  await same(v, tok({ alg: 'HS256', crit: ['b64', 'b64'], b64: true }, good()), 'ok');
  await same(v, tok({ alg: 'HS256', b64: false }, good()), 'ok'); // b64 without crit is ignored
  const both = pair({ algorithms: ['HS256', 'HS512'] });
  await same(both, tok({ alg: 'HS384' }, good(), 'HS384'), 'invalid_token');
  await same(both, tok({ alg: 'HS512' }, good(), 'HS512'), 'ok');
  await same(both, tok({ alg: 'HS512' }, good(), 'HS256'), 'invalid_token'); // MAC of the wrong size
});

test('typ allowlist', async () => {
  const v = pair();
  await same(v, tok({ alg: 'HS256', typ: 'refresh+jwt' }, good()), 'invalid_token');
  await same(v, tok({ alg: 'HS256', typ: 7 }, good()), 'invalid_token');
  const strict = pair({ requireType: true, types: ['at+jwt'] });
  await same(strict, tok({ alg: 'HS256' }, good()), 'invalid_token');
  await same(strict, tok({ alg: 'HS256', typ: 'JWT' }, good()), 'invalid_token');
  await same(strict, tok({ alg: 'HS256', typ: 'application/at+JWT' }, good()), 'ok');
});

test('time claims with clockTolerance, at the boundaries', async () => {
  const v = pair();
  await same(v, tok(H, good({ exp: NOW - TOL })), 'token_expired'); // exp <= now - tolerance
  await same(v, tok(H, good({ exp: NOW - TOL + 1 })), 'ok');
  await same(v, tok(H, good({ exp: NOW - 10_000 })), 'token_expired');
  await same(v, tok(H, good({ exp: NOW - 0.5 })), 'ok');
  await same(v, tok(H, good({ exp: String(NOW + 600) })), 'invalid_token');
  await same(v, tok(H, good({ exp: null })), 'invalid_token');
  await same(v, tok(H, { sub: SUB }), 'invalid_token'); // exp required
  await same(v, tok(H, good({ nbf: NOW + TOL })), 'ok');
  await same(v, tok(H, good({ nbf: NOW + TOL + 1 })), 'invalid_token');
  await same(v, tok(H, good({ nbf: 'now' })), 'invalid_token');
  await same(v, tok(H, good({ nbf: NOW + 100, exp: NOW - 100 })), 'invalid_token'); // nbf is judged first
  await same(v, tok(H, good({ iat: 'yesterday' })), 'invalid_token');
  await same(v, tok(H, good({ iat: NOW + 100_000 })), 'ok'); // no maxTokenAge: a future iat is not refused
  await same(v, tok(H, good({ iat: null })), 'invalid_token');
  const none = pair({ clockTolerance: 0 });
  await same(none, tok(H, good({ exp: NOW })), 'token_expired');
  await same(none, tok(H, good({ exp: NOW + 1 })), 'ok');
  await same(none, tok(H, good({ nbf: NOW + 1 })), 'invalid_token');
});

test('sub, iss, aud and Rampart claims', async () => {
  const v = pair();
  await same(v, tok(H, { exp: NOW + 600 }), 'invalid_token');
  await same(v, tok(H, good({ sub: 'alice' })), 'invalid_token');
  await same(v, tok(H, good({ sub: 42 })), 'invalid_token');
  await same(v, tok(H, good({ role: 'bad role!' })), 'invalid_token');
  await same(v, tok(H, good({ tid: 5 })), 'invalid_token');
  await same(v, tok(H, good({ jti: '' })), 'invalid_token');
  await same(v, tok(H, good({ iss: 'anyone', aud: ['x'] })), 'ok'); // not configured: not checked
  const scoped = pair({ issuer: 'https://idp.example', audience: 'rampart' });
  await same(scoped, tok(H, good({ iss: 'https://idp.example', aud: 'rampart' })), 'ok');
  await same(scoped, tok(H, good({ iss: 'https://idp.example', aud: ['other', 'rampart'] })), 'ok');
  await same(scoped, tok(H, good({ iss: 'https://idp.example', aud: ['other'] })), 'invalid_token');
  await same(scoped, tok(H, good({ iss: 'https://idp.example', aud: 'Rampart' })), 'invalid_token');
  await same(scoped, tok(H, good({ iss: 'https://idp.example', aud: { rampart: 1 } })), 'invalid_token');
  await same(scoped, tok(H, good({ iss: 'https://idp.example' })), 'invalid_token');
  await same(scoped, tok(H, good({ aud: 'rampart' })), 'invalid_token');
  await same(scoped, tok(H, good({ iss: 'https://evil.example', aud: 'rampart' })), 'invalid_token');
  await same(scoped, tok(H, good({ iss: ['https://idp.example'], aud: 'rampart' })), 'invalid_token');
  await same(scoped, tok(H, good({ iss: 'https://evil.example', aud: 'rampart', exp: NOW - 1000 })), 'invalid_token'); // iss before exp
});

test('random mutations of valid tokens: both paths agree on every one', async () => {
  const v = pair({ algorithms: ['HS256', 'HS384'], issuer: 'iss-1', audience: 'aud-1' });
  const alphabet = 'ABCabc012-_=.+/ é';
  let seed = 12345;
  const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  const bases = [
    tok({ alg: 'HS256', typ: 'JWT' }, good({ iss: 'iss-1', aud: 'aud-1' })),
    tok({ alg: 'HS384' }, good({ iss: 'iss-1', aud: ['aud-1'], nbf: NOW }), 'HS384'),
    tok({ alg: 'HS256', crit: ['b64'], b64: true }, good({ iss: 'iss-1', aud: 'aud-1', exp: NOW - 20 })),
  ];
  let accepted = 0;
  for (let i = 0; i < 600; i++) {
    const base = bases[i % bases.length]!;
    const chars = [...base];
    const edits = 1 + rnd(3);
    for (let e = 0; e < edits; e++) {
      const at = rnd(chars.length);
      const op = rnd(3);
      if (op === 0) chars[at] = alphabet[rnd(alphabet.length)]!;
      else if (op === 1) chars.splice(at, 1);
      else chars.splice(at, 0, alphabet[rnd(alphabet.length)]!);
    }
    const r = await same(v, i % 50 === 0 ? base : chars.join(''));
    if (r.ok) accepted++;
  }
  assert.ok(accepted >= 12, 'the unmutated bases are accepted');
});

test('verifyHmacJwt never throws and refuses an empty secret', () => {
  const o = { algorithms: new Set(['HS256']), requiredClaims: ['exp', 'sub'], clockTolerance: 0 };
  const t = sign(b64({ alg: 'HS256' }), b64(good()), 'HS256', '');
  assert.deepEqual(verifyHmacJwt(t, Buffer.alloc(0), o, NOW), { ok: false, expired: false });
  for (let i = 0; i < 200; i++) verifyHmacJwt(randomBytes(i).toString('latin1'), Buffer.from(SECRET), o, NOW);
});
