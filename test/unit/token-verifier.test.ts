import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, createSecretKey, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, type JWK } from 'jose';
import type { KeyObject } from 'node:crypto';
import { createTokenVerifier, type TokenVerifier } from '../../src/auth/token-verifier.js';
import { jwksKeySource, publicKeySource, secretKeySource } from '../../src/auth/key-source.js';
import { createIssuerRouter, issuerVerifiers } from '../../src/auth/issuers.js';
import { parseConfig } from '../../src/config/load-config.js';

const SECRET = 'unit-test-secret-unit-test-secret-0123456789';
const SUB = randomUUID();
const now = (): number => Math.floor(Date.now() / 1000);
const b64url = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const publicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
let dir: string;
let pemFile: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'rampart-jwt-'));
  pemFile = join(dir, 'public.pem');
  writeFileSync(pemFile, publicPem);
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface MintOptions {
  alg?: string;
  kid?: string;
  /** `typ` header; absent when omitted. */
  typ?: unknown;
  /** Extra protected header parameters. */
  header?: Record<string, unknown>;
  exp?: number | null;
  nbf?: number;
  iss?: string;
  aud?: string;
  sub?: string | null;
  extra?: Record<string, unknown>;
}

async function mint(key: KeyObject | Uint8Array, o: MintOptions = {}): Promise<string> {
  const claims: Record<string, unknown> = { ...o.extra };
  if (o.sub !== null) claims.sub = o.sub ?? SUB;
  if (o.exp !== null) claims.exp = o.exp ?? now() + 3600;
  if (o.nbf !== undefined) claims.nbf = o.nbf;
  if (o.iss !== undefined) claims.iss = o.iss;
  if (o.aud !== undefined) claims.aud = o.aud;
  claims.iat = now();
  return new SignJWT(claims).setProtectedHeader({ alg: o.alg ?? 'HS256', ...(o.kid ? { kid: o.kid } : {}), ...(o.typ !== undefined ? { typ: o.typ as string } : {}), ...o.header }).sign(key);
}

const secretKey = createSecretKey(Buffer.from(SECRET));
const hs = (o: { issuer?: string; audience?: string; clockTolerance?: number; maxTokenLength?: number } = {}): TokenVerifier =>
  createTokenVerifier({ keySource: secretKeySource(SECRET), clockTolerance: o.clockTolerance ?? 0, maxTokenLength: o.maxTokenLength ?? 4096, ...o });

const invalid = { ok: false, reason: 'invalid_token' };

test('HS256 with the shared secret is accepted, identity from the claims', async () => {
  const result = await hs()(await mint(secretKey, { extra: { role: 'user', tid: 'acme' } }));
  assert.equal(result.ok, true);
  if (!result.ok) return;
  assert.equal(result.identity.userId, SUB);
  assert.equal(result.identity.role, 'user');
  assert.equal(result.identity.tenantId, 'acme');
  assert.ok(Math.abs(result.identity.expiresAt - (now() + 3600) * 1000) < 5000);
  const plain = await hs()(await mint(secretKey));
  assert.ok(plain.ok && plain.identity.tenantId === 'default' && plain.identity.role === undefined);
});

test('alg: none is refused (hand-built, unsigned)', async () => {
  const verify = hs();
  const payload = b64url({ sub: SUB, exp: now() + 3600 });
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    assert.deepEqual(await verify(`${b64url({ alg, typ: 'JWT' })}.${payload}.`), invalid, alg);
  }
  // With a signature part borrowed from a valid token, still refused.
  const valid = await mint(secretKey);
  assert.deepEqual(await verify(`${b64url({ alg: 'none' })}.${payload}.${valid.split('.')[2]}`), invalid);
});

test('HS/RS confusion: an HS256 token signed with the RSA public key PEM is refused', async () => {
  const verify = createTokenVerifier({ keySource: publicKeySource(pemFile), clockTolerance: 0, maxTokenLength: 4096 });
  const forged = await mint(createSecretKey(Buffer.from(publicPem)), { alg: 'HS256' });
  assert.deepEqual(await verify(forged), invalid);
  // Also when someone configured HS256 alongside a public key: the verifier refuses to build.
  assert.throws(() => createTokenVerifier({ keySource: publicKeySource(pemFile), algorithms: ['RS256', 'HS256'], clockTolerance: 0, maxTokenLength: 4096 }), /algorithm/i);
  // And a secret source never accepts asymmetric algorithms.
  assert.throws(() => createTokenVerifier({ keySource: secretKeySource(SECRET), algorithms: ['RS256'], clockTolerance: 0, maxTokenLength: 4096 }), /algorithm/i);
});

