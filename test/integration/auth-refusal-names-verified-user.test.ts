/**
 * A refusal at `auth` decided on a token that verified (banned, token_revoked, too_many_sessions,
 * penalised_user, role_without_read) names the user and tenant in its security line
 * (docs/protocol.md §11), so an operator can follow a banned user or a replayed revoked token.
 * Those lines used to carry no user: the session had no identity before activation. A token that
 * did not verify still names nobody.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { newUserId, openClient, startServer, token, type TestServer } from '../helpers/harness.js';

const ADMIN_TOKEN = randomBytes(24).toString('hex');
const servers: TestServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

test('a refusal at auth for a verified user (banned) names the user in its security line', { timeout: 30_000 }, async () => {
  const srv = await startServer({ admin: { token: ADMIN_TOKEN, name: 'auth-refusal-test' } });
  servers.push(srv);
  const user = newUserId();
  const res = await fetch(`${srv.httpUrl}/admin/users/${user}/ban`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ durationMs: 60_000 }),
  });
  assert.equal(res.status, 200);

  const c = openClient(srv.url);
  await c.opened;
  c.send({ type: 'auth', token: await token({ sub: user }) });
  const reply = await c.nextOfType('auth_failure');
  assert.equal(reply.reason, 'banned');
  await c.closed;

  const lines = srv.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === 'security' && l.reason === 'banned');
  assert.equal(lines.length, 1, 'one security line for the refusal');
  assert.equal(lines[0]!.userId, user, `the banned refusal does not say who: ${JSON.stringify(lines[0])}`);
  assert.equal(lines[0]!.tenantId, 'default', 'nor in which tenant');
});

test('a refusal of a token that did not verify names nobody', { timeout: 30_000 }, async () => {
  const srv = await startServer();
  servers.push(srv);
  const user = newUserId();
  const c = openClient(srv.url);
  await c.opened;
  c.send({ type: 'auth', token: await token({ sub: user }, 'another-secret-another-secret-another-secret') });
  assert.equal((await c.nextOfType('auth_failure')).reason, 'invalid_token');
  await c.closed;

  const lines = srv.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === 'security' && l.reason === 'invalid_token');
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.userId, undefined);
  assert.equal(lines[0]!.tenantId, undefined);
  assert.ok(!srv.logs.some((l) => l.includes(user)), 'nothing of the unverified token is logged');
});
