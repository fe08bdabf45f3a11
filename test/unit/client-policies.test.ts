/** The SDK's pure policies: backoff bounds and jitter spread, refresh timing, close classification, pos tracking; how stores read. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backoffCeiling, backoffDelay, DEFAULT_BACKOFF } from '../../src/client/backoff.js';
import { refreshDelay, tokenExpiry, tokenIdentity, tokenSubject, DEFAULT_REFRESH } from '../../src/client/token-source.js';
import { classifyClose } from '../../src/client/refusals.js';
import { PosTracker, RecentIds } from '../../src/client/pos-tracker.js';
import { IllFormedSyncStateError, parseSyncState, WebStorageSyncStore } from '../../src/client/sync-store.js';
import { FileSyncStore } from '../../src/client/file-sync-store.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { fakeJwt, seededRandom } from '../helpers/fake-client-env.js';

test('backoff: delays stay in [0, min(max, base·2^n)) and the ceiling is capped', () => {
  const o = { baseMs: 100, maxMs: 10_000 };
  assert.deepEqual([0, 1, 2, 3, 6, 7, 20, 1000].map((n) => backoffCeiling(n, o)), [100, 200, 400, 800, 6400, 10_000, 10_000, 10_000]);
  for (const r of [0, 0.5, 0.999999]) {
    for (let n = 0; n < 40; n++) {
      const d = backoffDelay(n, o, () => r);
      assert.ok(d >= 0 && d < backoffCeiling(n, o), `attempt ${n} random ${r}: ${d}`);
    }
  }
  assert.equal(backoffDelay(0, o, () => 0), 0);
  assert.equal(backoffDelay(50, DEFAULT_BACKOFF, () => 0.999999), DEFAULT_BACKOFF.maxMs - 1);
});

test('backoff: full jitter spreads clients over the whole window (seeded)', () => {
  const o = { baseMs: 500, maxMs: 30_000 };
  const random = seededRandom(42);
  const ceiling = backoffCeiling(4, o); // 8000
  const samples = Array.from({ length: 2000 }, () => backoffDelay(4, o, random));
  const buckets = new Array<number>(10).fill(0);
  for (const d of samples) buckets[Math.floor((d / ceiling) * 10)]!++;
  // Uniform: every tenth of the window gets roughly a tenth of the clients (no lockstep).
  for (const b of buckets) assert.ok(b > 140 && b < 260, `bucket ${b} of ${buckets}`);
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  assert.ok(Math.abs(mean - ceiling / 2) < ceiling * 0.05, `mean ${mean}`);
  assert.ok(new Set(samples).size > 1500, 'distinct delays');
});

test('refresh: 30 s before exp, or at half of a short life, never sooner than the minimum', () => {
  const now = 1_000_000;
  assert.equal(refreshDelay(now + 3_600_000, now, DEFAULT_REFRESH), 3_570_000);
  assert.equal(refreshDelay(now + 60_000, now, DEFAULT_REFRESH), 30_000);
  assert.equal(refreshDelay(now + 20_000, now, DEFAULT_REFRESH), 10_000); // half of 20 s
  assert.equal(refreshDelay(now + 500, now, DEFAULT_REFRESH), 1_000); // minimum
  assert.equal(refreshDelay(now - 5_000, now, DEFAULT_REFRESH), 1_000);
  assert.equal(tokenExpiry(fakeJwt(1_700_000_123_000)), 1_700_000_123_000);
  for (const bad of ['', 'abc', 'a.b.c', 'a.' + Buffer.from('{"exp":"x"}').toString('base64url') + '.c']) assert.equal(tokenExpiry(bad), undefined);
});

test('close classification: permanent refusals stop, shutdown is honoured, the rest backs off', () => {
  const c = (code: number, extra: { authFailure?: string; httpStatus?: number; renewable?: boolean } = {}) => classifyClose({ code, renewable: true, ...extra });
  assert.deepEqual(c(CloseCode.INVALID_TOKEN, { authFailure: 'invalid_token' }), { kind: 'permanent', reason: 'invalid_token' });
  assert.deepEqual(c(CloseCode.INVALID_TOKEN), { kind: 'permanent', reason: 'invalid_token' });
  assert.deepEqual(c(CloseCode.IDENTITY_CHANGE, { authFailure: 'identity_change' }), { kind: 'permanent', reason: 'identity_change' });
  assert.deepEqual(c(CloseCode.IDENTITY_CHANGE), { kind: 'permanent', reason: 'identity_change' });
  assert.deepEqual(c(1006, { httpStatus: 403 }), { kind: 'permanent', reason: 'origin_not_allowed' });
  assert.deepEqual(c(CloseCode.BANNED, { authFailure: 'banned' }), { kind: 'permanent', reason: 'banned' });
  assert.deepEqual(c(CloseCode.BANNED), { kind: 'permanent', reason: 'banned' }, 'a ban of an open session');
  assert.deepEqual(c(CloseCode.ENDED_BY_USER), { kind: 'permanent', reason: 'ended_by_user' });
  assert.deepEqual(c(CloseCode.DISCONNECTED_BY_ADMIN), { kind: 'backoff' });
  assert.deepEqual(c(CloseCode.GOING_AWAY), { kind: 'shutdown' });
  assert.deepEqual(c(CloseCode.TOKEN_EXPIRED), { kind: 'fresh_token' });
  assert.deepEqual(c(CloseCode.INVALID_TOKEN, { authFailure: 'token_expired' }), { kind: 'fresh_token' });
  assert.deepEqual(c(CloseCode.TOKEN_EXPIRED, { renewable: false }), { kind: 'permanent', reason: 'token_expired' });
  for (const code of [1006, 1011, CloseCode.HEARTBEAT_TIMEOUT, CloseCode.TOO_MANY_SESSIONS, CloseCode.RATE_LIMIT_ABUSE, CloseCode.SLOW_CONSUMER, CloseCode.SERVICE_UNAVAILABLE]) {
    assert.deepEqual(c(code), { kind: 'backoff' }, String(code));
  }
  assert.deepEqual(c(CloseCode.INVALID_TOKEN, { authFailure: 'locked_out' }), { kind: 'backoff' });
  assert.deepEqual(c(1006, { httpStatus: 429 }), { kind: 'backoff' });
  assert.deepEqual(c(1006, { httpStatus: 503 }), { kind: 'backoff' });
});

test('pos tracker: next is delivered, old is a duplicate, a jump is a gap; pruning and reset move it', () => {
  const t = new PosTracker(5);
  assert.equal(t.check(5), 'duplicate');
  assert.equal(t.check(3), 'duplicate');
  assert.equal(t.check(6), 'deliver');
  assert.equal(t.check(8), 'gap');
  t.advance(6);
  assert.equal(t.pos, 6);
  t.advance(4);
  assert.equal(t.pos, 6, 'never backwards');
  t.skipTo(20);
  assert.equal(t.check(20), 'deliver');
  t.reset(2);
  assert.equal(t.check(3), 'deliver');
  const ids = new RecentIds(3);
  for (const id of ['a', 'b', 'c', 'd']) ids.add(id);
  assert.equal(ids.has('a'), false);
  assert.equal(ids.has('d'), true);
});

test('sync state: stores are read defensively', () => {
  assert.deepEqual(parseSyncState({ deviceId: 'dev-1', pos: 3 }), { deviceId: 'dev-1', pos: 3 });
  for (const bad of [null, 1, {}, { deviceId: '', pos: 1 }, { deviceId: 'a b', pos: 1 }, { deviceId: 'x', pos: -1 }, { deviceId: 'x', pos: 1.5 }, { deviceId: 'x'.repeat(65), pos: 1 }]) {
    assert.equal(parseSyncState(bad), undefined, JSON.stringify(bad));
  }
  const map = new Map<string, string>();
  const storage = { getItem: (k: string) => map.get(k) ?? null, setItem: (k: string, v: string) => void map.set(k, v) };
  const store = new WebStorageSyncStore(storage, 'k');
  assert.equal(store.load(), undefined);
  store.save({ deviceId: 'dev-2', pos: 9 });
  assert.deepEqual(store.load(), { deviceId: 'dev-2', pos: 9 });
  // Ill-formed data is reported (the client says store_failed and goes on as a new device), not taken for "no state".
  for (const bad of ['{not json', '{"deviceId":"a b","pos":1}', 'null']) {
    map.set('k', bad);
    assert.throws(() => store.load(), IllFormedSyncStateError, bad);
  }
});

test('sync state: the user a position belongs to is kept through a store; one that is not a user id makes the state ill-formed', () => {
  const map = new Map<string, string>();
  const storage = { getItem: (k: string) => map.get(k) ?? null, setItem: (k: string, v: string) => void map.set(k, v) };
  const store = new WebStorageSyncStore(storage);
  store.save({ deviceId: 'dev-2', pos: 9, userId: 'u-1' });
  assert.deepEqual(store.load(), { deviceId: 'dev-2', pos: 9, userId: 'u-1' });
  assert.deepEqual(parseSyncState({ deviceId: 'dev-1', pos: 3, userId: 'u-1' }), { deviceId: 'dev-1', pos: 3, userId: 'u-1' });
  for (const userId of ['', 7, null, 'x'.repeat(257)]) assert.equal(parseSyncState({ deviceId: 'dev-1', pos: 3, userId }), undefined, JSON.stringify(userId));
  map.set('rampart:sync', '{"deviceId":"dev-1","pos":3,"userId":5}');
  assert.throws(() => store.load(), IllFormedSyncStateError);
});

test('token subject: the `sub` of a JWT, lowercased as the server has it, read without verifying; none for anything else', () => {
  assert.equal(tokenSubject(fakeJwt(1_700_000_123_000, 'AbC-1')), 'abc-1');
  for (const bad of ['', 'abc', 'a.b.c', 'a.' + Buffer.from('{"sub":7}').toString('base64url') + '.c', 'a.' + Buffer.from('{"sub":""}').toString('base64url') + '.c', 'a.' + Buffer.from('null').toString('base64url') + '.c']) {
    assert.equal(tokenSubject(bad), undefined, bad);
  }
});

test('token identity: the server\'s user key — sub (lowercased) and tenant (`tid`, `default` without one) — whoever issued the token', () => {
  const jwt = (claims: object): string => `${Buffer.from('{}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
  assert.equal(tokenIdentity(jwt({ sub: 'AbC-1' })), JSON.stringify(['abc-1', 'default']));
  assert.equal(tokenIdentity(jwt({ sub: 'abc-1', tid: 'default', iss: 'https://idp.example' })), tokenIdentity(jwt({ sub: 'abc-1' })), 'the same user');
  assert.notEqual(tokenIdentity(jwt({ sub: 'abc-1', tid: 't2' })), tokenIdentity(jwt({ sub: 'abc-1' })), 'the same sub in another tenant is another user');
  for (const bad of ['', 'opaque', jwt({ tid: 't2' })]) assert.equal(tokenIdentity(bad), undefined, bad);
});

test('sync state identity: kept when well-formed (1..512 characters), the state refused otherwise', () => {
  const identity = JSON.stringify(['u-1', 't2']);
  assert.deepEqual(parseSyncState({ deviceId: 'dev-1', pos: 3, userId: 'u-1', identity }), { deviceId: 'dev-1', pos: 3, userId: 'u-1', identity });
  for (const bad of ['', 7, null, 'x'.repeat(513)]) assert.equal(parseSyncState({ deviceId: 'dev-1', pos: 3, userId: 'u-1', identity: bad }), undefined, JSON.stringify(bad));
});

test('stores: only a missing key or file means "no state"; other read errors throw, so the client retries', () => {
  const failing = new WebStorageSyncStore({ getItem: () => { throw new Error('SecurityError: storage disabled'); }, setItem: () => {} });
  assert.throws(() => failing.load(), (err: unknown) => !(err instanceof IllFormedSyncStateError) && /SecurityError/.test(String(err)), 'a read error, not ill-formed data');

  const dir = mkdtempSync(join(tmpdir(), 'rampart-sync-'));
  try {
    const path = join(dir, 'state.json');
    const file = new FileSyncStore(path);
    assert.equal(file.load(), undefined, 'no file yet (ENOENT)');
    file.save({ deviceId: 'dev-3', pos: 4 });
    assert.deepEqual(file.load(), { deviceId: 'dev-3', pos: 4 });
    const unreadable = new FileSyncStore(dir); // a directory: EISDIR, as any read error but ENOENT
    assert.throws(() => unreadable.load(), (err: unknown) => (err as { code?: string }).code === 'EISDIR');
    for (const bad of ['', '{"deviceId":"dev-3","pos":', '{"deviceId":"dev-3","pos":-1}', '[]']) {
      writeFileSync(path, bad);
      assert.throws(() => file.load(), IllFormedSyncStateError, JSON.stringify(bad));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
