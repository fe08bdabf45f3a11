/**
 * Issue #3 end to end: a real server, real `ws` clients, and the same suite run twice — on the
 * embedded SQLite store and on PostgreSQL (its own schema per server, dropped afterwards).
 * No sleeps: "nothing arrived" is proven with a marker message sent afterwards on the same path
 * (delivery is ordered), and storage is checked by reading the raw rows directly.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  startServer,
  authedClient,
  openClient,
  closeAll,
  maximalMessage,
  newUserId,
  token,
  type Frame,
  type TestClient,
  type TestServer,
} from '../helpers/harness.js';
import type { RampartConfigInput } from '../../src/config/schema.js';
import { backends, type StorageBackend, type StorageLocation } from '../helpers/storage-backends.js';

type Client = TestClient & { userId: string };

const TYPING_LIMIT = 3;
/** Generous chat/frame budgets: these tests are about delivery, not rate limits. */
const BASE: RampartConfigInput = {
  rateLimit: { messagesPerMinute: 100_000, messagesPerHour: 1_000_000, burstLimit: 100_000, burstWindow: 1000 },
  limits: {
    frames: { limit: 100_000, windowMs: 1000 },
    requests: { limit: 100_000, windowMs: 1000 },
    // A long window, so "at most `limit` within the window" holds for the whole flood.
    typing: { limit: TYPING_LIMIT, windowMs: 60_000 },
  },
};
const T = { timeout: 20_000 };

let seq = 0;
const newCid = (): string => `c${++seq}-${randomUUID().slice(0, 8)}`;

/** Sends a chat_message and resolves with the reply that names its clientMsgId (message_sent or error). */
function sendChat(from: TestClient, to: string, content: string, extra: Record<string, unknown> = {}): Promise<Frame> {
  const clientMsgId = typeof extra.clientMsgId === 'string' ? extra.clientMsgId : newCid();
  const reply = from.next((f) => f.clientMsgId === clientMsgId && (f.type === 'message_sent' || f.type === 'error' || f.type === 'rate_limited'), true);
  from.send({ type: 'chat_message', recipientId: to, content, clientMsgId, ...extra });
  return reply;
}

async function sent(from: TestClient, to: string, content: string, extra: Record<string, unknown> = {}): Promise<Frame> {
  const reply = await sendChat(from, to, content, extra);
  assert.equal(reply.type, 'message_sent', `expected message_sent, got ${JSON.stringify(reply)}`);
  return reply;
}

/** Sends `frame` and resolves with the next `error` frame (for refusals that carry no clientMsgId). */
function expectError(client: TestClient, frame: unknown): Promise<Frame> {
  const reply = client.next((f) => f.type === 'error', true);
  client.send(frame);
  return reply;
}

async function history(client: TestClient, peerId: string, extra: Record<string, unknown> = {}): Promise<Frame[]> {
  const reply = client.next((f) => f.type === 'history' || f.type === 'error', true);
  client.send({ type: 'history', peerId, ...extra });
  const frame = await reply;
  assert.equal(frame.type, 'history', `expected history, got ${JSON.stringify(frame)}`);
  assert.equal(frame.peerId, peerId);
  return frame.messages as Frame[];
}

/**
 * `from` sends a marker to `to` and waits until `to` has it. Delivery is ordered, so anything sent
 * before the marker on the same path has arrived by then (or never will).
 */
async function marker(from: TestClient, to: Client, label = 'marker'): Promise<Frame> {
  const ack = await sent(from, to.userId, `${label} ${randomUUID()}`);
  return to.next((f) => f.type === 'chat_message' && f.id === ack.id);
}

const received = (c: TestClient, from = 0): Frame[] =>
  c.frames.slice(from).filter((f) => f.type === 'chat_message' || f.type === 'typing_indicator');
const chats = (c: TestClient, from = 0): Frame[] => c.frames.slice(from).filter((f) => f.type === 'chat_message');

