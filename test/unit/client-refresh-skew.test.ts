/**
 * Token refresh timing on a device clock that disagrees with the issuer's: a token with `iat` is
 * measured by itself (its lifetime less the time since this client first saw it), and refreshes
 * that bring no new life (an `exp` no later than before, a token that looks expired already)
 * back off up to 5 minutes instead of repeating every `refresh.minDelayMs`. On fake sockets and a
 * fake clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RampartClientOptions } from '../../src/client/rampart-client.js';
import { RefreshSchedule, DEFAULT_REFRESH, tokenRemainingMs } from '../../src/client/token-source.js';
import { fakeClient, fakeJwt, settle, type FakeClock } from '../helpers/fake-client-env.js';

const ME = '11111111-1111-4111-8111-111111111111';
const HOUR = 3_600_000;

/** A JWT-shaped token with `iat` and `exp` (ms, stored as seconds), as an issuer would sign it. */
function jwtWithIat(iatMs: number, expMs: number, sub = ME): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub, iat: Math.floor(iatMs / 1000), exp: Math.floor(expMs / 1000) })}.sig`;
}

function setup(token: (clock: FakeClock) => string, options: Partial<RampartClientOptions> = {}) {
  let calls = 0;
  const env = fakeClient({
    userId: ME,
    token: (clock) => {
      calls++;
      return token(clock);
    },
    options,
  });
  const { clock, client, last } = env;
  const accept = () => env.accept();
  /** Refreshes (`auth` frames after the first) on the socket, each answered. */
  const refreshes = () => last().framesOf('auth').length - 1;
  return { clock, client, last, accept, refreshes, calls: () => calls };
}

test('a device clock 2 h ahead of the issuer: a 1-hour token with iat is refreshed 30 s before its own end, not every second', async () => {
  // The issuer's clock is the device's minus 2 h: every token looks an hour expired to the device.
  const env = setup((clock) => jwtWithIat(clock.now() - 2 * HOUR, clock.now() - 2 * HOUR + HOUR));
  void env.client.connect();
  await env.accept();
  await env.clock.advance(60_000);
  assert.equal(env.calls(), 1, 'no refresh within a minute');
  assert.equal(env.refreshes(), 0);
  await env.clock.advance(HOUR - 30_000 - 60_000 - 1);
  assert.equal(env.refreshes(), 0, 'not before lifetime − marginMs');
  await env.clock.advance(1);
  assert.equal(env.refreshes(), 1, 'refreshed at lifetime − marginMs');
  env.last().receive({ type: 'auth_success', userId: ME });
  await env.clock.advance(HOUR - 30_000 - 1);
  assert.equal(env.refreshes(), 1, 'the new token is measured the same way');
  await env.clock.advance(1);
  assert.equal(env.refreshes(), 2);
  env.client.close();
});

test('a token without iat that looks expired on a clock ahead, and a provider handing out the same token: refreshes back off (doubling, capped at 5 min)', async () => {
  for (const [what, token] of [
    ['looks expired (no iat, clock 2 h ahead)', (clock: FakeClock) => fakeJwt(clock.now() - HOUR, ME)],
    ['the same cached token again (exp not later)', () => fixed],
  ] as const) {
    const env = setup(token);
    void env.client.connect();
    await env.accept();
    const at: number[] = [];
    const start = env.clock.now();
    for (let t = 0; t < 20 * 60_000; t += 1000) {
      const before = env.refreshes();
      await env.clock.advance(1000);
      if (env.refreshes() > before) {
        at.push(env.clock.now() - start);
        env.last().receive({ type: 'auth_success', userId: ME });
      }
    }
    const gaps = at.map((t, i) => t - (at[i - 1] ?? 0));
    // Before: one refresh every refresh.minDelayMs (1 s), 1200 in 20 min. Now the gaps double (the
    // token's own timing may be longer at first), up to 5 min.
    assert.ok(at.length >= 3 && at.length <= 16, `${what}: ${at.length} refreshes in 20 min (gaps ${gaps.slice(0, 20).join(',')}…)`);
    assert.ok(gaps.every((g) => g >= 1000 && g <= 300_000), `${what}: gaps ${gaps.slice(0, 20).join(',')}…`);
    assert.equal(gaps[gaps.length - 1], 300_000, `${what}: capped at 5 min (gaps ${gaps.slice(0, 20).join(',')}…)`);
    env.client.close();
  }
});
/** A token without iat, 1 min from its end when first seen (the fake clock starts at 1_700_000_000_000). */
const fixed = fakeJwt(1_700_000_000_000 + 60_000, ME);

test('a refresh that brings a later, unexpired token ends the backoff', () => {
  let now = 1_000_000_000;
  const schedule = new RefreshSchedule(DEFAULT_REFRESH);
  const a = fakeJwt(now + 10_000);
  schedule.got(a, now);
  assert.equal(schedule.delay(a, now), 5_000, 'half of a short life');
  now += 5_000;
  schedule.got(a, now, a); // the same token again
  assert.equal(schedule.delay(a, now), 2_500, 'the token\'s own timing (half of what is left) is longer than the first backoff step (2 s)');
  schedule.got(a, now, a);
  assert.equal(schedule.delay(a, now), 4_000, 'then 4 s');
  const b = fakeJwt(now + HOUR);
  schedule.got(b, now, a);
  assert.equal(schedule.delay(b, now), HOUR - 30_000, 'a later token: timing by the token again');
});

test('remaining life: from the token itself with iat (whatever the device clock), else exp − now', () => {
  const now = 1_700_000_000_000;
  const withIat = jwtWithIat(now - 5 * HOUR, now - 4 * HOUR); // issued and expiring 4 h in the device's past
  assert.equal(tokenRemainingMs(withIat, now, now), HOUR, 'first seen now: its whole lifetime');
  assert.equal(tokenRemainingMs(withIat, now - 20 * 60_000, now), 40 * 60_000, 'less the time since first seen');
  assert.equal(tokenRemainingMs(fakeJwt(now + 60_000), now - HOUR, now), 60_000, 'no iat: exp − now');
  assert.equal(tokenRemainingMs('not-a-jwt', now, now), undefined);
});

test('a connection whose token does not look expired ends the backoff; one that looks expired keeps it', () => {
  let now = 1_000_000_000;
  const schedule = new RefreshSchedule(DEFAULT_REFRESH);
  const stale = fakeJwt(now - 1000);
  schedule.got(stale, now);
  for (let i = 0; i < 6; i++) schedule.got(stale, now, stale);
  assert.equal(schedule.delay(stale, now), 64_000);
  schedule.got(fakeJwt(now - 500), now); // a new connection, a token that looks expired still
  assert.equal(schedule.delay(fakeJwt(now - 500), now), 64_000);
  now += 1000;
  const fresh = fakeJwt(now + 120_000);
  schedule.got(fresh, now); // a new connection, a live token
  assert.equal(schedule.delay(fresh, now), 90_000, 'timed by the token alone');
});
