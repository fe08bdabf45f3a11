/**
 * Session listings name the client's address, an IPv6 client's whole address (limits count its network).
 *
 * docs/operations.md: the listing is `{userId, tenant, sessions: [{sessionId, node, deviceId?, ip, since}]}`,
 * for an operator to see where a user is connected; `ip` is the client's address. The session also
 * keeps the per-IP limit key (an IPv6 client's /64), which limits and logs use; the listing used to
 * show that key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeAll, newUserId, openClient, startServer, token } from '../helpers/harness.js';

const ADMIN_TOKEN = randomBytes(24).toString('hex');

test('an IPv6 session is listed by the admin API with its whole address, not the /64 its limits count', async () => {
  const s = await startServer({ behindProxy: ['127.0.0.1'], admin: { token: ADMIN_TOKEN } });
  const ip = '2001:db8:1:2:aaaa:bbbb:cccc:dddd';
  const sub = newUserId();
  const client = openClient(s.url, { headers: { 'x-forwarded-for': ip } });
  try {
    await client.opened;
    client.send({ type: 'auth', token: await token({ sub }) });
    const reply = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
    assert.equal(reply.type, 'auth_success');
    const res = await fetch(`${s.httpUrl}/admin/users/${sub}/sessions`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const body = (await res.json()) as { sessions: { ip: string }[] };
    assert.equal(body.sessions.length, 1);
    assert.equal(body.sessions[0]!.ip, ip, `listed as ${body.sessions[0]!.ip}`);
  } finally {
    await closeAll(client);
    await s.close();
  }
});
