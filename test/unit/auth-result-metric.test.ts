/**
 * `rampart_auth_results_total` counts an authentication by what the client was told: a refusal at
 * the resume point is `unavailable`, never `success`.
 *
 * docs/protocol.md §10 (metrics): "`rampart_auth_results_total` | counter | `result` = `success` \|
 * `failure`, `reason` | every authentication (first `auth`, query token, refresh): `ok` or the
 * `auth_failure` reason". When the resume point cannot be read the client gets
 * `auth_failure {reason: "unavailable"}` + 4503 (§8), so the counter must record
 * failure/unavailable — and never success (`activate` used to count success before the read).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAuthenticator, type AuthenticatorOptions } from '../../src/pipeline/authenticate.js';
import { MemoryLimiter } from '../../src/limits/memory-limiter.js';
import type { Session } from '../../src/session/session.js';
import type { Identity } from '../../src/auth/token-verifier.js';

test('storage failing at the resume point: auth_failure unavailable, counted as unavailable, not success', async () => {
  const limiter = new MemoryLimiter();
  const results: string[] = [];
  const frames: Record<string, unknown>[] = [];
  const session = {
    ip: '192.0.2.1',
    state: 'awaiting_auth',
    userKey: '',
    deviceId: undefined as string | undefined,
    identity: undefined as Identity | undefined,
    get isOpen(): boolean {
      return session.state !== 'closed';
    },
    activate(identity: Identity, userKey: string) {
      session.identity = identity;
      session.userKey = userKey;
      session.state = 'active';
    },
    attachStream() {},
    sendFrame(f: Record<string, unknown>) {
      frames.push(f);
    },
    reject(r: { event: string; action: { frame?: Record<string, unknown> } }) {
      if (r.action.frame) frames.push(r.action.frame);
      session.state = 'closed';
    },
  };
  const options = {
    checkToken: async () => ({ ok: true, identity: { userId: '6f1c0c52-4a4e-4a59-9b7e-2f4f8a3f6a10', tenantId: 'default', expiresAt: Date.now() + 60_000 } }),
    limiter,
    registry: { acquireUser: async () => true, releaseUser: async () => {} },
    sessions: { add() {}, subscribed: () => undefined, refreshed() {} },
    chat: {
      resumePoint: async () => {
        throw new Error('storage down');
      },
    },
    maxConnectionsPerUser: 5,
    onUserLimit: 'reject',
    maxBufferedBytes: 262144,
    replayAttempts: 1,
    replayRetryMs: 1,
    replayMaxRetryMs: 10,
    replayPageSize: 10,
    onAuthenticated() {},
    onReplayFailed() {},
    onAuthResult: (r: string) => results.push(r),
    mayRead: () => true,
  } as unknown as AuthenticatorOptions;
  const auth = createAuthenticator(options);
  await auth.authenticate(session as unknown as Session, { type: 'auth', token: 't' });
  await limiter.close?.();
  // The client was refused…
  assert.deepEqual(frames, [{ type: 'auth_failure', reason: 'unavailable' }]);
  // …so the metric says so.
  assert.deepEqual(results, ['unavailable']);
});
