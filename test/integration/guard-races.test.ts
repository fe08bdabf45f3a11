/**
 * Races and slow clients against the guards: the admin and metrics listeners cut a slow request
 * after limits.headersTimeout like the main port, and the auth lockout holds under a burst of
 * concurrent `auth` frames (memory and Redis limiters, synchronous and asynchronous verifiers).
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { startServer, openClient, newUserId, token, uniqueRedisPrefix, REDIS_URL, HttpRefusal, type TestServer, type TestClient } from '../helpers/harness.js';

const prefixes: string[] = [];
after(async () => {
  const r = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  for (const p of prefixes) {
    for await (const batch of r.scanStream({ match: `${p.replace(/[*?[\]\\]/g, '\\$&')}*`, count: 1000 }) as AsyncIterable<string[]>) {
      if (batch.length > 0) await r.del(...batch);
    }
  }
  await r.quit();
});

/** Sends half an HTTP request and resolves with the ms until the server closed the connection. */
function slowRequest(port: number, limitMs: number): Promise<number> {
  return new Promise((resolve) => {
    const started = Date.now();
    const s = connect(port, '127.0.0.1', () => s.write('GET /admin/audit HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: '));
    s.on('error', () => {});
    const timer = setTimeout(() => {
      s.destroy();
      resolve(Number.POSITIVE_INFINITY);
    }, limitMs);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
    s.resume(); // read the answer, so the server's FIN is seen
  });
}

describe('listener timeouts (limits.headersTimeout on every listener)', { timeout: 60_000 }, () => {
  test('main port: a half-sent request is cut after about headersTimeout (control)', async () => {
    const srv = await startServer({ limits: { headersTimeout: 1000 } });
    try {
      const ms = await slowRequest(srv.port, 8000);
      assert.ok(ms < 3000, `main port cut after ${ms} ms`);
    } finally {
      await srv.close();
    }
  });

  test('admin.port listener: a half-sent request is cut after about headersTimeout', async () => {
    const srv = await startServer({ limits: { headersTimeout: 1000 }, admin: { token: randomBytes(24).toString('hex'), port: 0 } });
    try {
      const port = srv.server.adminAddress()!.port;
      const ms = await slowRequest(port, 8000);
      assert.ok(ms < 3000, `admin listener cut after ${ms} ms (limits.headersTimeout is 1000)`);
    } finally {
      await srv.close();
    }
  });

  test('metrics.port listener: a half-sent request is cut after about headersTimeout', async () => {
    const srv = await startServer({ limits: { headersTimeout: 1000 }, metrics: { port: 0 } });
    try {
      const port = srv.server.metricsAddress()!.port;
      const ms = await slowRequest(port, 8000);
      assert.ok(ms < 3000, `metrics listener cut after ${ms} ms (limits.headersTimeout is 1000)`);
    } finally {
      await srv.close();
    }
  });
});

for (const kind of ['redis', 'memory'] as const) describe(`auth lockout under concurrent auth frames (${kind})`, { timeout: 60_000 }, () => {
  test('maxAuthFailures 3: 20 sockets sending a bad token at once get at most 3 judged (invalid_token), the rest locked_out', async () => {
    const redisKeyPrefix = uniqueRedisPrefix('seclock');
    prefixes.push(redisKeyPrefix);
    const srv: TestServer = await startServer({
      ...(kind === 'redis' ? { redisUrl: REDIS_URL, redisKeyPrefix } : {}),
      limits: { maxAuthFailures: 3, maxUnauthenticatedPerIP: 50 },
    });
    const clients: TestClient[] = [];
    try {
      for (let i = 0; i < 20; i++) clients.push(openClient(srv.url));
      await Promise.all(clients.map((c) => c.opened));
      const bad = await token({ sub: newUserId() }, 'x'.repeat(48)); // wrong secret
      for (const c of clients) c.send({ type: 'auth', token: bad });
      const replies = await Promise.all(clients.map((c) => c.next((f) => f.type === 'auth_failure')));
      const judged = replies.filter((r) => r.reason === 'invalid_token').length;
      const locked = replies.filter((r) => r.reason === 'locked_out').length;
      // And the IP is locked now.
      let status: number | 'open' = 'open';
      const probe = openClient(srv.url);
      try {
        await probe.opened;
        probe.terminate();
      } catch (err) {
        if (err instanceof HttpRefusal) status = err.status;
      }
      assert.equal(status, 429, 'IP locked out afterwards');
      assert.ok(judged <= 3, `${judged} bad tokens were judged (invalid_token) with maxAuthFailures 3; ${locked} got locked_out`);
    } finally {
      for (const c of clients) c.terminate();
      await srv.close();
    }
  });
});

describe('auth lockout under concurrent auth frames (memory limiter, RS256 public key: async verification)', { timeout: 60_000 }, () => {
  test('maxAuthFailures 3: 20 sockets sending a badly signed RS256 token at once get at most 3 judged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sec-rsa-'));
    const server = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = join(dir, 'pub.pem');
    writeFileSync(pem, server.publicKey.export({ type: 'spki', format: 'pem' }));
    const srv = await startServer({ jwt: { publicKeyFile: pem }, limits: { maxAuthFailures: 3, maxUnauthenticatedPerIP: 50 } });
    const clients: TestClient[] = [];
    try {
      for (let i = 0; i < 20; i++) clients.push(openClient(srv.url));
      await Promise.all(clients.map((c) => c.opened));
      const bad = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', typ: 'JWT' }).setSubject(newUserId()).setExpirationTime('1h').sign(attacker.privateKey);
      for (const c of clients) c.send({ type: 'auth', token: bad });
      const replies = await Promise.all(clients.map((c) => c.next((f) => f.type === 'auth_failure')));
      const judged = replies.filter((r) => r.reason === 'invalid_token').length;
      const locked = replies.filter((r) => r.reason === 'locked_out').length;
      assert.ok(judged <= 3, `${judged} bad tokens were judged (invalid_token) with maxAuthFailures 3; ${locked} got locked_out`);
    } finally {
      for (const c of clients) c.terminate();
      await srv.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
