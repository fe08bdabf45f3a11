/**
 * Two Rampart processes sharing Redis (bus, limiter, connection registry; unique key prefix) and
 * one PostgreSQL schema: cross-node delivery with v2 positions, every device on every node (the
 * sender's own other devices included), groups spanning nodes and a removal that holds on every
 * node, cluster-wide session and rate limits, a Redis cut between one node and Redis — its online
 * sessions get what was sent meanwhile without reconnecting (the bus resync reads the gap from
 * storage) — and a node killed with SIGKILL: the survivor keeps serving, the timeline holds what
 * was sent meanwhile, and the dead node's slots free themselves after the liveness TTL.
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
  startRedisProxy,
  uniqueRedisPrefix,
  waitFor,
  within,
  type Frame,
  type TcpProxy,
  type TestClient, dropRedisPrefix } from '../helpers/harness.js';
import { spawnServerProcess, writeServerConfig, type ServerProcess, stopServerProcesses } from '../helpers/server-process.js';
import { postgresBackend } from '../helpers/storage-backends.js';
import type { RampartConfigInput } from '../../src/config/schema.js';
import { assertContiguous, createGroup, deviceClient, expectReply, said, streamOf, waitEvent, type DeviceClient } from '../helpers/timeline.js';
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
  const proxies: TcpProxy[] = [];
  let dir: string;
  let settings: RampartConfigInput;
  let n1: ServerProcess;
  let n2: ServerProcess;

  const track = <T extends TestClient>(c: T): T => {
    clients.push(c);
    return c;
  };
  const authed = async (node: ServerProcess, sub = newUserId()): Promise<TestClient & { userId: string }> => track(await authedClient(node.url, sub));
  const device = async (node: ServerProcess, sub = newUserId(), deviceId?: string): Promise<DeviceClient> =>
    track(await deviceClient(node.url, sub, deviceId === undefined ? {} : { deviceId }));
  /** The registry hash of a user or an IP, as Redis holds it: nodeId → slots. */
  const slots = (kind: 'ip' | 'user', id: string): Promise<Record<string, string>> => admin.hgetall(`${prefix}:${kind}:${id}`);

  before(async () => {
    await backend.setup();
    await admin.connect(); // unreachable Redis fails the suite here
    dir = mkdtempSync(join(tmpdir(), 'rampart-cluster-'));
    settings = {
      storage: backend.allocate().storage,
      redisUrl: REDIS_URL,
      redisKeyPrefix: prefix,
      maxConnectionsPerUser: 2,
      rateLimit: { burstLimit: 3, burstWindow: 30_000 },
      limits: { nodeLivenessMs: LIVENESS_MS },
    };
    const configFile = writeServerConfig(dir, 'rampart.json', settings);
    [n1, n2] = await Promise.all([spawnServerProcess(configFile, children), spawnServerProcess(configFile, children)]);
    assert.notEqual(n1.nodeId, n2.nodeId);
  });

  after(async () => {
    await closeAll(...clients);
    await stopServerProcesses(children);
    await dropRedisPrefix(admin, prefix);
    for (const proxy of proxies) await proxy.close();
    await backend.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a message from A on node 1 reaches B on node 2, with its conversation, seq and pos', async () => {
    const a = await authed(n1);
    const b = await authed(n2);
    a.send(chat(b.userId, 'across the cluster'));
    const sent = await a.nextOfType('message_sent');
    const got = await b.nextOfType('chat_message');
    assert.equal(got.id, sent.id);
    assert.equal(got.senderId, a.userId);
    assert.deepEqual([sent.seq, sent.pos], [1, 1]);
    assert.deepEqual([got.conversationId, got.seq, got.pos], [sent.conversationId, 1, 1]);
  });

  test("the sender's other device on the other node gets its copy; a group spans both nodes; a removal holds on both", async () => {
    const sub = newUserId();
    const a1 = await device(n1, sub, 'a-one');
    const a2 = await device(n2, sub, 'a-two');
    const b = await device(n2);
    const c = await device(n1);

    const direct = await said(a1, b.userId, 'direct, seen by my other device');
    const copy = await waitEvent(a2, String(direct.id));
    assert.deepEqual([copy.type, copy.pos, copy.senderId, copy.recipientId], ['chat_message', direct.pos, sub, b.userId]);

    const cid = await createGroup(a1, [b.userId, c.userId]);
    const hello = await said(a1, { conversationId: cid }, 'hello both nodes');
    for (const peer of [a2, b, c]) {
      const got = await waitEvent(peer, String(hello.id));
      assert.deepEqual([got.conversationId, got.seq], [cid, 2]);
    }
    const fromB = await said(b, { conversationId: cid }, 'from node 2');
    for (const peer of [a1, a2, c]) await waitEvent(peer, String(fromB.id));

    // The owner's device on node 2 removes C (on node 1): C gets `removed`, then nothing more.
    await expectReply(a2, { type: 'remove_members', conversationId: cid, userIds: [c.userId] }, 'group_updated');
    const removed = await c.next((f) => f.type === 'membership' && f.action === 'removed');
    const mark = c.frames.length;
    const after1 = await said(a1, { conversationId: cid }, 'not for C (sent on node 1)');
    const after2 = await said(b, { conversationId: cid }, 'not for C (sent on node 2)');
    await waitEvent(b, String(after1.id));
    await waitEvent(a1, String(after2.id));
    const m = await said(b, c.userId, 'marker from node 2');
    const got = await waitEvent(c, String(m.id));
    assert.equal(got.pos, (removed.pos as number) + 1, 'nothing of the group between the removal and the marker');
    assert.deepEqual(c.frames.slice(mark).filter((f) => f.conversationId === cid), []);
    for (const s of [a1, a2, b, c]) assertContiguous(s);
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

  test('Redis cut between node 3 and Redis: its online recipient gets what was sent meanwhile, without reconnecting', { timeout: 30_000 }, async () => {
    const proxy = await startRedisProxy();
    proxies.push(proxy);
    const n3 = await spawnServerProcess(writeServerConfig(dir, 'rampart-proxied.json', { ...settings, redisUrl: proxy.url }), children);
    // One sender per message: the cluster's burst limit is 3 per 30 s.
    const senders = await Promise.all(Array.from({ length: 5 }, () => device(n1)));
    const b = await device(n3, newUserId(), 'b-laptop');
    const before = await said(senders[0]!, b.userId, 'before the cut');
    await waitEvent(b, String(before.id));

    await proxy.stop(); // node 3 loses Redis: its subscriptions are gone
    const during: Frame[] = [];
    for (let i = 1; i <= 3; i++) during.push(await said(senders[i]!, b.userId, `during the cut ${i}`)); // node 1 and storage are fine
    assert.deepEqual(streamOf(b).map((s) => s.id), [before.id], 'nothing crossed the cut');

    await proxy.start(); // node 3 reconnects, resubscribes and reads the gap from storage
    for (const m of during) await within(waitEvent(b, String(m.id)), 15_000, `message ${String(m.id)} to reach B after the cut`);
    assert.equal(b.closeCode, undefined, 'the same socket');
    assert.equal(b.frames.filter((f) => f.type === 'auth_success').length, 1, 'no reconnect');
    assert.deepEqual(assertContiguous(b).map((s) => s.id), [before.id, ...during.map((m) => m.id)]);

    // And live delivery works again.
    const afterCut = await said(senders[4]!, b.userId, 'after the cut');
    assert.equal((await waitEvent(b, String(afterCut.id))).pos, 5);
  });

  test('kill -9 of node 1: node 2 keeps serving, the timeline holds what was sent, the dead node frees its slots', async () => {
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
    assert.deepEqual(ofType(aOnN2, 'chat_message').map((m) => m.pos), [1, 2]);
  });
});