/** Opens a socket, sends `auth`, and runs `onAuthSuccess` synchronously when auth_success arrives. */
async function authWithHook(url: string, sub: string, onAuthSuccess: (client: Client) => void): Promise<Client> {
  const client = openClient(url) as Client;
  client.userId = sub;
  let fired = false;
  client.ws.on('message', (data) => {
    if (!fired && (JSON.parse(data.toString()) as Frame).type === 'auth_success') {
      fired = true;
      onAuthSuccess(client);
    }
  });
  await client.opened;
  client.send({ type: 'auth', token: await token({ sub }) });
  const reply = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
  assert.equal(reply.type, 'auth_success');
  return client;
}

function chatDeliverySuite(backend: StorageBackend): void {
  describe(`chat delivery end to end (${backend.name})`, () => {
    const servers: TestServer[] = [];
    const clients: TestClient[] = [];
    let srv: TestServer;
    let loc: StorageLocation;

    async function start(overrides: RampartConfigInput = {}): Promise<{ srv: TestServer; loc: StorageLocation }> {
      const location = backend.allocate();
      const server = await startServer({
        ...BASE,
        ...overrides,
        storage: location.storage,
        limits: { ...BASE.limits, ...overrides.limits },
      });
      servers.push(server);
      return { srv: server, loc: location };
    }

    async function user(server: TestServer = srv, sub: string = newUserId(), claims: { role?: string; tid?: string } = {}): Promise<Client> {
      const client = await authedClient(server.url, sub, claims);
      clients.push(client);
      return client;
    }

    before(async () => {
      await backend.setup();
      ({ srv, loc } = await start());
    });

    after(async () => {
      await closeAll(...clients);
      for (const server of servers) await server.close();
      await backend.teardown();
    });

    test('message_sent comes only after the row is committed; the delivered frame is built from validated fields', T, async () => {
      const a = await user();
      const b = await user();
      // Read the store at the very moment message_sent arrives (the SQLite read is synchronous).
      let rowsAtAck: Promise<Record<string, unknown>[]> | undefined;
      a.ws.on('message', (data) => {
        const f = JSON.parse(data.toString()) as Frame;
        if (f.type === 'message_sent' && rowsAtAck === undefined) rowsAtAck = loc.rows({ id: String(f.id) });
      });
      const ack = await sent(a, b.userId, 'stored first');
      assert.ok(rowsAtAck, 'message_sent observed');
      const rows = await rowsAtAck;
      assert.equal(rows.length, 1, 'the row is in the database when message_sent arrives');
      assert.equal(rows[0]!.sender_id, a.userId);
      assert.equal(rows[0]!.recipient_id, b.userId);
      assert.equal(Number(rows[0]!.timestamp), ack.timestamp);

      const got = await b.next((f) => f.type === 'chat_message' && f.id === ack.id);
      assert.equal(got.senderId, a.userId);
      assert.equal(got.recipientId, b.userId);
      assert.equal(got.timestamp, ack.timestamp);
      assert.match(String(got.id), /^[0-9a-f-]{36}$/);
      assert.equal(got.content, 'stored first');
    });

    test('every open session of the recipient receives the message', T, async () => {
      const a = await user();
      const sub = newUserId();
      const b1 = await user(srv, sub);
      const b2 = await user(srv, sub);
      const b3 = await user(srv, sub);
      const ack = await sent(a, sub, 'to all devices');
      const got = await Promise.all([b1, b2, b3].map((b) => b.next((f) => f.type === 'chat_message' && f.id === ack.id)));
      for (const f of got) assert.equal(f.content, 'to all devices');
    });

    test('client-sent senderId, id and timestamp are refused and reach no one', T, async () => {
      const a = await user();
      const b = await user();
      const mark = b.frames.length;
      const forged = { senderId: b.userId, id: randomUUID(), timestamp: 1 };
      for (const [key, value] of Object.entries(forged)) {
        const err = await expectError(a, { type: 'chat_message', recipientId: b.userId, content: `forged ${key}`, [key]: value });
        assert.equal(err.reason, 'validation_failed', key);
      }
      const m = await marker(a, b);
      assert.deepEqual(received(b, mark), [m], 'only the marker arrived');
      assert.equal(m.senderId, a.userId);
      assert.equal((await loc.rows({ senderId: a.userId })).length, 1, 'nothing forged was stored');
    });

    test('content is sanitized end to end; mentions, hashtags and links are extracted', T, async () => {
      const a = await user();
      const b = await user();
      const raw = 'hi @alice #launch <img src=x onerror=alert(1)> <b>bold</b> https://example.com/x javascript:alert(1)';
      const ack = await sent(a, b.userId, raw, {
        attachments: [{ type: 'image', url: 'https://cdn.example.com/a.png', name: '<i>pic</i>.png' }],
      });
      const got = await b.next((f) => f.type === 'chat_message' && f.id === ack.id);
      assert.equal(
        got.content,
        'hi @alice #launch &lt;img src=x onerror=alert(1)&gt; <b>bold</b> https://example.com/x javascript:alert(1)',
      );
      assert.deepEqual(got.mentions, ['alice']);
      assert.deepEqual(got.hashtags, ['launch']);
      assert.deepEqual(got.links, [
        { url: 'https://example.com/x', safe: true },
        { url: 'javascript:alert(1)', safe: false },
      ]);
      assert.deepEqual(got.attachments, [{ type: 'image', url: 'https://cdn.example.com/a.png', name: '&lt;i&gt;pic&lt;/i&gt;.png' }]);
      // The stored copy is the sanitized one too.
      const [fromHistory] = await history(b, a.userId, { limit: 1 });
      assert.equal(fromHistory!.content, got.content);
      assert.deepEqual(fromHistory!.links, got.links);
    });

    test('attachment URLs that are not http(s) are refused with validation_failed and not delivered', T, async () => {
      const a = await user();
      const b = await user();
      const mark = b.frames.length;
      for (const url of ['javascript:alert(1)', 'JaVaScRiPt:alert(1)', ' javascript:alert(1)', 'java\tscript:alert(1)', 'data:text/html,<script>alert(1)</script>', 'vbscript:msgbox(1)']) {
        const err = await expectError(a, {
          type: 'chat_message',
          recipientId: b.userId,
          content: 'see attachment',
          attachments: [{ type: 'file', url, name: 'x' }],
        });
        assert.equal(err.reason, 'validation_failed', JSON.stringify(url));
        assert.ok((err.details as { path: string }[]).some((d) => d.path === 'attachments.0.url'), JSON.stringify(err.details));
      }
      const m = await marker(a, b);
      assert.deepEqual(received(b, mark), [m]);
    });

    test('content blank after sanitizing, or with a bidi override or control char, is invalid_content and not delivered', T, async () => {
      const a = await user();
      const b = await user();
      const mark = b.frames.length;
      for (const content of ['<b></b>', '<b> </b>', '<i>\n</i>', 'invoice\u202Egpj.exe', 'isolate\u2066x', 'nul\u0000byte', 'bell\u0007']) {
        const reply = await sendChat(a, b.userId, content);
        assert.equal(reply.type, 'error', JSON.stringify(content));
        assert.equal(reply.reason, 'invalid_content', JSON.stringify(content));
      }
      const named = await sendChat(a, b.userId, 'see file', { attachments: [{ type: 'file', url: 'https://x.example/f', name: 'invoice\u202Egpj.exe' }] });
      assert.equal(named.reason, 'invalid_content', 'a bidi override in an attachment name');
      const m = await marker(a, b);
      assert.deepEqual(received(b, mark), [m]);
      assert.equal((await loc.rows({ senderId: a.userId })).length, 1);
    });

    test('<script></script> is never delivered as an empty message: it arrives as inert, visible text', T, async () => {
      // Design choice (src/chat/sanitize.ts): tags outside the allowlist are escaped, not removed,
      // so the recipient sees what the sender typed and nothing is executable.
      const a = await user();
      const b = await user();
      const ack = await sent(a, b.userId, '<script></script>');
      const got = await b.next((f) => f.type === 'chat_message' && f.id === ack.id);
      assert.equal(got.content, '&lt;script&gt;&lt;/script&gt;');
    });

    test('standard policy keeps newlines; strict policy refuses ";" and newlines', T, async () => {
      const a = await user();
      const b = await user();
      const ack = await sent(a, b.userId, 'line one\nline two; ok');
      const got = await b.next((f) => f.type === 'chat_message' && f.id === ack.id);
      assert.equal(got.content, 'line one\nline two; ok');

      const strict = await start({ chat: { contentPolicy: 'strict' } });
      const sa = await user(strict.srv);
      const sb = await user(strict.srv);
      const mark = sb.frames.length;
      for (const content of ['rm -rf /; echo', 'line one\nline two', 'a && b', 'x $(id)']) {
        const reply = await sendChat(sa, sb.userId, content);
        assert.equal(reply.reason, 'invalid_content', JSON.stringify(content));
      }
      const m = await marker(sa, sb, 'plain words');
      assert.deepEqual(received(sb, mark), [m]);
    });

    test('typing indicators are forwarded with the sender id, throttled, and never stored', T, async () => {
      const a = await user();
      const sub = newUserId();
      const b1 = await user(srv, sub);
      const b2 = await user(srv, sub);
      for (let i = 0; i < 100; i++) a.send({ type: 'typing_indicator', recipientId: sub, isTyping: true });
      const m = await marker(a, b1);
      await b2.next((f) => f.type === 'chat_message' && f.id === m.id);
      for (const b of [b1, b2]) {
        const typing = b.frames.filter((f) => f.type === 'typing_indicator');
        assert.ok(typing.length >= 1 && typing.length <= TYPING_LIMIT, `typing frames: ${typing.length}`);
        for (const t of typing) assert.deepEqual(t, { type: 'typing_indicator', senderId: a.userId, isTyping: true });
      }
      assert.deepEqual(
        a.frames.filter((f) => f.type === 'error' || f.type === 'rate_limited'),
        [],
        'the flooding sender gets no error',
      );
      // Not stored: the conversation holds the marker only, in history and in the database.
      assert.deepEqual((await history(b1, a.userId)).map((f) => f.id), [m.id]);
      assert.equal((await loc.rows({ senderId: a.userId })).length, 1);

      // Not in the inbox: typing to an offline user leaves nothing to replay.
      const c = await user();
      const offline = newUserId();
      c.send({ type: 'typing_indicator', recipientId: offline, isTyping: true });
      await history(c, offline); // the typing frame was handled before this reply
      const late = await user(srv, offline);
      const m2 = await marker(c, late);
      assert.deepEqual(received(late), [m2], 'nothing but the marker after auth');
      assert.equal((await loc.rows({ recipientId: offline })).length, 1);
    });

    test('roles: muted may read but not send; an unknown role may do nothing', T, async () => {
      const a = await user();
      const b = await user();
      await sent(a, b.userId, 'hello muted');
      const muted = await user(srv, b.userId, { role: 'muted' });
      assert.equal((await history(muted, a.userId)).length, 1, 'muted reads history');
      const mark = a.frames.length;
      const reply = await sendChat(muted, a.userId, 'let me speak');
      assert.equal(reply.type, 'error');
      assert.equal(reply.reason, 'forbidden');
      const typing = await expectError(muted, { type: 'typing_indicator', recipientId: a.userId, isTyping: true });
      assert.equal(typing.reason, 'forbidden');

      const stranger = await user(srv, newUserId(), { role: 'superuser' });
      assert.equal((await sendChat(stranger, a.userId, 'hi')).reason, 'forbidden');
      assert.equal((await expectError(stranger, { type: 'history', peerId: a.userId })).reason, 'forbidden');
      assert.equal((await expectError(stranger, { type: 'ack', messageIds: [randomUUID()] })).reason, 'forbidden');

      const m = await marker(b, a);
      assert.deepEqual(received(a, mark), [m], 'nothing from the muted or unknown-role user arrived');
      assert.equal((await loc.rows({ recipientId: a.userId })).length, 1);
    });

    test('tenants: a message to the same uuid in another tenant never reaches that tenant', T, async () => {
      const x = newUserId();
      const a = await user(srv, newUserId(), { tid: 'a' });
      const xb = await user(srv, x, { tid: 'b' });
      const peerB = await user(srv, newUserId(), { tid: 'b' });
      const mark = xb.frames.length;

      a.send({ type: 'typing_indicator', recipientId: x, isTyping: true });
      const ack = await sent(a, x, 'cross-tenant attempt');
      const m = await marker(peerB, xb);
      assert.deepEqual(received(xb, mark), [m], "tenant b's session received nothing from tenant a");
      assert.deepEqual(await history(xb, a.userId), [], "tenant b's history is empty");
      const rows = await loc.rows({ id: String(ack.id) });
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.tenant_id, 'a', 'stored in the sender tenant only');

      // A new session of x in tenant b replays b's inbox: the marker, never a's message.
      const xb2 = await user(srv, x, { tid: 'b' });
      const m2 = await marker(peerB, xb2);
      const replay = chats(xb2);
      assert.ok(replay.every((f) => f.senderId === peerB.userId), JSON.stringify(replay));
      assert.deepEqual(replay.map((f) => f.id), [m.id, m2.id]);

      // The same uuid in tenant a is a different user, and it has the message.
      const xa = await user(srv, x, { tid: 'a' });
      const got = await xa.next((f) => f.type === 'chat_message');
      assert.equal(got.id, ack.id);
    });

    test('offline inbox: all messages replayed on the next auth, oldest first, before live traffic', T, async () => {
      const a = await user();
      const c = await user();
      const offline = newUserId();
      const acks = await Promise.all(Array.from({ length: 50 }, (_, i) => sent(a, offline, `offline ${i}`)));
      let live: Promise<Frame> | undefined;
      // The live message is sent the moment auth_success arrives, while the replay is under way.
      const b = await authWithHook(srv.url, offline, () => {
        live = sent(c, offline, 'live one');
      });
      clients.push(b);
      assert.ok(live);
      const liveAck = await live;
      await b.next((f) => f.type === 'chat_message' && f.id === liveAck.id);
      const got = chats(b);
      assert.deepEqual(got.map((f) => f.id), [...acks.map((f) => f.id), liveAck.id], 'the 50 in order, then the live one, each once');
      assert.deepEqual(got.slice(0, 50).map((f) => f.content), acks.map((_, i) => `offline ${i}`));
    });

    test('offline inbox of maximal messages (~6 MB) is replayed whole, paced under the slow-consumer bound', T, async () => {
      const a = await user();
      const offline = newUserId();
      const N = 110;
      const acks = await Promise.all(Array.from({ length: N }, (_, i) => {
        const { content, attachments } = maximalMessage(i);
        return sent(a, offline, content, { attachments });
      }));
      const b = await user(srv, offline);
      const outcome = await Promise.race([
        b.nthOfType('chat_message', N).then(() => 'replayed'),
        b.closed.then(({ code }) => `closed with ${code}`),
      ]);
      assert.equal(outcome, 'replayed');
      assert.deepEqual(chats(b).map((f) => f.id), acks.map((f) => f.id));
      assert.equal(String(chats(b)[N - 1]!.content).length, 4990 * 6 + String(N - 1).length);
    });

    test('frames sent the moment auth_success arrives are handled during a long inbox replay, never queued into a close', T, async () => {
      const a = await user();
      const peer = await user();
      const sub = newUserId();
      // ~1.6 MB of inbox: a replay paced over many socket drains.
      const inbox = await Promise.all(Array.from({ length: 30 }, (_, i) => {
        const { content, attachments } = maximalMessage(i);
        return sent(a, sub, content, { attachments });
      }));
      // Well over limits.maxQueuedFrames (32), all sent synchronously on auth_success.
      const BURST = 100;
      const cids = Array.from({ length: BURST }, () => newCid());
      const acks: Promise<Frame>[] = [];
      const b = await authWithHook(srv.url, sub, (client) => {
        for (const cid of cids) {
          acks.push(client.next((f) => f.clientMsgId === cid, true));
          client.send({ type: 'chat_message', recipientId: peer.userId, content: `burst ${cid}`, clientMsgId: cid });
        }
      });
      clients.push(b);
      const outcome = await Promise.race([Promise.all(acks).then(() => 'acked'), b.closed.then(({ code }) => `closed with ${code}`)]);
      assert.equal(outcome, 'acked');
      for (const ack of await Promise.all(acks)) assert.equal(ack.type, 'message_sent', JSON.stringify(ack));
      await b.nthOfType('chat_message', inbox.length);
      assert.deepEqual(chats(b).map((f) => f.id), inbox.map((f) => f.id), 'the whole inbox, in order');
      await peer.nthOfType('chat_message', BURST);
      assert.deepEqual(chats(peer).map((f) => f.content), cids.map((cid) => `burst ${cid}`));
      assert.equal(b.closeCode, undefined);
    });

    test('unacked messages are redelivered on the next auth, acked ones are not; acking another user\'s message changes nothing', T, async () => {
      const a = await user();
      const offline = newUserId();
      const [m1, m2, m3] = [await sent(a, offline, 'one'), await sent(a, offline, 'two'), await sent(a, offline, 'three')];
      const b = await user(srv, offline);
      await b.nthOfType('chat_message', 3);
      assert.deepEqual(chats(b).map((f) => f.id), [m1!.id, m2!.id, m3!.id]);
      b.send({ type: 'ack', messageIds: [m1!.id, m2!.id] });
      await history(b, a.userId); // answered after the ack is written
      await closeAll(b);

      const b2 = await user(srv, offline);
      const mk = await marker(a, b2);
      assert.deepEqual(chats(b2).map((f) => f.id), [m3!.id, mk.id], 'only the unacked one is redelivered');
      await closeAll(b2);

      // Another user acking b's message ids (and even its own sender) changes nothing.
      const intruder = await user();
      intruder.send({ type: 'ack', messageIds: [m3!.id, mk.id] });
      await history(intruder, offline);
      a.send({ type: 'ack', messageIds: [m3!.id, mk.id] });
      await history(a, offline);
      const b3 = await user(srv, offline);
      const mk2 = await marker(a, b3);
      assert.deepEqual(chats(b3).map((f) => f.id), [m3!.id, mk.id, mk2.id]);
      const rows = await loc.rows({ recipientId: offline });
      assert.deepEqual(rows.map((r) => r.acked_at !== null), [true, true, false, false, false]);
    });

    test('a repeated clientMsgId is stored once, both acks carry the same id, the recipient gets it once', T, async () => {
      const a = await user();
      const b = await user();
      const mark = b.frames.length;
      const clientMsgId = newCid();
      const frame = { type: 'chat_message', recipientId: b.userId, content: 'exactly once', clientMsgId };
      // Twice in one batch, then once more after the first commit.
      a.send(frame);
      a.send(frame);
      const first = await a.nthOfType('message_sent', 2);
      a.send({ ...frame, content: 'a retry with other text' });
      const third = await a.nthOfType('message_sent', 3);
      const acks = a.frames.filter((f) => f.type === 'message_sent');
      assert.equal(acks.length, 3);
      for (const ack of acks) {
        assert.equal(ack.id, first.id);
        assert.equal(ack.clientMsgId, clientMsgId);
        assert.equal(ack.timestamp, acks[0]!.timestamp);
      }
      assert.equal(third.id, first.id);
      const m = await marker(a, b);
      const got = received(b, mark);
      assert.deepEqual(got.map((f) => f.id), [first.id, m.id]);
      assert.equal(got[0]!.content, 'exactly once');
      assert.equal((await loc.rows({ senderId: a.userId })).length, 2);
    });

    test('inbox bound: past chat.maxInboxSize the sender gets inbox_full with its clientMsgId, and nothing is lost', T, async () => {
      const small = await start({ chat: { maxInboxSize: 3 } });
      const a = await user(small.srv);
      const offline = newUserId();
      const replies = await Promise.all([1, 2, 3, 4].map((i) => sendChat(a, offline, `bounded ${i}`, { clientMsgId: `bounded-${offline}-${i}` })));
      assert.deepEqual(replies.map((r) => r.type), ['message_sent', 'message_sent', 'message_sent', 'error']);
      assert.equal(replies[3]!.reason, 'inbox_full');
      assert.equal(replies[3]!.clientMsgId, `bounded-${offline}-4`);
      assert.equal((await small.loc.rows({ recipientId: offline })).length, 3, 'the refused one was not stored');

      const b = await user(small.srv, offline);
      await b.nthOfType('chat_message', 3);
      b.send({ type: 'ack', messageIds: replies.slice(0, 3).map((r) => r.id) });
      await history(b, a.userId);
      // The refusal stored nothing, so the same clientMsgId can now be retried and is delivered.
      const retry = await sent(a, offline, 'bounded 4', { clientMsgId: `bounded-${offline}-4` });
      await b.next((f) => f.type === 'chat_message' && f.id === retry.id);
      assert.deepEqual(chats(b).map((f) => f.content), ['bounded 1', 'bounded 2', 'bounded 3', 'bounded 4']);
    });

    test('history: newest first, before-cursor pages, limit ≤ 100, only the caller\'s own conversations', T, async () => {
      const a = await user();
      const b = await user();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
        ids.push(String((await sent(from, to.userId, `h${i}`)).id));
      }
      const newest = [...ids].reverse();
      assert.deepEqual((await history(a, b.userId)).map((f) => f.id), newest);
      assert.deepEqual((await history(b, a.userId)).map((f) => f.id), newest, 'both sides see the same conversation');

      const pages: string[][] = [];
      let before: string | undefined;
      for (;;) {
        const page = (await history(a, b.userId, { limit: 2, ...(before ? { before } : {}) })).map((f) => String(f.id));
        if (page.length === 0) break;
        pages.push(page);
        before = page[page.length - 1];
      }
      assert.deepEqual(pages, [newest.slice(0, 2), newest.slice(2, 4), newest.slice(4)]);
      const [one] = await history(a, b.userId, { limit: 1 });
      assert.equal(one!.content, 'h4');
      assert.equal(one!.senderId, a.userId);

      assert.equal((await expectError(a, { type: 'history', peerId: b.userId, limit: 101 })).reason, 'validation_failed');
      assert.equal((await expectError(a, { type: 'history', peerId: b.userId, limit: 0 })).reason, 'validation_failed');
      assert.equal((await history(a, b.userId, { limit: 100 })).length, 5);

      const c = await user();
      assert.deepEqual(await history(c, a.userId), [], "a third user sees only its own (empty) conversation");
      assert.deepEqual(await history(c, b.userId), []);
      assert.deepEqual(await history(c, a.userId, { before: ids[4] }), [], "a cursor from someone else's conversation yields nothing");
    });

    test('encryption at rest: the raw row holds no plaintext; delivery, replay and history are plaintext', T, async () => {
      const enc = await start({
        encryption: { activeKeyId: 'k1', keys: { k1: randomBytes(32).toString('base64') } },
      });
      const a = await user(enc.srv);
      const b = await user(enc.srv);
      const content = 'launch code tangerine-42 for @carol #secretplan https://vault.example/open';
      const ack = await sent(a, b.userId, content);
      const live = await b.next((f) => f.type === 'chat_message' && f.id === ack.id);
      assert.equal(live.content, content);
      assert.deepEqual(live.mentions, ['carol']);
      assert.deepEqual(live.hashtags, ['secretplan']);

      const offline = newUserId();
      const ack2 = await sent(a, offline, content);
      const rows = await enc.loc.rows({ senderId: a.userId });
      assert.equal(rows.length, 2);
      for (const row of rows) {
        const raw = JSON.stringify(row);
        for (const secret of ['tangerine', 'carol', 'secretplan', 'vault.example']) {
          assert.ok(!raw.includes(secret), `raw row leaks "${secret}"`);
        }
        assert.equal(row.key_id, 'k1');
      }
      const late = await user(enc.srv, offline);
      const replayed = await late.next((f) => f.type === 'chat_message' && f.id === ack2.id);
      assert.equal(replayed.content, content);
      const [h] = await history(b, a.userId);
      assert.equal(h!.content, content);
      assert.deepEqual(h!.links, [{ url: 'https://vault.example/open', safe: true }]);
    });
  });
}

for (const backend of backends('cd')) chatDeliverySuite(backend);
