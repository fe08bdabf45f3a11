/**
 * Session control (src/admin/session-control.ts) on its in-memory backends, with stand-in
 * sessions: a ban or revocation heard while a session was between its access check and taking
 * the new identity still closes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSessionControl } from '../../src/admin/session-control.js';
import type { Session } from '../../src/session/session.js';
import { SessionRegistry } from '../../src/server/session-registry.js';
import { LocalBus } from '../../src/bus/local-bus.js';

const USER = '11111111-1111-4111-8111-111111111111';

/** What session control reads and calls on a session. */
function standIn(jti: string): { session: Session; closedWith: () => number | undefined } {
  let code: number | undefined;
  const s = {
    id: 's1',
    userKey: `default:${USER}`,
    ip: '127.0.0.1',
    deviceId: undefined,
    authenticatedAt: Date.now(),
    isOpen: true,
    identity: { userId: USER, tenantId: 'default', role: 'user', expiresAt: Date.now() + 60_000, jti },
    reject(r: { action: { kind: string; code?: number } }) {
      code = r.action.code;
      s.isOpen = false;
    },
    close(c: number) {
      code = c;
      s.isOpen = false;
    },
  };
  return { session: s as unknown as Session, closedWith: () => code };
}

test('a token revoked while a refresh to it was being checked: the refreshed session is closed (invalid token)', async () => {
  const sessions = new SessionRegistry(new LocalBus());
  const control = await openSessionControl({ prefix: 'test:', nodeId: 'n1', local: sessions, onError: () => {} });
  sessions.observe(control.observer);
  try {
    const { session, closedWith } = standIn('old-token');
    sessions.add(session);
    // The refresh's access check passed; then the new token is revoked (no session holds it yet,
    // so the revocation closes nobody); then the session takes the new identity.
    await control.revoke({ tenantId: 'default', jti: 'new-token' }, Date.now() + 60_000);
    assert.equal(closedWith(), undefined);
    (session.identity as { jti?: string }).jti = 'new-token';
    sessions.refreshed(session);
    assert.equal(closedWith(), 4003);
  } finally {
    await control.close();
  }
});
