/**
 * A commit whose answer was lost (the connection to PostgreSQL dropped after COMMIT reached the
 * server), on a two-node cluster. A chat_message's resend is answered as a duplicate and every
 * member's sessions, on every node, read their timelines (docs/protocol.md §6). A group change
 * carries no key: its retry is answered `group_updated {changed: false}` (a leave: `forbidden`),
 * and the members and the users it named read their timelines the same way — or the removed
 * member on the other node would never get `removed`, nor the others `left`.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Redis } from 'ioredis';
import {
  PG_URL,
  REDIS_URL,
  authedClient,
  closeAll,
  dropRedisPrefix,
  startServer,
  uniqueRedisPrefix,
  waitFor,
  type TestClient,
  type TestServer,
} from '../helpers/harness.js';
import { postgresBackend } from '../helpers/storage-backends.js';
import { createGroup, expectReply, ask } from '../helpers/timeline.js';

/** TCP proxy to PostgreSQL that, when armed, lets the next COMMIT reach the server and drops its answer. */
async function startPgProxy(): Promise<{ port: number; arm(): void; fired(): number; close(): Promise<void> }> {
  const target = new URL(PG_URL);
  const commit = Buffer.concat([Buffer.from([0x51, 0, 0, 0, 11]), Buffer.from('COMMIT\0')]);
  const sockets = new Set<net.Socket>();
  const state = { armed: false, fired: 0 };
  const server = net.createServer((client) => {
    const up = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(up);
    let swallow = false;
    client.on('data', (chunk: Buffer) => {
      if (state.armed && chunk.includes(commit)) {
        state.armed = false;
        state.fired++;
        swallow = true;
      }
      up.write(chunk);
    });
    up.on('data', (chunk: Buffer) => {
      if (!swallow) return void client.write(chunk);
      // The server answered the COMMIT (so it is done): the client never hears it.
      client.destroy();
      up.destroy();
    });
    const end = (): void => {
      client.destroy();
      up.destroy();
      sockets.delete(client);
      sockets.delete(up);
    };
    client.on('close', end).on('error', end);
    up.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    arm: () => void (state.armed = true),
    fired: () => state.fired,
    async close() {
      for (const s of [...sockets]) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a commit whose answer was lost, on a two-node cluster', () => {
  const backend = postgresBackend('review_lostc');
  const prefix = uniqueRedisPrefix('review-lostc');
  const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const clients: TestClient[] = [];
  let proxy: Awaited<ReturnType<typeof startPgProxy>>;
  let n1: TestServer;
  let n2: TestServer;

  before(async () => {
    await backend.setup();
    await admin.connect();
    proxy = await startPgProxy();
    const storage = backend.allocate().storage;
    const viaProxy = storage.replace(/@127\.0\.0\.1:\d+\//, `@127.0.0.1:${proxy.port}/`);
    assert.notEqual(viaProxy, storage);
    const common = { redisUrl: REDIS_URL, redisKeyPrefix: prefix };
    n1 = await startServer({ ...common, storage: viaProxy }, { nodeId: 'review-n1' });
    n2 = await startServer({ ...common, storage }, { nodeId: 'review-n2' });
  });

  after(async () => {
    await closeAll(...clients);
    await n1?.close();
    await n2?.close();
    await proxy?.close();
    await dropRedisPrefix(admin, prefix);
    admin.disconnect();
    await backend.teardown();
  });

  const authed = async (s: TestServer): Promise<TestClient & { userId: string }> => {
    const c = await authedClient(s.url);
    clients.push(c);
    return c;
  };

  test('control: a chat_message resent after its lost commit reaches the member on the other node', { timeout: 30_000 }, async () => {
    const owner = await authed(n1);
    const member = await authed(n2);
    const cid = await createGroup(owner, [member.userId]);
    await member.next((f) => f.type === 'membership' && f.conversationId === cid);
    proxy.arm();
    const clientMsgId = `m-review-${Date.now()}`;
    owner.send({ type: 'chat_message', conversationId: cid, content: 'lost answer', clientMsgId });
    const first = await owner.next((f) => f.clientMsgId === clientMsgId && (f.type === 'error' || f.type === 'message_sent'));
    assert.deepEqual([first.type, first.reason], ['error', 'storage_unavailable'], JSON.stringify(first));
    assert.equal(proxy.fired(), 1);
    owner.send({ type: 'chat_message', conversationId: cid, content: 'lost answer', clientMsgId });
    await owner.next((f) => f.clientMsgId === clientMsgId && f.type === 'message_sent');
    await waitFor(() => member.frames.some((f) => f.type === 'chat_message' && f.content === 'lost answer'), 5000, 'the message, live on node 2');
  });

  test("a remove_members retried after its lost commit: the removed member's session on the other node gets `removed`", { timeout: 30_000 }, async () => {
    const owner = await authed(n1);
    const member = await authed(n2);
    const other = await authed(n2);
    const cid = await createGroup(owner, [member.userId, other.userId]);
    await member.next((f) => f.type === 'membership' && f.conversationId === cid);
    const fired = proxy.fired();
    proxy.arm();
    const first = await ask(owner, { type: 'remove_members', conversationId: cid, userIds: [member.userId] });
    assert.equal(proxy.fired(), fired + 1);
    assert.deepEqual([first.type, first.reason], ['error', 'storage_unavailable'], JSON.stringify(first));
    // The client does what the protocol says: retries.
    const retry = await expectReply(owner, { type: 'remove_members', conversationId: cid, userIds: [member.userId] }, 'group_updated');
    assert.equal(retry.changed, false, 'the first attempt did commit');
    await waitFor(
      () => member.frames.some((f) => f.type === 'membership' && f.conversationId === cid && f.action === 'removed'),
      5000,
      "the removed member's `removed` event, live on node 2",
    );
  });

  test('a leave_group whose answer was lost: the members on the other node get `left` (and the new owner)', { timeout: 30_000 }, async () => {
    const owner = await authed(n1);
    const member = await authed(n2);
    const cid = await createGroup(owner, [member.userId]);
    await member.next((f) => f.type === 'membership' && f.conversationId === cid);
    const fired = proxy.fired();
    proxy.arm();
    const first = await ask(owner, { type: 'leave_group', conversationId: cid });
    assert.equal(proxy.fired(), fired + 1);
    assert.deepEqual([first.type, first.reason], ['error', 'storage_unavailable'], JSON.stringify(first));
    // The retry: the owner is no member any more, so it is refused and nothing is published.
    const retry = await ask(owner, { type: 'leave_group', conversationId: cid });
    assert.notEqual(retry.type, 'rate_limited');
    await waitFor(
      () => member.frames.some((f) => f.type === 'membership' && f.conversationId === cid && f.action === 'left'),
      5000,
      "the `left` event (newOwnerId: the member), live on node 2",
    );
  });
});
