/** The admin API: the same 401 on every route without the credential, bans of users who never connected, the audit record's IP. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { REDIS_URL, closeAll, newUserId, openClient, startServer, token, uniqueRedisPrefix, type TestClient } from '../helpers/harness.js';

const ADMIN_TOKEN = randomBytes(24).toString('hex');

async function call(base: string, method: string, path: string, o: { ip?: string; auth?: string | null; body?: string; type?: string } = {}) {
  const headers: Record<string, string> = { 'x-forwarded-for': o.ip ?? '10.0.0.1' };
  if (o.auth !== null) headers.authorization = o.auth ?? `Bearer ${ADMIN_TOKEN}`;
  if (o.body !== undefined) headers['content-type'] = o.type ?? 'application/json';
  const res = await fetch(base + path, { method, headers, ...(o.body !== undefined ? { body: o.body } : {}) });
  const text = await res.text();
  return { status: res.status, text, headers: res.headers };
}

async function tryAuth(url: string, sub: string) {
  const client = openClient(url);
  await client.opened;
  client.send({ type: 'auth', token: await token({ sub }) });
  return { client, reply: await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure') };
}

test('every admin route without the credential is the same 401 and nothing else', async () => {
  const s = await startServer({ behindProxy: ['127.0.0.1'], admin: { token: ADMIN_TOKEN, maxBodyBytes: 64 } });
  try {
    const uid = newUserId();
    const cases: [string, string, string | undefined][] = [
      ['GET', '/admin/audit', undefined],
      ['GET', `/admin/users/${uid}/sessions`, undefined],
      ['POST', `/admin/users/${uid}/ban`, '{"durationMs":1000}'],
      ['DELETE', `/admin/users/${uid}/ban`, undefined],
      ['POST', `/admin/users/${uid}/disconnect`, '{}'],
      ['POST', '/admin/tokens/revoke', '{"jti":"a","exp":2000000000}'],
      ['PUT', '/admin/nothing', undefined],
      ['POST', `/admin/users/${uid}/ban`, 'x'.repeat(10_000)],
      ['GET', '/admin', undefined],
    ];
    let i = 0;
    for (const [method, path, body] of cases) {
      const r = await call(s.httpUrl, method, path, { auth: null, ip: `10.9.0.${++i}`, ...(body !== undefined ? { body } : {}) });
      assert.equal(r.status, 401, `${method} ${path}`);
      assert.equal(r.text, '{"error":"unauthorized"}\n', `${method} ${path}`);
      assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    }
  } finally {
    await s.close();
  }
});

test('a ban of a user who never connected answers 200 and holds at their first auth', async () => {
  const s = await startServer({ admin: { token: ADMIN_TOKEN } });
  const clients: TestClient[] = [];
  try {
    const sub = newUserId();
    const r = await call(s.httpUrl, 'POST', `/admin/users/${sub}/ban`, { body: JSON.stringify({ durationMs: 60_000 }) });
    assert.equal(r.status, 200, r.text);
    const { client, reply } = await tryAuth(s.url, sub);
    clients.push(client);
    assert.equal(reply.type, 'auth_failure');
    assert.equal(reply.reason, 'banned');
    assert.equal((await client.closed).code, 4010);
    // past admin.maxBanMs: 400, value not echoed
    const big = await call(s.httpUrl, 'POST', `/admin/users/${sub}/ban`, { body: JSON.stringify({ durationMs: 365 * 86_400_000 + 1 }) });
    assert.equal(big.status, 400);
    assert.ok(!big.text.includes('31536000001'));
  } finally {
    await closeAll(...clients);
    await s.close();
  }
});

test("the audit record's ip is the request's IP — an IPv6 client's whole address, not its /64", async () => {
  const s = await startServer({ behindProxy: ['127.0.0.1'], admin: { token: ADMIN_TOKEN } });
  try {
    const sub = newUserId();
    const ip = '2001:db8:1:2:aaaa:bbbb:cccc:dddd';
    const r = await call(s.httpUrl, 'POST', `/admin/users/${sub}/ban`, { ip, body: JSON.stringify({ durationMs: 1000 }) });
    assert.equal(r.status, 200);
    const page = JSON.parse((await call(s.httpUrl, 'GET', '/admin/audit?limit=1')).text) as { records: { ip: string; action: string }[] };
    assert.equal(page.records[0]!.action, 'ban');
    assert.equal(page.records[0]!.ip, ip, `audit ip recorded as ${page.records[0]!.ip}`);
  } finally {
    await s.close();
  }
});


test('Redis: a ban of a user who never connected holds at their first auth; unban lifts it', async () => {
  const s = await startServer({ redisUrl: REDIS_URL, redisKeyPrefix: uniqueRedisPrefix('rvw'), admin: { token: ADMIN_TOKEN } });
  const clients: TestClient[] = [];
  try {
    const sub = newUserId();
    assert.equal((await call(s.httpUrl, 'POST', `/admin/users/${sub}/ban`, { body: JSON.stringify({ durationMs: 60_000 }) })).status, 200);
    const a = await tryAuth(s.url, sub);
    clients.push(a.client);
    assert.equal(a.reply.reason, 'banned');
    assert.equal((await call(s.httpUrl, 'DELETE', `/admin/users/${sub}/ban`)).status, 200);
    const b = await tryAuth(s.url, sub);
    clients.push(b.client);
    assert.equal(b.reply.type, 'auth_success');
  } finally {
    await closeAll(...clients);
    await s.close();
  }
});
