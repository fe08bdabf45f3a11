/**
 * Two Rampart processes sharing Redis (bus, limiter, connection registry; unique key prefix) and
 * one PostgreSQL schema: cross-node delivery, every device on every node, cluster-wide session
 * and rate limits, and a node killed with SIGKILL — the survivor keeps serving, the offline inbox
 * holds what was sent meanwhile, and the dead node's slots free themselves after the liveness TTL.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  REDIS_URL,
  authedClient,
  closeAll,
  newUserId,
  openClient,
  token,
  uniqueRedisPrefix,
  waitFor,
  type Frame,
  type TestClient,
} from '../helpers/harness.js';
import { spawnServerProcess, writeServerConfig, type ServerProcess } from '../helpers/server-process.js';
import { postgresBackend } from '../helpers/storage-backends.js';
import { DEFAULT_TENANT } from '../../src/auth/token-verifier.js';

/** Liveness TTL of a node's registry entries: short, so the kill -9 test waits ~2 s, not 15. */
const LIVENESS_MS = 2000;


const chat = (recipientId: string, content: string): Record<string, unknown> => ({ type: 'chat_message', recipientId, content });
const ofType = (c: TestClient, type: string): Frame[] => c.frames.filter((f) => f.type === type);

/** Opens a socket and sends `auth`; resolves with the client and the reply. */
async function tryAuth(url: string, sub: string): Promise<{ client: TestClient; reply: Frame }> {
  const client = openClient(url);
  await client.opened;
  client.send({ type: 'auth', token: await token({ sub }) });
  const reply = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
  return { client, reply };
}

