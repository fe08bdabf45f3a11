/** An admin request in absolute form (RFC 9112 §3.2.2) is routed like the same request in origin form. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { startServer, type TestServer } from '../helpers/harness.js';

const ADMIN_TOKEN = randomBytes(24).toString('hex');
let s: TestServer;

function get(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: s.port, method: 'GET', path, headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  s = await startServer({ admin: { token: ADMIN_TOKEN, requestsPerMinute: 1000 } });
});
after(async () => {
  await s.close();
});

test('an admin request in absolute form is routed like the same request in origin form', async () => {
  const origin = await get('/admin/audit?limit=1');
  const health = await get(`http://127.0.0.1:${s.port}/healthz`);
  const absolute = await get(`http://127.0.0.1:${s.port}/admin/audit?limit=1`);
  assert.equal(health, 200, 'absolute form is read on the other routes');
  assert.equal(absolute, origin, `origin form ${origin}, absolute form ${absolute}`);
});