test('RS256 with a PEM public key file is accepted; another key or an RS token on an HS verifier is refused', async () => {
  const verify = createTokenVerifier({ keySource: publicKeySource(pemFile), clockTolerance: 0, maxTokenLength: 4096 });
  const ok = await verify(await mint(rsa.privateKey, { alg: 'RS256' }));
  assert.ok(ok.ok && ok.identity.userId === SUB);
  assert.deepEqual(await verify(await mint(otherRsa.privateKey, { alg: 'RS256' })), invalid);
  // RS384 is not in the default allowlist for an RSA key.
  assert.deepEqual(await verify(await mint(rsa.privateKey, { alg: 'RS384' })), invalid);
  assert.deepEqual(await hs()(await mint(rsa.privateKey, { alg: 'RS256' })), invalid);
});

test('expired → token_expired; nbf in the future, missing exp → invalid', async () => {
  const verify = hs();
  assert.deepEqual(await verify(await mint(secretKey, { exp: now() - 10 })), { ok: false, reason: 'token_expired' });
  assert.deepEqual(await verify(await mint(secretKey, { nbf: now() + 600 })), invalid);
  assert.deepEqual(await verify(await mint(secretKey, { exp: null })), invalid);
  assert.deepEqual(await verify(await mint(secretKey, { extra: { exp: 'tomorrow' }, exp: null })), invalid);
  // An expired token with a bad signature is invalid, not "expired" (nothing is believed unsigned).
  const expired = await mint(secretKey, { exp: now() - 10 });
  assert.deepEqual(await verify(expired.slice(0, -4) + 'AAAA'), invalid);
  // Clock tolerance: a token expired 3 s ago passes with 5 s tolerance.
  assert.equal((await hs({ clockTolerance: 5 })(await mint(secretKey, { exp: now() - 3 }))).ok, true);
});

test('issuer and audience are checked when configured, and when present', async () => {
  const verify = hs({ issuer: 'https://id.example.com', audience: 'chat' });
  assert.equal((await verify(await mint(secretKey, { iss: 'https://id.example.com', aud: 'chat' }))).ok, true);
  assert.deepEqual(await verify(await mint(secretKey, { iss: 'https://evil.example.com', aud: 'chat' })), invalid);
  assert.deepEqual(await verify(await mint(secretKey, { iss: 'https://id.example.com', aud: 'other' })), invalid);
  assert.deepEqual(await verify(await mint(secretKey, { aud: 'chat' })), invalid); // iss missing
  assert.deepEqual(await verify(await mint(secretKey, { iss: 'https://id.example.com' })), invalid); // aud missing
});

test('bad signature, garbage and oversize tokens', async () => {
  const verify = hs();
  const good = await mint(secretKey);
  const [h, p, s] = good.split('.') as [string, string, string];
  assert.deepEqual(await verify(`${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`), invalid);
  assert.deepEqual(await verify(await mint(createSecretKey(Buffer.from('another-secret-another-secret-0123456789')))), invalid);
  // Payload swapped under a valid signature.
  assert.deepEqual(await verify(`${h}.${b64url({ sub: randomUUID(), exp: now() + 3600 })}.${s}`), invalid);
  for (const garbage of ['', 'x', 'a.b', 'a.b.c', '...', `${h}.${p}`, `${h}.${p}.${s}.x`, 'ey.ey.ey', '\u0000', 'é.é.é', `${b64url('not json')}.${p}.${s}`]) {
    assert.deepEqual(await verify(garbage), invalid, JSON.stringify(garbage));
  }
  const big = await mint(secretKey, { extra: { pad: 'x'.repeat(5000) } });
  assert.deepEqual(await verify(big), { ok: false, reason: 'token_too_large' });
  assert.deepEqual(await hs({ maxTokenLength: 64 })(good), { ok: false, reason: 'token_too_large' });
  assert.deepEqual(await verify('x'.repeat(1_000_000)), { ok: false, reason: 'token_too_large' });
});

