/**
 * Token checks under the IP lockout, one per IP at a time (pipeline/token-checks.ts): a burst of
 * bad tokens from one IP gets no more judged than the lockout allows, and a socket that closed
 * while its check waited costs nothing (not judged, not counted, no failure reported).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAuthenticator, type AuthenticatorOptions } from '../../src/pipeline/authenticate.js';
import { createTokenChecks } from '../../src/pipeline/token-checks.js';
import { MemoryLimiter } from '../../src/limits/memory-limiter.js';
import type { VerifyResult } from '../../src/auth/token-verifier.js';
import type { Session } from '../../src/session/session.js';

const IP = '192.0.2.1';

/** A verifier that refuses every token once `release()` is called; counts its calls. */
function slowRefusingVerifier() {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let calls = 0;
  const verify = async (): Promise<VerifyResult> => {
    calls++;
    await gate;
    return { ok: false, reason: 'invalid_token' };
  };
  return { verify, release, calls: () => calls };
}

/** Checks whose first refusal locks the IP out (maxAuthFailures 1). */
function checks(verify: () => Promise<VerifyResult>) {
  const limiter = new MemoryLimiter();
  const rule = { name: 'auth_failures', limit: 0, windowMs: 60_000 };
  const checkToken = createTokenChecks({
    limiter,
    verify,
    lockoutKey: (ip) => `lock:${ip}`,
    countFailure: async (ip) => {
      const d = await limiter.consume(`af:${ip}`, [rule]);
      if (!d.allowed) await limiter.block(`lock:${ip}`, 60_000);
    },
  });
  return { limiter, checkToken };
}

test('a burst from one IP: the first token is judged, the rest find the IP locked out', async () => {
  const v = slowRefusingVerifier();
  const { checkToken } = checks(v.verify);
  const results = Array.from({ length: 5 }, (_, i) => checkToken(IP, `t${i}`));
  v.release();
  const outcomes = (await Promise.all(results)).map((r) => (typeof r === 'string' ? r : r.ok ? 'ok' : r.reason));
  assert.deepEqual(outcomes, ['invalid_token', 'locked_out', 'locked_out', 'locked_out', 'locked_out']);
  assert.equal(v.calls(), 1, 'one token judged');
  // Another IP has its own line.
  assert.notEqual(await checkToken('198.51.100.1', 'x', () => true), 'locked_out');
});

test('a session closed while its check waited in line: not judged, no failure reported', async () => {
  const v = slowRefusingVerifier();
  const { limiter, checkToken } = checks(v.verify);
  const rejected: string[] = [];
  const session = (name: string) => {
    const s = {
      ip: IP,
      state: 'awaiting_auth',
      get isOpen(): boolean {
        return s.state !== 'closed';
      },
      reject(r: { event: string }): void {
        rejected.push(`${name}:${r.event}`);
        s.state = 'closed';
      },
    };
    return s;
  };
  const results: string[] = [];
  const options = { verify: v.verify, checkToken, limiter, onAuthResult: (r: string) => results.push(r), mayRead: () => true } as unknown as AuthenticatorOptions;
  const auth = createAuthenticator(options);
  const first = session('first');
  const second = session('second');
  const p1 = auth.authenticate(first as unknown as Session, { type: 'auth', token: 't1' });
  const p2 = auth.authenticate(second as unknown as Session, { type: 'auth', token: 't2' });
  second.state = 'closed'; // auth timeout, or the client left, while it waited behind the first
  v.release();
  await Promise.all([p1, p2]);
  assert.deepEqual(rejected, ['first:invalid_token']);
  assert.deepEqual(results, ['invalid_token']);
  assert.equal(v.calls(), 1, 'the closed session\'s token was never verified');
});
