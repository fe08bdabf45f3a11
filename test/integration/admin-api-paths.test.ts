/**
 * The admin API's paths, tenants and audit targets (SQLite, main port): a path that leaves /admin/
 * through dot segments is no route, a revocation's audit target tells tenant and jti apart, a
 * DELETE takes its tenant from ?tenant= only (a body is refused, never ignored), and a repeated
 * ?tenant= is refused (a proxy may read the last where we read the first).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { authedClient, closeAll, newUserId, openClient, startServer, token, type TestClient, type TestServer } from '../helpers/harness.js';

const ADMIN_TOKEN = randomBytes(24).toString('hex');
let s: TestServer;
let ipSeq = 0;
const clients: TestClient[] = [];

/** Raw request: the path is sent exactly as given (fetch would normalise `..`). */
function raw(method: string, path: string, o: { body?: string; type?: string; auth?: string | null } = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'x-forwarded-for': `10.77.${Math.floor(++ipSeq / 200)}.${ipSeq % 200}` };
    if (o.auth !== null) headers.authorization = o.auth ?? `Bearer ${ADMIN_TOKEN}`;
    if (o.body !== undefined) {
      headers['content-type'] = o.type ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(o.body));
    }
    const req = request({ host: '127.0.0.1', port: s.port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

before(async () => {
  s = await startServer({ behindProxy: ['127.0.0.1'], admin: { token: ADMIN_TOKEN, requestsPerMinute: 1000 } });
});

after(async () => {
  await closeAll(...clients);
  await s.close();
});

test('a path whose dot segments leave /admin/ is not an admin route (404)', async () => {
  // Resolves to /elsewhere/audit, which is not /admin/audit.
  const r = await raw('GET', '/admin/../elsewhere/audit?limit=1');
  assert.equal(r.status, 404, `served: ${r.text}`);
  const sub = newUserId();
  const r2 = await raw('POST', `/admin/%2e%2e/x/users/${sub}/ban`, { body: JSON.stringify({ durationMs: 60_000 }) });
  assert.equal(r2.status, 404, `served: ${r2.text}`);
});

test('audit targets of revocations in different tenants are distinguishable', async () => {
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const a = await raw('POST', '/admin/tokens/revoke', { body: JSON.stringify({ tenant: 'acme:eu', jti: 'x1', exp }) });
  const b = await raw('POST', '/admin/tokens/revoke', { body: JSON.stringify({ tenant: 'acme', jti: 'eu:x1', exp }) });
  assert.equal(a.status, 200, a.text);
  assert.equal(b.status, 200, b.text);
  const page = JSON.parse((await raw('GET', '/admin/audit?limit=2')).text) as { records: { action: string; target: string; detail?: unknown }[] };
  const [rb, ra] = page.records;
  assert.equal(rb!.action, 'revoke');
  assert.equal(ra!.action, 'revoke');
  assert.notDeepEqual([ra!.target, ra!.detail], [rb!.target, rb!.detail], `two different revocations audited identically as ${ra!.target}`);
});

test('DELETE /ban with a body naming a tenant does not unban the default tenant\'s user', async () => {
  const sub = newUserId();
  assert.equal((await raw('POST', `/admin/users/${sub}/ban`, { body: JSON.stringify({ durationMs: 60_000 }) })).status, 200);
  const r = await raw('DELETE', `/admin/users/${sub}/ban`, { body: JSON.stringify({ tenant: 'acme' }) });
  assert.equal(r.status, 400, r.text);
  const c = openClient(s.url);
  clients.push(c);
  await c.opened;
  c.send({ type: 'auth', token: await token({ sub }) });
  const reply = await c.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
  assert.equal(reply.reason, 'banned', `DELETE answered ${r.status} ${r.text} and lifted the default tenant's ban`);
});

test('a duplicated ?tenant= is refused rather than silently taking the first', async () => {
  const sub = newUserId();
  const c = await authedClient(s.url, sub);
  clients.push(c);
  const r = await raw('GET', `/admin/users/${sub}/sessions?tenant=acme&tenant=default`);
  assert.equal(r.status, 400, r.text);
});

test('a body that is not JSON, or holds a forbidden key, is refused in the documented shape, never echoed', async () => {
  const sub = newUserId();
  for (const body of ['{"durationMs": 1000', '{"__proto__": {"x": 1}, "durationMs": 1000}']) {
    const r = await raw('POST', `/admin/users/${sub}/ban`, { body });
    assert.equal(r.status, 400, r.text);
    const parsed = JSON.parse(r.text) as { error: string; details: { path: string; rule: string }[] };
    assert.equal(parsed.error, 'invalid_request');
    assert.equal(parsed.details[0]!.path, 'body');
    assert.ok(!r.text.includes('__proto__') && !r.text.includes('1000'), r.text);
  }
});
