/**
 * The admin API against a real server: credential and rate limit, sessions listing, disconnect,
 * ban/unban, revocation by jti, the audit log (SQLite and PostgreSQL), and the users' own
 * `list_sessions` / `end_session` frames. SQLite serves the API under /admin/ on the main port,
 * PostgreSQL on its own `admin.port`.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  authedClient,
  closeAll,
  newUserId,
  openClient,
  startServer,
  token,
  waitFor,
  type Frame,
  type TestClient,
  type TestServer,
} from '../helpers/harness.js';
import { backends } from '../helpers/storage-backends.js';

const ADMIN_TOKEN = randomBytes(24).toString('hex');

interface AdminReply {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

function adminClient(base: string, credential = ADMIN_TOKEN) {
  return async (method: string, path: string, body?: unknown, opts: { ip?: string; auth?: string | null; raw?: string; type?: string } = {}): Promise<AdminReply> => {
    const headers: Record<string, string> = { 'x-forwarded-for': opts.ip ?? '10.0.0.1' };
    if (opts.auth !== null) headers.authorization = opts.auth ?? `Bearer ${credential}`;
    if (body !== undefined || opts.raw !== undefined) headers['content-type'] = opts.type ?? 'application/json';
    const res = await fetch(base + path, { method, headers, ...(body !== undefined || opts.raw !== undefined ? { body: opts.raw ?? JSON.stringify(body) } : {}) });
    const text = await res.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // the plain routes answer 404/405 in text
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
}

/** Authenticates with `auth` carrying extra fields (deviceId) and extra claims (jti). */
async function authAs(url: string, sub: string, extra: { deviceId?: string; jti?: string } = {}): Promise<TestClient & { userId: string }> {
  const client = openClient(url) as TestClient & { userId: string };
  client.userId = sub;
  await client.opened;
  client.send({ type: 'auth', token: await token({ sub, ...(extra.jti ? { jti: extra.jti } : {}) }), ...(extra.deviceId ? { deviceId: extra.deviceId } : {}) });
  const reply = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
  if (reply.type !== 'auth_success') throw new Error(`auth failed: ${String(reply.reason)}`);
  // v2: every auth_success names where the device's stream resumes.
  assert.ok(typeof reply.resumeAfter === 'number' && typeof reply.lastPos === 'number', 'auth_success has resumeAfter and lastPos');
  return client;
}

/** Sends a direct message and waits until it is stored (`message_sent`). */
async function say(from: TestClient, recipientId: string, content: string, clientMsgId: string): Promise<Frame> {
  from.send({ type: 'chat_message', recipientId, content, clientMsgId });
  return from.next((f) => f.type === 'message_sent' && f.clientMsgId === clientMsgId);
}

