/**
 * The client SDK against a real Rampart: two Node clients (rampart/client/node) talk while the
 * server process is killed (SIGKILL) and restarted, while a proxy cuts their TCP connections, and
 * while their tokens expire. Each application must see every message of the other exactly once,
 * in the order it was sent, and every send must resolve.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import WebSocket from 'ws';
import { createNodeClient, FileSyncStore, type RampartClient, type SendReceipt } from '../../src/client/node.js';
import type { WebSocketLike } from '../../src/client/socket.js';
import { signDevToken } from '../../src/auth/dev-token.js';
import { freePort, startServer, startTcpProxy, newUserId, TEST_SECRET, waitFor, within } from '../helpers/harness.js';
import { spawnServerProcess, writeServerConfig } from '../helpers/server-process.js';

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Limits high enough that this test measures delivery, not rate limiting. */
const GENEROUS = {
  rateLimit: { burstLimit: 10_000, messagesPerMinute: 100_000, messagesPerHour: 100_000 },
  limits: { frames: { limit: 10_000, windowMs: 1000 }, requests: { limit: 10_000, windowMs: 1000 } },
};
const FAST_RETRY = { backoff: { baseMs: 50, maxMs: 400 }, shutdownDelayMaxMs: 200, ackDelayMs: 20 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A client and what its application saw: every timeline event, in the order it was handed over. */
interface Peer {
  id: string;
  client: RampartClient;
  /** Contents of messages from the other user, in arrival order. */
  received: string[];
  /** Every message id handed to the application (message or sent event). */
  ids: string[];
  /** Positions of the events that carried one, in arrival order. */
  positions: number[];
  disconnects: number[];
  tokens: number;
}

function peer(url: string, o: { ttlSeconds?: number; store?: FileSyncStore; refresh?: { marginMs: number; minDelayMs: number }; liveness?: { pingIntervalMs: number; pongTimeoutMs: number } } = {}): Peer {
  const id = newUserId();
  const p: Peer = { id, client: undefined as unknown as RampartClient, received: [], ids: [], positions: [], disconnects: [], tokens: 0 };
  p.client = createNodeClient({
    url,
    token: () => {
      p.tokens++;
      return signDevToken(TEST_SECRET, { sub: id, ttl: o.ttlSeconds ?? 3600 });
    },
    ...FAST_RETRY,
    ...(o.store ? { store: o.store } : {}),
    ...(o.refresh ? { refresh: o.refresh } : {}),
    ...o.liveness,
  });
  p.client.on('message', (m) => {
    p.ids.push(m.id);
    p.positions.push(m.pos);
    if (!m.own) p.received.push(m.content);
  });
  p.client.on('sent', (s) => {
    p.ids.push(s.id);
    if (s.pos !== undefined) p.positions.push(s.pos);
  });
  p.client.on('disconnected', (d) => p.disconnects.push(d.code));
  return p;
}

/**
 * A and B each send `n` messages to the other, one every `everyMs`; `during(i)` runs after the
 * i-th pair (faults are injected there). Then every send must resolve and each side must have
 * the other's n messages exactly once, in order.
 */
async function converse(a: Peer, b: Peer, n: number, everyMs: number, during: (i: number) => Promise<void> | void): Promise<void> {
  const sends: Promise<SendReceipt>[] = [];
  for (let i = 0; i < n; i++) {
    sends.push(a.client.sendMessage({ recipientId: b.id }, `a${i}`));
    sends.push(b.client.sendMessage({ recipientId: a.id }, `b${i}`));
    await during(i);
    await sleep(everyMs);
  }
  const receipts = await within(Promise.all(sends), 30_000, 'every send to be confirmed');
  assert.equal(new Set(receipts.map((r) => r.id)).size, 2 * n, 'one stored message per send');
  // A last message each way: streams are in pos order, so once it is in, any duplicate of an
  // earlier message would already have been handed to the application (no waiting on time).
  await Promise.all([a.client.sendMessage({ recipientId: b.id }, 'a-end'), b.client.sendMessage({ recipientId: a.id }, 'b-end')]);
  await waitFor(() => a.received.includes('b-end') && b.received.includes('a-end'), 30_000, `both sides to receive ${n} messages and the end marker (a has ${a.received.length}, b has ${b.received.length})`);
  a.received.splice(a.received.indexOf('b-end'), 1);
  b.received.splice(b.received.indexOf('a-end'), 1);
  const expect = (prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  assert.deepEqual(b.received, expect('a'), 'B saw each of A’s messages once, in order');
  assert.deepEqual(a.received, expect('b'), 'A saw each of B’s messages once, in order');
  for (const p of [a, b]) {
    assert.equal(new Set(p.ids).size, p.ids.length, 'no message id handed over twice');
    for (let i = 1; i < p.positions.length; i++) assert.ok(p.positions[i]! > p.positions[i - 1]!, `positions increase: ${p.positions.join(',')}`);
  }
}

test('the server process is killed (SIGKILL) mid-conversation and restarted: nothing lost, nothing twice', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-sdk-kill-'));
  const port = await freePort();
  const config = writeServerConfig(dir, 'rampart.json', { port, storage: `sqlite:${join(dir, 'db.sqlite')}`, ...GENEROUS });
  let server = await spawnServerProcess(config, children);
  const url = `ws://127.0.0.1:${port}/ws`;
  const a = peer(url, { store: new FileSyncStore(join(dir, 'a-sync.json')) });
  const b = peer(url, { store: new FileSyncStore(join(dir, 'b-sync.json')) });
  try {
    await Promise.all([a.client.connect(), b.client.connect()]);
    await converse(a, b, 30, 15, async (i) => {
      if (i !== 12) return;
      server.child.kill('SIGKILL');
      await server.exited;
      server = await spawnServerProcess(config, children);
    });
    assert.ok(a.disconnects.length >= 1 && b.disconnects.length >= 1, 'both clients lost the server');
    // The file store kept the device and its position.
    a.client.close();
    const saved = new FileSyncStore(join(dir, 'a-sync.json')).load();
    assert.equal(saved?.deviceId, a.client.deviceId);
    assert.equal(saved?.pos, a.client.pos);
  } finally {
    a.client.close();
    b.client.close();
    server.child.kill('SIGTERM');
    await server.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a proxy cuts the TCP connections while messages flow both ways: each message once, in order', { timeout: 120_000 }, async () => {
  const srv = await startServer(GENEROUS);
  const proxy = await startTcpProxy('127.0.0.1', srv.port);
  const url = `ws://127.0.0.1:${proxy.port}/ws`;
  const a = peer(url);
  const b = peer(url);
  try {
    await Promise.all([a.client.connect(), b.client.connect()]);
    await converse(a, b, 40, 10, async (i) => {
      if (i % 10 !== 5) return;
      await proxy.stop(); // every connection dropped mid-stream, and no new one for a moment
      await sleep(80);
      await proxy.start();
    });
    assert.ok(a.disconnects.length >= 3, `A reconnected after each cut (${a.disconnects.join(',')})`);
    assert.ok(b.disconnects.length >= 3);
  } finally {
    a.client.close();
    b.client.close();
    await proxy.close();
    await srv.close();
  }
});

test('a connection that dies silently (no FIN, no RST) is found by ping and replaced; what was sent into it arrives', { timeout: 60_000 }, async () => {
  const srv = await startServer(GENEROUS);
  const proxy = await startTcpProxy('127.0.0.1', srv.port);
  const url = `ws://127.0.0.1:${proxy.port}/ws`;
  const liveness = { pingIntervalMs: 300, pongTimeoutMs: 300 };
  const a = peer(url, { liveness });
  const b = peer(url, { liveness });
  try {
    await Promise.all([a.client.connect(), b.client.connect()]);
    await a.client.sendMessage({ recipientId: b.id }, 'before');
    await waitFor(() => b.received.includes('before'), 10_000, 'B to receive the first message');
    proxy.freeze(); // both connections now lead nowhere, and neither end is told
    const during = a.client.sendMessage({ recipientId: b.id }, 'during');
    // Each client must notice on its own (pings unanswered), reconnect, resend and resume.
    await waitFor(() => a.disconnects.length >= 1 && b.disconnects.length >= 1, 20_000, 'both clients to give their dead connection up');
    const receipt = await within(during, 20_000, 'the send made into the dead connection to be confirmed');
    await waitFor(() => b.received.includes('during'), 20_000, 'B to receive it on its new connection');
    assert.deepEqual(b.received, ['before', 'during']);
    assert.equal(new Set(b.ids).size, b.ids.length);
    assert.ok(receipt.id.length > 0);
  } finally {
    a.client.close();
    b.client.close();
    await proxy.close();
    await srv.close();
  }
});

test('tokens expire during the conversation: refreshed on the open socket, or renewed on reconnect', { timeout: 120_000 }, async () => {
  const srv = await startServer({ ...GENEROUS, jwt: { secret: TEST_SECRET, clockTolerance: 0 } });
  // A refreshes 1 s before exp (tokens of 2 s): it never loses its socket.
  const a = peer(srv.url, { ttlSeconds: 2, refresh: { marginMs: 1000, minDelayMs: 100 } });
  // B never refreshes in time: the server closes it at exp (4005) and it comes back with a fresh token.
  const b = peer(srv.url, { ttlSeconds: 2, refresh: { marginMs: 0, minDelayMs: 600_000 } });
  try {
    await Promise.all([a.client.connect(), b.client.connect()]);
    await converse(a, b, 40, 100, () => {});
    assert.deepEqual(a.disconnects, [], 'A kept its socket through the refreshes');
    assert.ok(a.tokens >= 3, `A asked for fresh tokens (${a.tokens})`);
    assert.ok(b.disconnects.length >= 1 && b.disconnects.every((c) => c === 4005), `B was closed for expiry: ${b.disconnects.join(',')}`);
    assert.equal(b.tokens, b.disconnects.length + 1, 'a fresh token for every reconnect');
  } finally {
    a.client.close();
    b.client.close();
    await srv.close();
  }
});

test('edits and deletes through a cut proxy: each applied once, each seen once in order; history shows the latest content and tombstones', { timeout: 120_000 }, async () => {
  const srv = await startServer(GENEROUS);
  const proxy = await startTcpProxy('127.0.0.1', srv.port);
  const url = `ws://127.0.0.1:${proxy.port}/ws`;
  const a = peer(url);
  const b = peer(url);
  const changes: Record<'a' | 'b', string[]> = { a: [], b: [] };
  const changePositions: Record<'a' | 'b', number[]> = { a: [], b: [] };
  for (const [key, p] of [['a', a], ['b', b]] as const) {
    p.client.on('edited', (e) => {
      changes[key].push(`edited ${e.messageId} ${e.content}`);
      p.positions.push(e.pos);
      changePositions[key].push(e.pos);
    });
    p.client.on('deleted', (d) => {
      changes[key].push(`deleted ${d.messageId}`);
      p.positions.push(d.pos);
      changePositions[key].push(d.pos);
    });
  }
  const N = 20;
  try {
    await Promise.all([a.client.connect(), b.client.connect()]);
    // The first message opens the direct conversation; the rest go by its conversationId.
    const first = await a.client.sendMessage({ recipientId: b.id }, 'v0-0');
    const sent = [first];
    for (let i = 1; i < N; i++) sent.push(await a.client.sendMessage({ conversationId: first.conversationId }, `v0-${i}`));
    assert.ok(sent.every((r) => r.conversationId === first.conversationId), 'sent by conversationId into the direct conversation');
    await waitFor(() => b.received.length === N, 10_000, 'B to receive the originals');
    const done: Promise<unknown>[] = [];
    const expected: string[] = [];
    for (let i = 0; i < N; i++) {
      const id = sent[i]!.id;
      done.push(a.client.editMessage(id, `v1-${i}`));
      expected.push(`edited ${id} v1-${i}`);
      if (i % 2 === 1) {
        done.push(a.client.deleteMessage(id));
        expected.push(`deleted ${id}`);
      }
      if (i % 7 === 3) {
        await proxy.stop(); // answers and events in flight are lost with the sockets
        await sleep(50);
        await proxy.start();
      }
      await sleep(10);
    }
    const receipts = await within(Promise.all(done), 30_000, 'every change to be confirmed');
    assert.equal(receipts.length, expected.length);
    await waitFor(() => changes.b.length >= expected.length && changes.a.length >= expected.length, 30_000, 'both sides to see every change');
    await sleep(100); // a duplicate would arrive now
    // An edit event read after its message was deleted carries the erased body ("").
    const erased = new Set(expected.filter((e) => e.startsWith('deleted ')).map((e) => `edited ${e.slice(8)} `));
    const settled = (seen: string[]) => seen.map((e) => (erased.has(e.replace(/ [^ ]*$/, ' ')) && e.startsWith('edited ') ? e.replace(/ [^ ]*$/, ' ?') : e));
    assert.deepEqual(settled(changes.b), settled(expected), 'B saw each change once, in order');
    assert.deepEqual(settled(changes.a), settled(expected), 'A (the actor) saw each change once too, as timeline events');
    for (const p of [a, b]) for (let i = 1; i < p.positions.length; i++) assert.ok(p.positions[i]! > p.positions[i - 1]!, 'positions increase');
    assert.equal(changePositions.b.length, expected.length);
    assert.ok(a.disconnects.length >= 3, `A lost its socket at each cut (${a.disconnects.join(',')})`);
    const history = await b.client.history({ conversationId: first.conversationId, limit: 100 });
    const shown = history.messages.filter((m) => m.type === 'chat_message').reverse();
    assert.equal(shown.length, N, 'edits and deletes are not history items');
    for (let i = 0; i < N; i++) {
      const m = shown[i]!;
      if (m.type !== 'chat_message') continue;
      if (i % 2 === 1) assert.deepEqual([m.content, typeof m.deletedAt, m.deletedBy], ['', 'number', a.id], `tombstone ${i}`);
      else assert.deepEqual([m.content, typeof m.editedAt], [`v1-${i}`, 'number'], `edited ${i}`);
    }
    // Only the sender edits: B's attempt is refused, and the promise says why.
    await assert.rejects(b.client.editMessage(sent[0]!.id, 'not mine'), { name: 'SendError', reason: 'forbidden' });
  } finally {
    a.client.close();
    b.client.close();
    await proxy.close();
    await srv.close();
  }
});

test('receipts and presence: delivered and read ticks reach the sender live and in history; online status follows sessions', { timeout: 60_000 }, async () => {
  const srv = await startServer({ ...GENEROUS, chat: { presenceDebounceMs: 50, receiptCoalesceMs: 0 } });
  const a = peer(srv.url);
  const b = peer(srv.url);
  const receipts: { userId: string; delivered?: number; read?: number }[] = [];
  const presence: { userId: string; online: boolean }[] = [];
  a.client.on('receipt', (r) => receipts.push(r));
  a.client.on('presence', (p) => presence.push(p));
  const reads: number[] = [];
  b.client.on('read', (r) => reads.push(r.readSeq));
  try {
    await Promise.all([a.client.connect(), b.client.connect()]);
    // Both write: a direct conversation only one side wrote in carries no receipts or presence.
    await b.client.sendMessage({ recipientId: a.id }, 'hello first');
    const sent = await a.client.sendMessage({ recipientId: b.id }, 'did you get this?');
    const conv = sent.conversationId;
    // B's client acknowledges the message (ackDelayMs): A learns it was delivered.
    await waitFor(() => receipts.some((r) => r.userId === b.id && (r.delivered ?? 0) >= sent.seq), 10_000, 'a delivered receipt');
    assert.ok(!receipts.some((r) => r.read !== undefined), 'not read yet');
    // A private read moves only B's own position: A hears nothing.
    assert.deepEqual(await b.client.markRead(conv, sent.seq, { private: true }), { conversationId: conv, readSeq: sent.seq });
    await sleep(150);
    assert.ok(!receipts.some((r) => r.read !== undefined), 'a private read tells no one');
    await waitFor(() => reads.includes(sent.seq), 5_000, 'B’s own sessions to hear of its read position');
    const second = await a.client.sendMessage({ conversationId: conv }, 'and this?');
    await b.client.markRead(conv, second.seq);
    await waitFor(() => receipts.some((r) => r.userId === b.id && r.read === second.seq), 10_000, 'a read receipt');
    const history = await a.client.history({ conversationId: conv });
    assert.equal(history.receipts?.read, second.seq, 'history carries the receipt positions');
    assert.deepEqual(history.receipts?.members?.map((m) => [m.userId, m.read]), [[b.id, second.seq]]);
    const listed = (await a.client.listConversations()).conversations.find((c) => c.conversationId === conv);
    assert.equal(listed?.receipts?.read, second.seq);
    // Presence: both online now; B closes → A hears it once the debounce (50 ms) has passed.
    await waitFor(async () => (await a.client.getPresence(conv)).online.includes(b.id), 5_000, 'B online');
    b.client.close();
    await waitFor(() => presence.some((p) => p.userId === b.id && !p.online), 5_000, 'B offline');
    assert.deepEqual((await a.client.getPresence(conv)).online, [a.id]);
    // B comes back: online again; B hides itself: offline for A, while connected.
    const again = createNodeClient({ url: srv.url, token: () => signDevToken(TEST_SECRET, { sub: b.id }), ...FAST_RETRY });
    const mark = presence.length;
    const since = () => presence.slice(mark).filter((p) => p.userId === b.id).map((p) => p.online);
    try {
      await again.connect();
      await waitFor(() => since().length === 1, 5_000, 'B online again');
      assert.equal(await again.setPresenceVisible(false), false);
      await waitFor(() => since().length === 2, 5_000, 'B hidden');
      assert.deepEqual(since(), [true, false]);
      assert.deepEqual((await a.client.getPresence(conv)).online, [a.id]);
      await again.setPresenceVisible(true);
    } finally {
      again.close();
    }
  } finally {
    a.client.close();
    b.client.close();
    await srv.close();
  }
});

test('production mode: no demo page, no SDK files, no token endpoint; development: all of them', { timeout: 60_000 }, async () => {
  const prod = await startServer({
    mode: 'production',
    jwt: { secret: TEST_SECRET, issuer: 'https://id.example.com', audience: 'chat' },
    allowedOrigins: ['https://chat.example.com'],
    behindProxy: ['127.0.0.1'],
    metrics: { port: 0 },
  });
  // No jwt key: the development key, the only one /dev/token signs with.
  const dev = await startServer({ jwt: {} });
  const devWithSecret = await startServer();
  try {
    const paths = ['/', '/demo.js', '/client/rampart-client.js', '/protocol/reasons.js', '/dev/token?name=alice', '/dev/user?name=alice'];
    for (const p of paths) assert.equal((await fetch(`${prod.httpUrl}${p}`)).status, 404, `production ${p}`);
    assert.equal((await fetch(`${devWithSecret.httpUrl}/dev/token?name=alice`)).status, 404, 'a configured secret: no token endpoint');
    const issued = (await (await fetch(`${dev.httpUrl}/dev/token?name=alice`)).json()) as { token: string; userId: string };
    // The development token works with the SDK against the same server.
    const client = createNodeClient({ url: dev.url, token: issued.token });
    await client.connect();
    assert.equal(client.userId, issued.userId);
    client.close();
  } finally {
    await prod.close();
    await dev.close();
    await devWithSecret.close();
  }
});

test("a handshake refused for the IP's lockout: the Node SDK waits the 429's Retry-After before trying again", { timeout: 30_000 }, async () => {
  const srv = await startServer({ limits: { maxAuthFailures: 2, authLockoutMs: 20_000 } });
  const client = createNodeClient({ url: srv.url, token: () => signDevToken(TEST_SECRET, { sub: newUserId() }), ...FAST_RETRY });
  try {
    // Two bad tokens from this address lock it out for 20 s.
    for (let i = 0; i < 2; i++) {
      const bad = createNodeClient({ url: srv.url, token: 'not.a.token', ...FAST_RETRY });
      const gone = new Promise((resolve) => bad.on('disconnected', resolve));
      void bad.connect().catch(() => {});
      await within(gone, 10_000, 'the bad token refused');
      await bad.close();
    }
    const refused = new Promise<{ code: number; reason: string; retryInMs?: number }>((resolve) => client.on('disconnected', resolve));
    void client.connect().catch(() => {});
    const d = await within(refused, 10_000, 'the refused handshake');
    assert.equal(d.reason, 'http_429');
    // Backoff alone (FAST_RETRY: 50–400 ms) would have come back at once, into the lockout.
    assert.ok((d.retryInMs ?? 0) >= 15_000 && (d.retryInMs ?? 0) <= 21_000, `retry in ${d.retryInMs} ms`);
  } finally {
    await client.close();
    await srv.close();
  }
});

test('one machine, two users, one sync store file: the next user is handed every event of theirs, and the first one, back, nothing twice', { timeout: 60_000 }, async () => {
  const srv = await startServer();
  const dir = mkdtempSync(join(tmpdir(), 'rampart-sdk-store-'));
  const path = join(dir, 'sync.json');
  const alice = newUserId();
  const bob = newUserId();
  const open = (sub: string, store?: FileSyncStore): RampartClient =>
    createNodeClient({ url: srv.url, token: () => signDevToken(TEST_SECRET, { sub, ttl: 3600 }), ...FAST_RETRY, pingIntervalMs: 0, ...(store ? { store } : {}) });
  /** The contents of the messages handed to the application, and a promise for the one with this content. */
  const watch = (c: RampartClient, last: string) => {
    const contents: string[] = [];
    const done = new Promise<void>((resolve) => {
      c.on('message', (m) => {
        contents.push(m.content);
        if (m.content === last) resolve();
      });
    });
    return { contents, done };
  };
  const sender = open(newUserId());
  const clients: RampartClient[] = [sender];
  try {
    // Alice uses the app on this machine: 5 events on her timeline, processed and saved.
    const a = open(alice, new FileSyncStore(path));
    clients.push(a);
    await a.connect();
    for (let i = 0; i < 5; i++) await a.sendMessage({ recipientId: bob }, `from-alice-${i}`);
    a.close();
    assert.equal(new FileSyncStore(path).load()?.pos, 5);
    // Bob gets 4 more while offline: no device of his acknowledged any of his 9 events.
    await sender.connect();
    for (let i = 0; i < 4; i++) await sender.sendMessage({ recipientId: bob }, `to-bob-${i}`);
    // Bob signs in on the same machine, same app, same store file.
    const b = open(bob, new FileSyncStore(path));
    clients.push(b);
    const bobSaw = watch(b, 'end');
    await b.connect();
    await sender.sendMessage({ recipientId: bob }, 'end');
    await within(bobSaw.done, 10_000, 'bob to receive the end marker');
    b.close();
    const expected = [...Array.from({ length: 5 }, (_, i) => `from-alice-${i}`), ...Array.from({ length: 4 }, (_, i) => `to-bob-${i}`), 'end'];
    assert.deepEqual(bobSaw.contents, expected, 'bob is handed his whole timeline');
    assert.deepEqual(new FileSyncStore(path).load(), { deviceId: a.deviceId, pos: 10, userId: bob, identity: JSON.stringify([bob, 'default']) }, 'the device id is kept, the position is bob’s');
    // Alice comes back: the server's record of this device (her acknowledged 5) says where she resumes.
    await sender.sendMessage({ recipientId: alice }, 'to-alice');
    const a2 = open(alice, new FileSyncStore(path));
    clients.push(a2);
    const aliceSaw = watch(a2, 'to-alice');
    await a2.connect();
    await within(aliceSaw.done, 10_000, 'alice to receive what was sent to her');
    assert.deepEqual(aliceSaw.contents, ['to-alice'], 'nothing she had processed comes again');
  } finally {
    for (const c of clients) c.close();
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the same sub in another tenant (tid) is another user: tenant A’s stored position is not used for tenant B, so no event of B is lost', { timeout: 60_000 }, async () => {
  const srv = await startServer();
  const dir = mkdtempSync(join(tmpdir(), 'rampart-sdk-tenant-'));
  const path = join(dir, 'sync.json');
  const sub = newUserId();
  const open = (claims: { sub: string; tid?: string }, store?: FileSyncStore): RampartClient =>
    createNodeClient({ url: srv.url, token: () => signDevToken(TEST_SECRET, { ...claims, ttl: 3600 }), ...FAST_RETRY, pingIntervalMs: 0, ...(store ? { store } : {}) });
  const clients: RampartClient[] = [];
  try {
    // The default tenant: 5 events on the user's timeline, processed and saved.
    const a = open({ sub }, new FileSyncStore(path));
    clients.push(a);
    await a.connect();
    for (let i = 0; i < 5; i++) await a.sendMessage({ recipientId: newUserId() }, `default-${i}`);
    a.close();
    assert.equal(new FileSyncStore(path).load()?.pos, 5);
    // Tenant t2, same sub: another user for the server (its key is tid:sub), 6 messages to them.
    const sender = open({ sub: newUserId(), tid: 't2' });
    clients.push(sender);
    await sender.connect();
    for (let i = 0; i < 6; i++) await sender.sendMessage({ recipientId: sub }, `t2-${i}`);
    const b = open({ sub, tid: 't2' }, new FileSyncStore(path));
    clients.push(b);
    const contents: string[] = [];
    const done = new Promise<void>((resolve) =>
      b.on('message', (m) => {
        contents.push(m.content);
        if (m.content === 'end') resolve();
      }),
    );
    await b.connect();
    await sender.sendMessage({ recipientId: sub }, 'end');
    await within(done, 10_000, 'the end marker');
    b.close();
    assert.deepEqual(contents, [...Array.from({ length: 6 }, (_, i) => `t2-${i}`), 'end'], 'the tenant t2 user is handed every event of theirs');
    assert.deepEqual(new FileSyncStore(path).load(), { deviceId: a.deviceId, pos: 7, userId: sub, identity: JSON.stringify([sub, 't2']) }, 'saved as tenant t2’s');
  } finally {
    for (const c of clients) c.close();
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A `ws` socket whose first `group_updated` answer is lost with the connection (terminated). */
function answerLosingSocket(url: string, state: { loseAnswer: boolean }): WebSocketLike {
  const ws = new WebSocket(url);
  const w: WebSocketLike = {
    get readyState() {
      return ws.readyState;
    },
    send: (d: string) => ws.send(d),
    close: (c?: number, r?: string) => ws.close(c, r),
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
  };
  ws.onopen = (e) => w.onopen?.(e);
  ws.onmessage = (e) => {
    const data = String(e.data);
    if (state.loseAnswer && (JSON.parse(data) as { type?: string }).type === 'group_updated') {
      state.loseAnswer = false;
      ws.terminate();
      return;
    }
    w.onmessage?.({ data });
  };
  ws.onclose = (e) => w.onclose?.({ code: e.code, reason: e.reason });
  ws.onerror = (e) => w.onerror?.(e);
  return w;
}

test('the token provider switches users while a create is unanswered: it fails with user_changed and is not repeated as the new user (no second group)', { timeout: 60_000 }, async () => {
  const srv = await startServer();
  const alice = newUserId();
  const bob = newUserId();
  const state = { loseAnswer: true };
  let calls = 0;
  const client = createNodeClient({
    url: srv.url,
    token: () => signDevToken(TEST_SECRET, { sub: calls++ === 0 ? alice : bob, ttl: 3600 }),
    createSocket: (url) => answerLosingSocket(url, state),
    ...FAST_RETRY,
    pingIntervalMs: 0,
  });
  const users: string[] = [];
  client.on('ready', (r) => users.push(r.userId));
  const checker = createNodeClient({ url: srv.url, token: () => signDevToken(TEST_SECRET, { sub: bob, ttl: 3600 }), ...FAST_RETRY, pingIntervalMs: 0 });
  try {
    await client.connect();
    const outcome = await within(
      client.createGroup('team', [newUserId()], { clientMsgId: 'alice-create' }).then(
        () => 'resolved',
        (e: { reason?: string; clientMsgId?: string }) => `${e.reason} ${e.clientMsgId}`,
      ),
      20_000,
      'the create to settle',
    );
    assert.equal(outcome, 'user_changed alice-create');
    await waitFor(() => users.length >= 2, 10_000, 'the reconnect as bob');
    assert.deepEqual(users, [alice, bob]);
    client.close();
    await checker.connect();
    const groups = (await checker.listConversations()).conversations.filter((c) => c.kind === 'group');
    assert.deepEqual(groups, [], 'bob created no group');
  } finally {
    client.close();
    checker.close();
    await srv.close();
  }
});

test('a keyed create whose answer was lost, repeated into the group-create limit: goes again after the wait and resolves with the group it made', { timeout: 60_000 }, async () => {
  const srv = await startServer({ limits: { groupCreates: { limit: 1, windowMs: 1500 } } });
  const alice = newUserId();
  const state = { loseAnswer: true };
  const client = createNodeClient({
    url: srv.url,
    token: () => signDevToken(TEST_SECRET, { sub: alice, ttl: 3600 }),
    createSocket: (url) => answerLosingSocket(url, state),
    ...FAST_RETRY,
    pingIntervalMs: 0,
  });
  try {
    await client.connect();
    const outcome = await within(
      client.createGroup('team', [newUserId()]).then(
        (r) => ({ ok: true as const, r }),
        (e: { reason?: string }) => ({ ok: false as const, e: String(e.reason) }),
      ),
      20_000,
      'the create to settle',
    );
    assert.equal(state.loseAnswer, false, 'the first answer was lost');
    const groups = (await client.listConversations()).conversations.filter((c) => c.kind === 'group');
    assert.equal(groups.length, 1, 'one group');
    assert.deepEqual(outcome, { ok: true, r: { conversationId: groups[0]!.conversationId, changed: false, seq: 1 } }, 'answered with the group the first create made');
  } finally {
    client.close();
    await srv.close();
  }
});