describe('two nodes sharing Redis and PostgreSQL', () => {
  const children: ChildProcess[] = [];
  const clients: TestClient[] = [];
  const backend = postgresBackend('cluster');
  const prefix = uniqueRedisPrefix('cluster');
  const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let dir: string;
  let n1: ServerProcess;
  let n2: ServerProcess;

  const track = <T extends TestClient>(c: T): T => {
    clients.push(c);
    return c;
  };
  const authed = async (node: ServerProcess, sub = newUserId()): Promise<TestClient & { userId: string }> => track(await authedClient(node.url, sub));
  /** The registry hash of a user or an IP, as Redis holds it: nodeId → slots. */
  const slots = (kind: 'ip' | 'user', id: string): Promise<Record<string, string>> => admin.hgetall(`${prefix}:${kind}:${id}`);

  before(async () => {
    await backend.setup();
    await admin.connect(); // unreachable Redis fails the suite here
    dir = mkdtempSync(join(tmpdir(), 'rampart-cluster-'));
    const configFile = writeServerConfig(dir, 'rampart.json', {
      storage: backend.allocate().storage,
      redisUrl: REDIS_URL,
      redisKeyPrefix: prefix,
      maxConnectionsPerUser: 2,
      rateLimit: { burstLimit: 3, burstWindow: 30_000 },
      limits: { nodeLivenessMs: LIVENESS_MS },
    });
    [n1, n2] = await Promise.all([spawnServerProcess(configFile, children), spawnServerProcess(configFile, children)]);
    assert.notEqual(n1.nodeId, n2.nodeId);
  });

  after(async () => {
    await closeAll(...clients);
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM'); // graceful: gives back its registry slots and liveness key
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(timer);
      }),
    );
    if (admin.status === 'ready') {
      for await (const batch of admin.scanStream({ match: `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, count: 1000 }) as AsyncIterable<string[]>) {
        if (batch.length > 0) await admin.del(...batch);
      }
      await admin.quit();
    } else admin.disconnect();
    await backend.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a message from A on node 1 reaches B on node 2', async () => {
    const a = await authed(n1);
    const b = await authed(n2);
    a.send(chat(b.userId, 'across the cluster'));
    const sent = await a.nextOfType('message_sent');
    const got = await b.nextOfType('chat_message');
    assert.equal(got.id, sent.id);
    assert.equal(got.senderId, a.userId);
  });

  test('a user with sessions on both nodes receives on both', async () => {
    const sub = newUserId();
    const c1 = await authed(n1, sub);
    const c2 = await authed(n2, sub);
    const sender = await authed(n1);
    sender.send(chat(sub, 'to every device'));
    const [g1, g2] = await Promise.all([c1.nextOfType('chat_message'), c2.nextOfType('chat_message')]);
    assert.equal(g1.content, 'to every device');
    assert.equal(g2.id, g1.id);
  });

  test('maxConnectionsPerUser 2 holds across nodes', async () => {
    const sub = newUserId();
    await authed(n1, sub);
    await authed(n2, sub);
    for (const node of [n1, n2]) {
      const third = await tryAuth(node.url, sub);
      track(third.client);
      assert.equal(third.reply.reason, 'too_many_sessions');
      assert.equal((await third.client.closed).code, 4008);
    }
  });

  test('the burst limit is shared across nodes', async () => {
    const sub = newUserId();
    const s1 = await authed(n1, sub);
    const s2 = await authed(n2, sub);
    const r = await authed(n2);
    s1.send(chat(r.userId, 'a'));
    s1.send(chat(r.userId, 'b'));
    s2.send(chat(r.userId, 'c'));
    s2.send(chat(r.userId, 'd'));
    const answers = (): number => [s1, s2].reduce((n, s) => n + ofType(s, 'message_sent').length + ofType(s, 'rate_limited').length, 0);
    await waitFor(() => answers() === 4, 5000, 'four answers');
    assert.equal(ofType(s1, 'message_sent').length + ofType(s2, 'message_sent').length, 3);
    assert.equal([...ofType(s1, 'rate_limited'), ...ofType(s2, 'rate_limited')][0]?.reason, 'burst_limit');
  });

  test('kill -9 of node 1: node 2 keeps serving, the inbox holds what was sent, the dead node frees its slots', async () => {
    const a = newUserId();
    const f = newUserId();
    const aOnN1 = await authed(n1, a);
    const b = await authed(n2);
    await authed(n1, f);
    await authed(n1, f);
    const fKey = `${DEFAULT_TENANT}:${f}`;
    assert.equal((await slots('user', fKey))[n1.nodeId], '2');
    assert.ok(Number((await slots('ip', '127.0.0.1'))[n1.nodeId]) >= 3);

    n1.child.kill('SIGKILL');
    await n1.exited;
    await aOnN1.closed;
    const killedAt = Date.now();

    // Right after the crash the dead node's slots still count (it might only be partitioned) …
    const refused = await tryAuth(n2.url, f);
    track(refused.client);
    // (the key was refreshed at most LIVENESS_MS / 3 before the kill, so it lives ≥ 2/3 of the TTL after it)
    if (Date.now() - killedAt < (LIVENESS_MS * 2) / 3 - 200) assert.equal(refused.reply.reason, 'too_many_sessions');

    // … node 2 keeps serving, and what B sends to the offline A lands in A's inbox …
    b.send(chat(a, 'while you were away 1'));
    b.send(chat(a, 'while you were away 2'));
    await b.nthOfType('message_sent', 2);

    // … and once the liveness TTL has passed, the dead node's slots no longer count.
    await waitFor(
      async () => {
        const attempt = await tryAuth(n2.url, f);
        track(attempt.client);
        return attempt.reply.type === 'auth_success';
      },
      LIVENESS_MS + 5000,
      "F's slots held by the dead node to be freed",
      200,
    );
    assert.equal((await slots('user', fKey))[n1.nodeId], undefined, 'the dead node field was dropped');
    track(await authedClient(n2.url)); // an IP acquire sweeps the dead field of the IP hash too
    assert.equal((await slots('ip', '127.0.0.1'))[n1.nodeId], undefined);

    const aOnN2 = await authed(n2, a);
    await aOnN2.nthOfType('chat_message', 2);
    assert.deepEqual(ofType(aOnN2, 'chat_message').map((m) => m.content), ['while you were away 1', 'while you were away 2']);
  });
});