test('sub must be a UUID; role and tid claims must be plain names', async () => {
  const verify = hs();
  for (const sub of ['alice', '', '../admin', `${SUB} `, '00000000-0000-0000-0000-000000000000']) {
    assert.deepEqual(await verify(await mint(secretKey, { sub })), invalid, sub);
  }
  assert.deepEqual(await verify(await mint(secretKey, { sub: null })), invalid);
  assert.deepEqual(await verify(await mint(secretKey, { sub: null, extra: { sub: 42 } })), invalid);
  assert.deepEqual(await verify(await mint(secretKey, { extra: { role: 'admin user' } })), invalid);
  assert.deepEqual(await verify(await mint(secretKey, { extra: { role: ['admin'] } })), invalid);
  assert.deepEqual(await verify(await mint(secretKey, { extra: { tid: 'a/b' } })), invalid);
  // An uppercase UUID is the same user.
  const upper = await verify(await mint(secretKey, { sub: SUB.toUpperCase() }));
  assert.ok(upper.ok && upper.identity.userId === SUB);
});

test('JWKS: RS256 tokens selected by kid; an unknown kid is refused', async () => {
  const jwk: JWK = { ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  const jwk2: JWK = { ...(await exportJWK(otherRsa.publicKey)), kid: 'k2', alg: 'RS256', use: 'sig' };
  let fetches = 0;
  const server: Server = createServer((req, res) => {
    fetches++;
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk, jwk2] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const verify = createTokenVerifier({
      keySource: jwksKeySource(`http://127.0.0.1:${port}/.well-known/jwks.json`, 60_000),
      issuer: 'https://id.example.com',
      clockTolerance: 0,
      maxTokenLength: 4096,
    });
    const ok1 = await verify(await mint(rsa.privateKey, { alg: 'RS256', kid: 'k1', iss: 'https://id.example.com' }));
    assert.ok(ok1.ok && ok1.identity.userId === SUB);
    const ok2 = await verify(await mint(otherRsa.privateKey, { alg: 'RS256', kid: 'k2', iss: 'https://id.example.com' }));
    assert.equal(ok2.ok, true);
    // The key set is cached: two verifications, one fetch.
    assert.equal(fetches, 1);
    // A key signed by k2 but labelled k1 fails the signature check.
    assert.deepEqual(await verify(await mint(otherRsa.privateKey, { alg: 'RS256', kid: 'k1', iss: 'https://id.example.com' })), invalid);
    // An unknown kid is a key rotation the cache has not seen (see the rotation test): unavailable, not invalid.
    assert.deepEqual(await verify(await mint(rsa.privateKey, { alg: 'RS256', kid: 'nope', iss: 'https://id.example.com' })), { ok: false, reason: 'unavailable' });
    // HS256 signed with the JWK's public material is refused (not in the allowlist).
    assert.deepEqual(await verify(await mint(createSecretKey(Buffer.from(publicPem)), { alg: 'HS256', kid: 'k1', iss: 'https://id.example.com' })), invalid);
    assert.deepEqual(await verify(await mint(rsa.privateKey, { alg: 'RS256', kid: 'k1', iss: 'https://evil.example.com' })), invalid);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('JWKS endpoint down, failing or not a key set → unavailable (never counted as a bad token); garbage stays invalid', async () => {
  let mode: 'error' | 'html' | 'not_a_set' = 'error';
  const server: Server = createServer((_req, res) => {
    if (mode === 'error') res.writeHead(500).end('boom');
    else if (mode === 'html') res.writeHead(200, { 'content-type': 'text/html' }).end('<html>');
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":"nope"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const verifierFor = (url: string): TokenVerifier => createTokenVerifier({ keySource: jwksKeySource(url, 60_000), clockTolerance: 0, maxTokenLength: 4096 });
  const rs = await mint(rsa.privateKey, { alg: 'RS256', kid: 'k1' });
  const unavailable = { ok: false, reason: 'unavailable' };
  try {
    for (const m of ['error', 'html', 'not_a_set'] as const) {
      mode = m;
      assert.deepEqual(await verifierFor(`http://127.0.0.1:${port}/jwks`)(rs), unavailable, m);
    }
    // Garbage is judged before any key is fetched.
    const verify = verifierFor(`http://127.0.0.1:${port}/jwks`);
    for (const garbage of ['x', 'a.b.c', `${b64url({ alg: 'none' })}.${b64url({ sub: SUB })}.`, await mint(secretKey)]) {
      assert.deepEqual(await verify(garbage), invalid, garbage);
    }
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  // Nobody listening on that port any more: connection refused.
  assert.deepEqual(await verifierFor(`http://127.0.0.1:${port}/jwks`)(rs), unavailable);
});

/** A JWKS endpoint on loopback whose key set the test swaps; counts requests. */
async function jwksServer(initial: JWK[]): Promise<{ url: string; keys: JWK[]; fetches: () => number; close(): Promise<void> }> {
  let fetches = 0;
  const state = { keys: initial };
  const server: Server = createServer((_req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/jwks`,
    get keys() {
      return state.keys;
    },
    set keys(next: JWK[]) {
      state.keys = next;
    },
    fetches: () => fetches,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const jwkOf = async (key: KeyObject, kid: string, alg = 'RS256'): Promise<JWK> => ({ ...(await exportJWK(key)), kid, alg, use: 'sig' });

test('typ: absent, JWT and at+jwt pass (any case, application/ prefix too); refresh or ID token types are invalid_token', async () => {
  const verify = hs();
  for (const typ of [undefined, 'JWT', 'jwt', 'at+jwt', 'AT+JWT', 'application/at+jwt']) {
    assert.equal((await verify(await mint(secretKey, { typ }))).ok, true, String(typ));
  }
  for (const typ of ['refresh+jwt', 'id+jwt', 'dpop+jwt', 'secevent+jwt', 'JOSE', 'at+jwt ', 42, ['JWT']]) {
    assert.deepEqual(await verify(await mint(secretKey, { typ })), invalid, JSON.stringify(typ));
  }
  const strict = createTokenVerifier({ keySource: secretKeySource(SECRET), clockTolerance: 0, maxTokenLength: 4096, types: ['at+jwt'], requireType: true });
  assert.deepEqual(await strict(await mint(secretKey)), invalid);
  assert.deepEqual(await strict(await mint(secretKey, { typ: 'JWT' })), invalid);
  assert.equal((await strict(await mint(secretKey, { typ: 'at+JWT' }))).ok, true);
});

test('Ed25519 is accepted as an algorithm name beside EdDSA', async () => {
  const ed = generateKeyPairSync('ed25519');
  const edFile = join(dir, 'ed25519.pem');
  writeFileSync(edFile, ed.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  const byDefault = createTokenVerifier({ keySource: publicKeySource(edFile), clockTolerance: 0, maxTokenLength: 4096 });
  assert.equal((await byDefault(await mint(ed.privateKey, { alg: 'EdDSA' }))).ok, true);
  assert.equal((await byDefault(await mint(ed.privateKey, { alg: 'Ed25519' }))).ok, true);
  const onlyEd25519 = createTokenVerifier({ keySource: publicKeySource(edFile), algorithms: ['Ed25519'], clockTolerance: 0, maxTokenLength: 4096 });
  assert.equal((await onlyEd25519(await mint(ed.privateKey, { alg: 'Ed25519' }))).ok, true);
  assert.deepEqual(await onlyEd25519(await mint(ed.privateKey, { alg: 'EdDSA' })), invalid);
  assert.equal(parseConfig({ jwt: { publicKeyFile: edFile, algorithms: ['Ed25519', 'EdDSA'] } }).jwt.algorithms?.length, 2);
});

test('JWKS rotation: an unknown kid refetches once (rate-limited); still unknown or not allowed yet → unavailable', async () => {
  const jwks = await jwksServer([await jwkOf(rsa.publicKey, 'k1')]);
  const verifierFor = (refetchIntervalMs: number): TokenVerifier =>
    createTokenVerifier({ keySource: jwksKeySource(jwks.url, 600_000, refetchIntervalMs), clockTolerance: 0, maxTokenLength: 4096 });
  const k1 = await mint(rsa.privateKey, { alg: 'RS256', kid: 'k1' });
  const k2 = await mint(otherRsa.privateKey, { alg: 'RS256', kid: 'k2' });
  try {
    // Refetch allowed on every unknown kid (interval 0).
    const eager = verifierFor(0);
    assert.equal((await eager(k1)).ok, true);
    assert.equal(jwks.fetches(), 1);
    jwks.keys = [await jwkOf(rsa.publicKey, 'k1'), await jwkOf(otherRsa.publicKey, 'k2')]; // the IdP rotates in k2
    assert.equal((await eager(k2)).ok, true, 'the new key is found by one refetch');
    assert.equal(jwks.fetches(), 2);
    assert.equal((await eager(k2)).ok, true);
    assert.equal(jwks.fetches(), 2, 'a known kid is served from the cache');
    assert.deepEqual(await eager(await mint(rsa.privateKey, { alg: 'RS256', kid: 'k9' })), { ok: false, reason: 'unavailable' });
    assert.equal(jwks.fetches(), 3, 'one refetch, and still unknown');

    // With the default-like interval, the second unknown kid within it does not fetch at all.
    jwks.keys = [await jwkOf(rsa.publicKey, 'k1')];
    const slow = verifierFor(60_000);
    assert.equal((await slow(k1)).ok, true);
    const fetchesBefore = jwks.fetches();
    jwks.keys = [await jwkOf(rsa.publicKey, 'k1'), await jwkOf(otherRsa.publicKey, 'k2')];
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(await slow(await mint(otherRsa.privateKey, { alg: 'RS256', kid: `k2` })), { ok: false, reason: 'unavailable' });
      assert.deepEqual(await slow(await mint(otherRsa.privateKey, { alg: 'RS256', kid: `made-up-${i}` })), { ok: false, reason: 'unavailable' });
    }
    assert.equal(jwks.fetches(), fetchesBefore, 'made-up kids cannot flood the identity provider');
    // A known kid with a bad signature is still the client's fault.
    assert.deepEqual(await slow(await mint(otherRsa.privateKey, { alg: 'RS256', kid: 'k1' })), invalid);
  } finally {
    await jwks.close();
  }
});

test('several issuers: routed by exact iss before any key is fetched; keys per (issuer, kid); never a URL from the token', async () => {
  // Both JWKS issuers publish kid "k1", with different keys.
  const jwksA = await jwksServer([await jwkOf(rsa.publicKey, 'k1')]);
  const jwksB = await jwksServer([await jwkOf(otherRsa.publicKey, 'k1')]);
  const bait = await jwksServer([await jwkOf(otherRsa.publicKey, 'k1')]);
  const A = 'https://a.example.com';
  const B = 'https://b.example.com';
  const H = 'https://hmac.example.com';
  try {
    const config = parseConfig({
      jwt: {
        audience: 'chat',
        issuers: [
          { issuer: A, jwksUrl: jwksA.url },
          { issuer: B, jwksUrl: jwksB.url, audience: 'chat-b' },
          { issuer: H, secret: SECRET, types: ['at+jwt'] },
        ],
      },
    });
    const verify = createIssuerRouter(
      issuerVerifiers(config.jwt, () => assert.fail('no development key with issuers configured')),
      config.jwt.maxTokenLength,
    );
    const rs = (key: KeyObject, o: MintOptions): Promise<string> => mint(key, { alg: 'RS256', kid: 'k1', ...o });
    assert.equal((await verify(await rs(rsa.privateKey, { iss: A, aud: 'chat' }))).ok, true);
    assert.equal((await verify(await rs(otherRsa.privateKey, { iss: B, aud: 'chat-b' }))).ok, true);
    assert.equal((await verify(await mint(secretKey, { iss: H, aud: 'chat', typ: 'at+jwt' }))).ok, true);
    // The same kid under the other issuer is the other issuer's key.
    assert.deepEqual(await verify(await rs(rsa.privateKey, { iss: B, aud: 'chat-b' })), invalid);
    assert.deepEqual(await verify(await rs(otherRsa.privateKey, { iss: A, aud: 'chat' })), invalid);
    // Per-issuer audience and types.
    assert.deepEqual(await verify(await rs(otherRsa.privateKey, { iss: B, aud: 'chat' })), invalid);
    assert.deepEqual(await verify(await mint(secretKey, { iss: H, aud: 'chat', typ: 'JWT' })), invalid);
    // HS256 claiming a JWKS issuer: refused by that issuer's allowlist.
    assert.deepEqual(await verify(await mint(secretKey, { iss: A, aud: 'chat' })), invalid);
    const fetched = jwksA.fetches() + jwksB.fetches();
    // Unknown, missing, near-miss issuers: refused with no key fetched.
    for (const iss of ['https://evil.example.com', `${A}/`, A.toUpperCase(), undefined]) {
      assert.deepEqual(await verify(await rs(rsa.privateKey, { ...(iss !== undefined ? { iss } : {}), aud: 'chat' })), invalid, String(iss));
    }
    assert.equal(jwksA.fetches() + jwksB.fetches(), fetched);
    // jku / x5u in the header are never followed.
    const lure = await rs(otherRsa.privateKey, { iss: A, aud: 'chat', kid: 'k7', header: { jku: bait.url, x5u: bait.url } });
    assert.equal((await verify(lure)).ok, false);
    assert.equal(bait.fetches(), 0);
    assert.deepEqual(await verify('x'.repeat(5000)), { ok: false, reason: 'token_too_large' });
    assert.deepEqual(await verify('not.a.jwt'), invalid);
  } finally {
    await Promise.all([jwksA.close(), jwksB.close(), bait.close()]);
  }
});

test('single-issuer keys still work beside jwt.issuers, and catch tokens no named issuer claims', async () => {
  const config = parseConfig({ jwt: { secret: SECRET, issuers: [{ issuer: 'https://other.example.com', publicKeyFile: pemFile }] } });
  const verify = createIssuerRouter(
    issuerVerifiers(config.jwt, () => assert.fail('unused')),
    config.jwt.maxTokenLength,
  );
  assert.equal((await verify(await mint(secretKey))).ok, true);
  assert.equal((await verify(await mint(secretKey, { iss: 'https://anyone.example.com' }))).ok, true);
  assert.equal((await verify(await mint(rsa.privateKey, { alg: 'RS256', iss: 'https://other.example.com' }))).ok, true);
  // The named issuer's tokens go to its key only: the shared secret cannot sign for it.
  assert.deepEqual(await verify(await mint(secretKey, { iss: 'https://other.example.com' })), invalid);
});

test('tenants: each issuer speaks only for its listed tenants (tid; "default" without one), on both verification paths', async () => {
  const config = parseConfig({
    jwt: { secret: SECRET, tenants: ['acme'], issuers: [{ issuer: 'https://partner.example.com', publicKeyFile: pemFile, tenants: ['partner', 'default'] }] },
  });
  const verify = createIssuerRouter(issuerVerifiers(config.jwt, () => assert.fail('unused')), config.jwt.maxTokenLength);
  const partner = (tid?: string): Promise<string> =>
    mint(rsa.privateKey, { alg: 'RS256', iss: 'https://partner.example.com', ...(tid !== undefined ? { extra: { tid } } : {}) });
  assert.equal((await verify(await mint(secretKey, { extra: { tid: 'acme' } }))).ok, true);
  assert.deepEqual(await verify(await mint(secretKey, { extra: { tid: 'partner' } })), invalid, 'the top-level key may not speak for partner');
  assert.deepEqual(await verify(await mint(secretKey)), invalid, 'no tid is the default tenant, which is not listed');
  assert.equal((await verify(await partner('partner'))).ok, true);
  assert.equal((await verify(await partner())).ok, true, 'default is listed for the partner');
  assert.deepEqual(await verify(await partner('acme')), invalid, "the partner's key cannot mint a token for acme's users");
  // The HMAC fast path and jose decide the same.
  for (const hmacFastPath of [true, false]) {
    const v = createTokenVerifier({ keySource: secretKeySource(SECRET), clockTolerance: 0, maxTokenLength: 4096, tenants: ['acme'], hmacFastPath });
    assert.equal((await v(await mint(secretKey, { extra: { tid: 'acme' } }))).ok, true);
    assert.deepEqual(await v(await mint(secretKey, { extra: { tid: 'other' } })), invalid);
  }
});

test('maxLifetimeMs: a token expiring further ahead is invalid_token (so every accepted token can be revoked), on both paths', async () => {
  for (const hmacFastPath of [true, false]) {
    const v = createTokenVerifier({ keySource: secretKeySource(SECRET), clockTolerance: 5, maxTokenLength: 4096, maxLifetimeMs: 86_400_000, hmacFastPath });
    assert.equal((await v(await mint(secretKey, { exp: now() + 86_400 }))).ok, true, 'exactly the longest lifetime');
    assert.equal((await v(await mint(secretKey, { exp: now() + 86_400 + 5 }))).ok, true, 'within the clock tolerance');
    assert.deepEqual(await v(await mint(secretKey, { exp: now() + 86_400 + 60 })), invalid);
  }
});