async function tryAuth(url: string, sub: string, jti?: string, ttl?: number): Promise<{ client: TestClient; reply: Frame }> {
  const client = openClient(url);
  await client.opened;
  client.send({ type: 'auth', token: await token({ sub, ...(jti ? { jti } : {}), ...(ttl !== undefined ? { ttl } : {}) }) });
  return { client, reply: await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure') };
}

test('the admin API is off by default', async () => {
  const s = await startServer();
  try {
    const admin = adminClient(s.httpUrl);
    assert.equal((await admin('GET', '/admin/audit')).status, 404);
    assert.equal((await admin('POST', '/admin/tokens/revoke', { jti: 'x', exp: 2e9 })).status, 405); // the plain routes: GET only
    assert.equal(s.server.adminAddress(), undefined);
  } finally {
    await s.close();
  }
});

for (const backend of backends('admin')) {
  describe(`admin API (${backend.name} audit)`, () => {
    const clients: TestClient[] = [];
    let s: TestServer;
    let admin: ReturnType<typeof adminClient>;
    let wsUrl: string;
    const track = <T extends TestClient>(c: T): T => {
      clients.push(c);
      return c;
    };

    before(async () => {
      await backend.setup();
      const onOwnPort = backend.name === 'postgres';
      s = await startServer({
        storage: backend.allocate().storage,
        behindProxy: ['127.0.0.1'], // each test speaks from its own X-Forwarded-For address
        admin: {
          ...(onOwnPort ? { tokenSha256: createHash('sha256').update(ADMIN_TOKEN).digest('hex'), port: 0 } : { token: ADMIN_TOKEN }),
          name: 'ops-alice',
          requestsPerMinute: 40,
          maxBodyBytes: 512,
          // Shorter than a token may live: a revocation still reaches to the token's exp.
          maxBanMs: 30 * 86_400_000,
        },
      });
      wsUrl = s.url;
      const address = s.server.adminAddress();
      if (onOwnPort) {
        assert.ok(address, 'admin.port listener');
        assert.notEqual(address.port, s.port);
        assert.equal((await adminClient(s.httpUrl)('GET', '/admin/audit')).status, 404, 'not on the main port as well');
      } else assert.equal(address, undefined);
      admin = adminClient(onOwnPort ? `http://127.0.0.1:${address!.port}` : s.httpUrl);
    });

    after(async () => {
      await closeAll(...clients);
      await s.close();
      await backend.teardown();
    });

    test('a missing or wrong credential is 401 with no detail; too many requests from one IP are 429', async () => {
      for (const auth of [null, 'Bearer wrong', `Basic ${ADMIN_TOKEN}`, `Bearer ${ADMIN_TOKEN}x`, `bearer ${ADMIN_TOKEN.toUpperCase()}`]) {
        const r = await admin('GET', '/admin/audit', undefined, { auth, ip: '10.1.0.1' });
        assert.equal(r.status, 401);
        assert.deepEqual(r.body, { error: 'unauthorized' });
      }
      // Authenticated or not, each request counts against the IP (40 per minute here).
      let last: AdminReply | undefined;
      for (let i = 0; i < 40; i++) last = await admin('GET', '/admin/audit?limit=1', undefined, { ip: '10.1.0.2' });
      assert.equal(last!.status, 200);
      const refused = await admin('GET', '/admin/audit?limit=1', undefined, { ip: '10.1.0.2' });
      assert.equal(refused.status, 429);
      assert.ok(Number(refused.headers.get('retry-after')) >= 1);
      assert.equal((await admin('GET', '/admin/audit?limit=1', undefined, { ip: '10.1.0.3' })).status, 200, 'another IP is not affected');
    });

    test('bodies: JSON only, size-capped, strict, never echoed', async () => {
      const uid = newUserId();
      assert.equal((await admin('POST', `/admin/users/${uid}/ban`, undefined, { raw: 'durationMs=5', type: 'application/x-www-form-urlencoded' })).status, 415);
      assert.equal((await admin('POST', `/admin/users/${uid}/ban`, undefined, { raw: JSON.stringify({ durationMs: 1000, pad: 'x'.repeat(600) }) })).status, 413);
      assert.equal((await admin('POST', `/admin/users/${uid}/ban`, undefined, { raw: '{"durationMs":' })).status, 400);
      const bad = await admin('POST', `/admin/users/${uid}/ban`, { durationMs: 'SECRET-VALUE', extra: 'SECRET-KEY' });
      assert.equal(bad.status, 400);
      assert.ok(!JSON.stringify(bad.body).includes('SECRET'), 'values and unknown keys are not echoed');
      assert.equal((await admin('POST', '/admin/users/not-a-uuid/ban', { durationMs: 1000 })).status, 400);
      assert.equal((await admin('GET', '/admin/nothing-here')).status, 404);
      assert.equal((await admin('GET', `/admin/users/${uid}/ban`)).status, 405);
    });

    test('list a user\'s sessions: id, node, device, ip, since', async () => {
      const sub = newUserId();
      const before = Date.now();
      track(await authAs(wsUrl, sub, { deviceId: 'phone-1' }));
      track(await authAs(wsUrl, sub));
      const r = await admin('GET', `/admin/users/${sub}/sessions`);
      assert.equal(r.status, 200);
      const sessions = r.body.sessions as Record<string, unknown>[];
      assert.equal(sessions.length, 2);
      assert.equal(sessions[0]!.deviceId, 'phone-1');
      assert.equal(sessions[1]!.deviceId, undefined);
      for (const x of sessions) {
        assert.equal(x.node, s.server.nodeId);
        assert.equal(x.ip, '127.0.0.1');
        assert.ok((x.since as number) >= before && (x.since as number) <= Date.now());
        assert.match(String(x.sessionId), new RegExp(`^${s.server.nodeId}:`));
      }
      // another tenant's user with the same id is someone else
      assert.deepEqual((await admin('GET', `/admin/users/${sub}/sessions?tenant=other`)).body.sessions, []);
    });

    test('disconnect one session (4012), then all of them; an unknown session is 404', async () => {
      const sub = newUserId();
      const a = track(await authAs(wsUrl, sub));
      const b = track(await authAs(wsUrl, sub));
      const c = track(await authAs(wsUrl, sub));
      const list = (await admin('GET', `/admin/users/${sub}/sessions`)).body.sessions as { sessionId: string }[];
      assert.equal((await admin('POST', `/admin/users/${sub}/disconnect`, { sessionId: `${s.server.nodeId}:nope` })).status, 404);
      const one = await admin('POST', `/admin/users/${sub}/disconnect`, { sessionId: list[0]!.sessionId });
      assert.equal(one.status, 200);
      assert.deepEqual(one.body.disconnected, [list[0]!.sessionId]);
      assert.equal((await a.closed).code, 4012);
      await waitFor(async () => ((await admin('GET', `/admin/users/${sub}/sessions`)).body.sessions as unknown[]).length === 2, 2000, 'directory update');
      const all = await admin('POST', `/admin/users/${sub}/disconnect`, {});
      assert.equal((all.body.disconnected as unknown[]).length, 2);
      assert.equal((await b.closed).code, 4012);
      assert.equal((await c.closed).code, 4012);
    });

    test('ban: open sessions closed with auth_failure banned / 4010, auth refused until unban or expiry', async () => {
      const sub = newUserId();
      const open = track(await authAs(wsUrl, sub));
      const r = await admin('POST', `/admin/users/${sub}/ban`, { durationMs: 60_000 });
      assert.equal(r.status, 200);
      assert.ok((r.body.until as number) > Date.now());
      assert.equal((await open.next((f) => f.type === 'auth_failure')).reason, 'banned');
      assert.equal((await open.closed).code, 4010);
      const refused = await tryAuth(wsUrl, sub);
      track(refused.client);
      assert.equal(refused.reply.reason, 'banned');
      assert.equal((await refused.client.closed).code, 4010);
      assert.equal((await admin('DELETE', `/admin/users/${sub}/ban`)).status, 200);
      assert.equal((await admin('DELETE', `/admin/users/${sub}/ban`)).status, 404, 'nothing left to lift');
      track(await authAs(wsUrl, sub));

      // A ban ends by itself.
      const brief = newUserId();
      await admin('POST', `/admin/users/${brief}/ban`, { durationMs: 300 });
      const during = await tryAuth(wsUrl, brief);
      track(during.client);
      assert.equal(during.reply.reason, 'banned');
      await waitFor(async () => {
        const attempt = await tryAuth(wsUrl, brief);
        track(attempt.client);
        return attempt.reply.type === 'auth_success';
      }, 3000, 'the ban to expire', 100);
    });

    test('a ban keeps the timeline: what was sent while banned reaches the device, in pos order, after unban', async () => {
      const sub = newUserId();
      const sender = track(await authAs(wsUrl, newUserId()));
      const phone = track(await authAs(wsUrl, sub, { deviceId: 'phone' }));
      const first = await say(sender, sub, 'before the ban', 'b1');
      assert.equal((await phone.next((f) => f.type === 'chat_message' && f.id === first.id)).pos, 1);
      assert.equal((await admin('POST', `/admin/users/${sub}/ban`, { durationMs: 60_000 })).status, 200);
      assert.equal((await phone.closed).code, 4010);
      const second = await say(sender, sub, 'during the ban', 'b2');
      assert.equal((await admin('DELETE', `/admin/users/${sub}/ban`)).status, 200);
      // Nothing was acknowledged (no `ack {upTo}`): the device resumes from the start.
      const back = openClient(wsUrl);
      track(back);
      await back.opened;
      back.send({ type: 'auth', token: await token({ sub }), deviceId: 'phone' });
      const ok = await back.nextOfType('auth_success');
      assert.deepEqual([ok.resumeAfter, ok.lastPos], [0, 2]);
      await back.next((f) => f.type === 'chat_message' && f.pos === 2);
      const events = back.frames.filter((f) => f.type === 'chat_message');
      assert.deepEqual(events.map((f) => [f.pos, f.id, f.content]), [
        [1, first.id, 'before the ban'],
        [2, second.id, 'during the ban'],
      ]);
    });

    test('revoke by jti: its sessions closed (invalid_token, 4003), refused at auth and on refresh; other tokens unaffected', async () => {
      const sub = newUserId();
      const jti = `jti-${randomBytes(4).toString('hex')}`;
      const revoked = track(await authAs(wsUrl, sub, { jti }));
      const other = track(await authAs(wsUrl, sub, { jti: `${jti}-other` }));
      const exp = Math.floor(Date.now() / 1000) + 3600;
      assert.equal((await admin('POST', '/admin/tokens/revoke', { jti, exp: Math.floor(Date.now() / 1000) - 60 })).status, 400, 'already expired');
      // Every token the server accepts can be revoked: only an exp past jwt.maxTokenLifetimeMs
      // (refused at auth anyway) is too far; one beyond admin.maxBanMs (30 days here) is fine.
      const days = (n: number): number => n * 86_400;
      const tooFar = Math.floor(Date.now() / 1000) + days(366);
      assert.equal((await admin('POST', '/admin/tokens/revoke', { jti: `${jti}-far`, exp: tooFar })).status, 400, 'past the longest token lifetime');
      const far = await tryAuth(wsUrl, sub, `${jti}-far`, days(366));
      track(far.client);
      assert.equal(far.reply.reason, 'invalid_token', 'such a token is refused at auth');
      const longLived = await tryAuth(wsUrl, sub, `${jti}-long`, days(300));
      track(longLived.client);
      assert.equal(longLived.reply.type, 'auth_success');
      assert.equal((await admin('POST', '/admin/tokens/revoke', { jti: `${jti}-long`, exp: Math.floor(Date.now() / 1000) + days(300) })).status, 200, 'a long-lived accepted token can be revoked');
      assert.equal((await longLived.client.closed).code, 4003);
      const r = await admin('POST', '/admin/tokens/revoke', { jti, exp });
      assert.equal(r.status, 200);
      assert.equal((await revoked.next((f) => f.type === 'auth_failure')).reason, 'invalid_token');
      assert.equal((await revoked.closed).code, 4003);
      const again = await tryAuth(wsUrl, sub, jti);
      track(again.client);
      assert.equal(again.reply.reason, 'invalid_token');
      // a refresh with the revoked token closes the session that sends it
      other.send({ type: 'auth', token: await token({ sub, jti }) });
      assert.equal((await other.next((f) => f.type === 'auth_failure')).reason, 'invalid_token');
      assert.equal((await other.closed).code, 4003);
      track(await authAs(wsUrl, sub, { jti: `${jti}-new` }));
    });

    test('tenants: a revocation holds for its tenant only; a POST takes ?tenant= like GET and DELETE, and refuses a conflicting body', async () => {
      // A jti is unique per issuer only: two tenants' tokens may carry the same one.
      const jti = `jti-${randomBytes(4).toString('hex')}`;
      const inTenant = async (sub: string, tid: string | undefined, claims: Record<string, unknown> = {}) => {
        const client = track(openClient(wsUrl));
        await client.opened;
        client.send({ type: 'auth', token: await token({ sub, ...(tid !== undefined ? { tid } : {}), ...claims }) });
        assert.equal((await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure')).type, 'auth_success');
        return client;
      };
      const acme = await inTenant(newUserId(), 'acme', { jti });
      const globex = await inTenant(newUserId(), 'globex', { jti });
      const exp = Math.floor(Date.now() / 1000) + 3600;
      const r = await admin('POST', '/admin/tokens/revoke', { tenant: 'acme', jti, exp });
      assert.equal(r.status, 200);
      assert.equal(r.body.tenant, 'acme');
      assert.equal((await acme.closed).code, 4003);
      const again = await tryAuth(wsUrl, newUserId(), jti);
      track(again.client);
      assert.equal(again.reply.type, 'auth_success', 'the default tenant\'s token with that jti is not revoked');
      assert.equal(globex.closeCode, undefined, 'globex\'s token with that jti is not revoked');

      // POST /ban?tenant=acme bans acme's user, not the default tenant's user of the same id.
      const sub = newUserId();
      const inDefault = await inTenant(sub, undefined);
      const inAcme = await inTenant(sub, 'acme');
      const ban = await admin('POST', `/admin/users/${sub}/ban?tenant=acme`, { durationMs: 60_000 });
      assert.equal(ban.status, 200);
      assert.equal(ban.body.tenant, 'acme');
      assert.equal((await inAcme.closed).code, 4010);
      assert.equal(inDefault.closeCode, undefined);
      const conflict = await admin('POST', `/admin/users/${sub}/disconnect?tenant=acme`, { tenant: 'globex' });
      assert.deepEqual([conflict.status, conflict.body.details], [400, [{ path: 'tenant', rule: 'conflict' }]]);
      assert.equal(inDefault.closeCode, undefined);
    });

    test('users list their own sessions and end one remotely (4011); someone else\'s is forbidden', async () => {
      const sub = newUserId();
      const laptop = track(await authAs(wsUrl, sub, { deviceId: 'laptop' }));
      const phone = track(await authAs(wsUrl, sub, { deviceId: 'phone' }));
      const stranger = track(await authAs(wsUrl, newUserId()));
      laptop.send({ type: 'list_sessions', requestId: 'r1' });
      const listed = await laptop.nextOfType('sessions');
      assert.equal(listed.requestId, 'r1');
      const sessions = listed.sessions as { sessionId: string; deviceId?: string; current: boolean; node: string; ip: string; since: number }[];
      assert.deepEqual(sessions.map((x) => [x.deviceId, x.current]), [['laptop', true], ['phone', false]]);
      const phoneId = sessions[1]!.sessionId;

      stranger.send({ type: 'end_session', sessionId: phoneId, requestId: 'x' });
      const forbidden = await stranger.nextOfType('error');
      assert.deepEqual(forbidden, { type: 'error', reason: 'forbidden', requestId: 'x' });
      stranger.send({ type: 'end_session', sessionId: `${s.server.nodeId}:s999999` });
      assert.equal((await stranger.nthOfType('error', 2)).reason, 'forbidden', 'same answer for a session that does not exist');

      laptop.send({ type: 'end_session', sessionId: phoneId, requestId: 'r2' });
      assert.deepEqual(await laptop.nextOfType('session_ended'), { type: 'session_ended', sessionId: phoneId, requestId: 'r2' });
      assert.equal((await phone.closed).code, 4011);
      laptop.send({ type: 'end_session', sessionId: 'bad id with spaces' });
      assert.equal((await laptop.nextOfType('error')).reason, 'validation_failed');
    });

    test('every action is audited (actor, action, target, outcome, ip); GET /admin/audit pages newest first; no token anywhere', async () => {
      const sub = newUserId();
      await admin('POST', `/admin/users/${sub}/ban`, { durationMs: 1000 }, { ip: '10.7.0.1' });
      await admin('DELETE', `/admin/users/${sub}/ban`, undefined, { ip: '10.7.0.1' });
      const first = await admin('GET', '/admin/audit?limit=2', undefined, { ip: '10.7.0.2' });
      assert.equal(first.status, 200);
      const records = first.body.records as Record<string, unknown>[];
      assert.equal(records.length, 2);
      assert.deepEqual(
        records.map((r) => [r.action, r.target, r.outcome, r.actor, r.ip]),
        [
          ['unban', `user:default:${sub}`, 'ok', 'ops-alice', '10.7.0.1'],
          ['ban', `user:default:${sub}`, 'ok', 'ops-alice', '10.7.0.1'],
        ],
      );
      assert.equal((records[1]!.detail as Record<string, unknown>).durationMs, 1000);
      assert.ok(typeof records[0]!.at === 'number' && (records[0]!.id as number) > (records[1]!.id as number));
      // page through everything
      const all: Record<string, unknown>[] = [...records];
      let next = first.body.next as number | undefined;
      while (next !== undefined) {
        const page = await admin('GET', `/admin/audit?limit=3&before=${next}`, undefined, { ip: '10.7.0.2' });
        all.push(...(page.body.records as Record<string, unknown>[]));
        next = page.body.next as number | undefined;
      }
      const ids = all.map((r) => r.id as number);
      assert.deepEqual(ids, [...ids].sort((a, b) => b - a));
      assert.equal(new Set(ids).size, ids.length);
      for (const action of ['list_sessions', 'disconnect', 'ban', 'unban', 'revoke']) assert.ok(all.some((r) => r.action === action), action);
      assert.ok(all.some((r) => r.action === 'disconnect' && r.outcome === 'not_found'));
      assert.equal((await admin('GET', '/admin/audit?limit=0')).status, 400);
      assert.equal((await admin('GET', '/admin/audit?before=abc')).status, 400);
      // the log has the records and never the credential
      const logs = s.logs.join('');
      assert.ok(logs.includes('"event":"audit"'));
      assert.ok(!logs.includes(ADMIN_TOKEN));
      assert.ok(!JSON.stringify(all).includes(ADMIN_TOKEN));
    });
  });
}
