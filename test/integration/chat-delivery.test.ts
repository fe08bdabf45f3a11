/**
 * Issue #3 end to end, on protocol v2: a real server, real `ws` clients, and the same suite run
 * twice — on the embedded SQLite store and on PostgreSQL (its own schema per server, dropped
 * afterwards). Direct messages with `recipientId` keep working; every timeline frame carries `pos`
 * (one contiguous stream per session), the sending session gets `message_sent` with its `pos` in
 * place of its own copy, and `ack {upTo}` moves the user's position.
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
  waitFor,
  type Frame,
  type TestClient,
  type TestServer,
} from '../helpers/harness.js';
import type { RampartConfigInput } from '../../src/config/schema.js';
import { backends, type StorageBackend, type StorageLocation } from '../helpers/storage-backends.js';
import { streamOf } from '../helpers/timeline.js';
import { openStore } from '../../src/store/open-store.js';
import { messageId } from '../../src/chat/message-id.js';

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
/** Positions of the session's timeline frames (chat_message, membership, its own message_sent), in arrival order. */
const positions = (c: TestClient): number[] => streamOf(c).map((i) => i.pos);
const range = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

/** Sends `ack {upTo}`; resolves once the user's acknowledged position in storage is `upTo`. */
async function acked(client: Client, loc: StorageLocation, upTo: number, tenantId?: string): Promise<void> {
  client.send({ type: 'ack', upTo });
  await waitFor(async () => (await loc.sync(client.userId, tenantId)).ackedPos >= upTo, 10_000, `ack ${upTo} of ${client.userId} to be stored`);
}

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
      assert.equal(Number(rows[0]!.ts), ack.timestamp);
      assert.equal(Number(rows[0]!.seq), ack.seq);
      assert.equal(rows[0]!.conversation_id, ack.conversationId);

      // message_sent: the stored message's id, conversation, seq, and the sender's own timeline pos.
      assert.match(String(ack.conversationId), /^[0-9a-f-]{36}$/);
      assert.equal(ack.seq, 1, 'the first message of a new direct conversation');
      assert.equal(ack.pos, 1, "the first event of the sender's timeline");
      const got = await b.next((f) => f.type === 'chat_message' && f.id === ack.id);
      assert.equal(got.senderId, a.userId);
      assert.equal(got.recipientId, b.userId);
      assert.equal(got.timestamp, ack.timestamp);
      assert.equal(got.conversationId, ack.conversationId);
      assert.equal(got.seq, 1);
      assert.equal(got.pos, 1, "the first event of the recipient's timeline");
      assert.match(String(got.id), /^[0-9a-f-]{36}$/);
      assert.equal(got.content, 'stored first');
      assert.deepEqual(Object.keys(got).sort(), ['content', 'conversationId', 'hashtags', 'id', 'links', 'mentions', 'pos', 'recipientId', 'senderId', 'seq', 'timestamp', 'type']);

      // The reply goes into the same conversation: seq 2, each side's next pos.
      const back = await sent(b, a.userId, 'and back');
      assert.deepEqual([back.conversationId, back.seq, back.pos], [ack.conversationId, 2, 2]);
      const reply = await a.next((f) => f.type === 'chat_message' && f.id === back.id);
      assert.deepEqual([reply.conversationId, reply.seq, reply.pos], [ack.conversationId, 2, 2]);
      assert.deepEqual(positions(a), [1, 2]);
      assert.deepEqual(positions(b), [1, 2]);
      assert.equal(chats(a).length, 1, 'the sending session gets message_sent, not a copy of its own message');
    });

    test("every open session of the recipient receives the message, and the sender's other sessions get a copy", T, async () => {
      const a = await user();
      const a2 = await user(srv, a.userId);
      const sub = newUserId();
      const b1 = await user(srv, sub);
      const b2 = await user(srv, sub);
      const b3 = await user(srv, sub);
      const ack = await sent(a, sub, 'to all devices');
      const got = await Promise.all([b1, b2, b3].map((b) => b.next((f) => f.type === 'chat_message' && f.id === ack.id)));
      for (const f of got) {
        assert.equal(f.content, 'to all devices');
        assert.equal(f.pos, 1);
      }
      // The sender's other session: the same message at the sender's pos, marked as sent by them.
      const copy = await a2.next((f) => f.type === 'chat_message' && f.id === ack.id);
      assert.deepEqual([copy.senderId, copy.recipientId, copy.pos, copy.seq, copy.content], [a.userId, sub, ack.pos, ack.seq, 'to all devices']);
      assert.equal(a2.frames.some((f) => f.type === 'message_sent'), false, 'message_sent goes to the sending session only');
      // A message from the second session comes back to the first as a copy, and so on.
      const ack2 = await sent(a2, sub, 'from the other device');
      const copy2 = await a.next((f) => f.type === 'chat_message' && f.id === ack2.id);
      assert.equal(copy2.pos, 2);
      assert.deepEqual(positions(a), [1, 2]);
      assert.deepEqual(positions(a2), [1, 2]);
      await b3.nthOfType('chat_message', 2);
      assert.deepEqual(positions(b3), [1, 2]);
    });

    test('a direct conversation can be written to, typed in and read by its conversationId; a third user is forbidden', T, async () => {
      const a = await user();
      const b = await user();
      const first = await sent(a, b.userId, 'by recipientId');
      const conversationId = String(first.conversationId);
      await b.next((f) => f.type === 'chat_message' && f.id === first.id);
      // b answers by conversationId (the id it sees on every frame and in list_conversations).
      const cid = newCid();
      const answer = b.next((f) => f.clientMsgId === cid, true);
      b.send({ type: 'chat_message', conversationId, content: 'by conversationId', clientMsgId: cid });
      const reply = await answer;
      assert.equal(reply.type, 'message_sent', JSON.stringify(reply));
      assert.deepEqual([reply.conversationId, reply.seq], [conversationId, 2]);
      const got = await a.next((f) => f.type === 'chat_message' && f.id === reply.id);
      assert.equal(got.recipientId, a.userId);
      b.send({ type: 'typing_indicator', conversationId, isTyping: true });
      const typing = await a.next((f) => f.type === 'typing_indicator');
      assert.deepEqual(typing, { type: 'typing_indicator', senderId: b.userId, conversationId, isTyping: true });

      // A third user: every frame naming the conversation is forbidden, nothing is stored or delivered.
      const c = await user();
      const mark = a.frames.length;
      const cid2 = newCid();
      const refused = c.next((f) => f.clientMsgId === cid2, true);
      c.send({ type: 'chat_message', conversationId, content: 'let me in', clientMsgId: cid2 });
      assert.deepEqual(await refused, { type: 'error', reason: 'forbidden', clientMsgId: cid2 });
      assert.equal((await expectError(c, { type: 'typing_indicator', conversationId, isTyping: true })).reason, 'forbidden');
      assert.equal((await expectError(c, { type: 'read', conversationId, upToSeq: 1 })).reason, 'forbidden');
      const m = await marker(b, a);
      assert.deepEqual(received(a, mark), [m]);
      assert.equal((await loc.rows({ conversationId })).length, 3);
    });

    test('client-sent senderId, id, timestamp, pos, seq (and a second target) are refused and reach no one', T, async () => {
      const a = await user();
      const b = await user();
      const mark = b.frames.length;
      const forged = { senderId: b.userId, id: randomUUID(), timestamp: 1, pos: 1, seq: 1, conversationId: randomUUID() };
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
        attachments: [
          { type: 'image', url: 'https://cdn.example.com/a.png', name: '<i>pic</i>.png' },
          { type: 'file', url: 'https://cdn.example.com/x"><img src=x onerror=alert(1)>', name: 'f' },
        ],
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
      assert.deepEqual(got.attachments, [
        { type: 'image', url: 'https://cdn.example.com/a.png', name: '&lt;i&gt;pic&lt;/i&gt;.png' },
        // As the URL parser serializes it: no raw quote or angle bracket reaches a client.
        { type: 'file', url: 'https://cdn.example.com/x%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E', name: 'f' },
      ]);
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
      // Typing goes only through a conversation: without one it is refused (below); a message makes one.
      const first = await marker(a, b1, 'first');
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
      // Not stored: the conversation holds the two messages only, in history and in the database.
      assert.deepEqual((await history(b1, a.userId)).map((f) => f.id), [m.id, first.id]);
      assert.equal((await loc.rows({ senderId: a.userId })).length, 2);

      // Not in the inbox: typing to an offline user leaves nothing to replay.
      const c = await user();
      const offline = newUserId();
      const earlier = await sent(c, offline, 'earlier');
      c.send({ type: 'typing_indicator', recipientId: offline, isTyping: true });
      await history(c, offline); // the typing frame was handled before this reply
      const late = await user(srv, offline);
      const m2 = await marker(c, late);
      assert.deepEqual(received(late).map((f) => f.id), [earlier.id, m2.id], 'the two messages only');
      assert.equal((await loc.rows({ recipientId: offline })).length, 2);

      // No conversation with that user (neither side ever wrote): refused, and nothing is published.
      const stranger = await user();
      const refused = await expectError(stranger, { type: 'typing_indicator', recipientId: sub, isTyping: true });
      assert.deepEqual(refused, { type: 'error', reason: 'forbidden' });
      const m3 = await marker(a, b1, 'after the stranger');
      assert.equal(received(b1).filter((f) => f.type === 'typing_indicator' && f.senderId === stranger.userId).length, 0);
      assert.equal(m3.type, 'chat_message');
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

      // A role that is not configured has no permission, not even to read: its auth is refused
      // (a session is sent its timeline), see roles-without-read.test.ts.
      await assert.rejects(user(srv, newUserId(), { role: 'superuser' }), /auth failed: invalid_token/);
      // The v1 ack form is a validation failure for everyone now.
      assert.equal((await expectError(muted, { type: 'ack', messageIds: [randomUUID()] })).reason, 'validation_failed');

      const m = await marker(b, a);
      assert.deepEqual(received(a, mark), [m], 'nothing from the muted user arrived');
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
      assert.equal(got.pos, 1, "its own timeline, separate from tenant b's");
      // Tenant b cannot reach tenant a's conversation by its id either: forbidden, like a nonexistent one.
      const probe = await expectError(xb, { type: 'history', conversationId: ack.conversationId });
      assert.equal(probe.reason, 'forbidden');
      const cid = newCid();
      const write = xb.next((f) => f.clientMsgId === cid, true);
      xb.send({ type: 'chat_message', conversationId: ack.conversationId, content: 'into another tenant', clientMsgId: cid });
      assert.deepEqual(await write, { type: 'error', reason: 'forbidden', clientMsgId: cid });
      assert.equal((await loc.rows({ conversationId: String(ack.conversationId) })).length, 1, 'nothing stored in it');
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
      const auth = b.frames.find((f) => f.type === 'auth_success')!;
      assert.equal(auth.resumeAfter, 0);
      assert.ok(Number(auth.lastPos) >= 50);
      assert.deepEqual(positions(b), range(1, 51), 'one contiguous pos stream: replay, then live');
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
      assert.deepEqual(positions(b), range(1, N));
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
      // b's own messages are in its timeline after the inbox: one stream, replay first, no gap.
      assert.deepEqual(positions(b), range(1, inbox.length + BURST));
      assert.deepEqual(streamOf(b).slice(inbox.length).map((i) => i.frame.type), cids.map(() => 'message_sent'));
    });

    test('ack {upTo}: what was acked is not replayed, the rest is; an ack moves only the caller\'s own position, never backwards', T, async () => {
      const a = await user();
      const offline = newUserId();
      const [m1, m2, m3] = [await sent(a, offline, 'one'), await sent(a, offline, 'two'), await sent(a, offline, 'three')];
      const b = await user(srv, offline);
      await b.nthOfType('chat_message', 3);
      assert.deepEqual(chats(b).map((f) => f.id), [m1!.id, m2!.id, m3!.id]);
      assert.deepEqual(positions(b), [1, 2, 3]);
      await acked(b, loc, 2);
      // Backwards and beyond the end: never moves back, clamped to the last position.
      b.send({ type: 'ack', upTo: 1 });
      await history(b, a.userId);
      assert.equal((await loc.sync(offline)).ackedPos, 2, 'an ack never moves backwards');
      await closeAll(b);

      const b2 = await user(srv, offline);
      const auth2 = b2.frames.find((f) => f.type === 'auth_success')!;
      assert.deepEqual([auth2.resumeAfter, auth2.lastPos], [2, 3]);
      const mk = await marker(a, b2);
      assert.deepEqual(chats(b2).map((f) => f.id), [m3!.id, mk.id], 'only the unacked one is redelivered');
      assert.deepEqual(positions(b2), [3, 4]);
      b2.send({ type: 'ack', upTo: 1_000_000 });
      await waitFor(async () => (await loc.sync(offline)).ackedPos === 4, 10_000, 'the ack clamped to lastPos');
      await closeAll(b2);

      // Another user acking (even the sender, whose timeline holds the same messages) changes nothing for b.
      const intruder = await user();
      intruder.send({ type: 'ack', upTo: 1_000_000 });
      await history(intruder, offline);
      a.send({ type: 'ack', upTo: 1_000_000 });
      await waitFor(async () => (await loc.sync(a.userId)).ackedPos === 4, 10_000, "the sender's own ack");
      assert.equal((await loc.sync(intruder.userId)).ackedPos, 0, 'nothing to ack in an empty timeline');
      const mk2 = await sent(a, offline, 'after the others acked');
      const b3 = await user(srv, offline);
      await b3.next((f) => f.type === 'chat_message' && f.id === mk2.id);
      assert.deepEqual(chats(b3).map((f) => f.id), [mk2.id], 'exactly what b had not acked');
      assert.deepEqual(positions(b3), [5]);
      const state = await loc.sync(offline);
      assert.deepEqual([state.lastPos, state.ackedPos], [5, 4]);
      assert.deepEqual(state.timeline.map((e) => e.eventId), [m1!.id, m2!.id, m3!.id, mk.id, mk2.id]);
    });

    test('committed but never published (the reply of the commit was lost): the resend, answered as a duplicate, makes the online recipient read it', T, async () => {
      const a = await user();
      const b = await user();
      const clientMsgId = newCid();
      // Another writer commits the message with a's key and publishes nothing: what a node leaves
      // behind when COMMIT succeeded but its answer never arrived (a got storage_unavailable).
      const other = await openStore(loc.storage);
      try {
        const now = Date.now();
        const [outcome] = await other.appendMessages(
          [{ id: messageId(now), tenantId: 'default', senderId: a.userId, to: { peerId: b.userId }, content: 'committed in the dark', mentions: [], hashtags: [], links: [], timestamp: now, clientMsgId }],
          { maxInboxSize: 10_000 },
        );
        assert.equal(outcome?.status, 'stored');
      } finally {
        await other.close();
      }
      assert.equal(chats(b).length, 0, 'nothing was published');
      // a resends (as the SDK does after storage_unavailable): a duplicate, and b gets it now.
      a.send({ type: 'chat_message', recipientId: b.userId, content: 'committed in the dark', clientMsgId });
      const got = await b.next((f) => f.type === 'chat_message');
      assert.equal(got.content, 'committed in the dark');
      assert.equal(got.pos, 1);
      const reply = await a.next((f) => f.type === 'message_sent' && f.clientMsgId === clientMsgId);
      assert.equal(reply.id, got.id);
      // a's own session reads its copy too (its other devices would): in its stream, once.
      await a.next((f) => f.type === 'chat_message' && f.id === got.id);
      assert.equal(a.frames.filter((f) => f.id === got.id && f.type === 'chat_message').length, 1);
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
        assert.equal(ack.conversationId, acks[0]!.conversationId);
        assert.equal(ack.seq, 1);
      }
      assert.equal(third.id, first.id);
      // Only the stored one is a timeline event (pos); the duplicates' answers carry none.
      assert.deepEqual(acks.map((f) => f.pos).filter((p) => p !== undefined), [1]);
      assert.equal('pos' in third, false);
      const m = await marker(a, b);
      const got = received(b, mark);
      assert.deepEqual(got.map((f) => f.id), [first.id, m.id]);
      assert.equal(got[0]!.content, 'exactly once');
      assert.deepEqual(positions(b), [1, 2]);
      assert.equal((await loc.rows({ senderId: a.userId })).length, 2);
      assert.equal((await loc.sync(b.userId)).lastPos, 2, 'one timeline entry for the message, one for the marker');
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

      const state = await small.loc.sync(offline);
      assert.deepEqual([state.lastPos, state.ackedPos], [3, 0]);
      // A message from someone else is refused too: the bound is the recipient's backlog.
      const other = await user(small.srv);
      const refused = await sendChat(other, offline, 'one more');
      assert.equal(refused.reason, 'inbox_full');

      const b = await user(small.srv, offline);
      await b.nthOfType('chat_message', 3);
      assert.deepEqual(positions(b), [1, 2, 3]);
      await acked(b, small.loc, 3);
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
      const all = await history(a, b.userId);
      assert.deepEqual(all.map((f) => f.id), newest);
      assert.ok(all.every((f) => f.type === 'chat_message' && f.pos === undefined), 'history items are typed and carry no pos');
      assert.deepEqual(all.map((f) => f.seq), [5, 4, 3, 2, 1]);
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

      // v2: by conversationId, paged by seq.
      const conversationId = String(all[0]!.conversationId);
      const byConv = async (client: TestClient, extra: Record<string, unknown>): Promise<Frame> => {
        const reply = client.next((f) => f.type === 'history' || f.type === 'error', true);
        client.send({ type: 'history', conversationId, ...extra });
        return reply;
      };
      const seqPages: string[][] = [];
      let beforeSeq: number | undefined;
      for (;;) {
        const reply = await byConv(b, { limit: 2, ...(beforeSeq !== undefined ? { beforeSeq } : {}) });
        assert.equal(reply.type, 'history');
        assert.equal(reply.conversationId, conversationId);
        const page = reply.messages as Frame[];
        if (page.length === 0) break;
        seqPages.push(page.map((f) => String(f.id)));
        beforeSeq = page[page.length - 1]!.seq as number;
      }
      assert.deepEqual(seqPages, pages);
      // A requestId is echoed.
      const tagged = await byConv(a, { limit: 1, requestId: 'h-1' });
      assert.equal(tagged.requestId, 'h-1');
      const [one] = await history(a, b.userId, { limit: 1 });
      assert.equal(one!.content, 'h4');
      assert.equal(one!.senderId, a.userId);

      assert.equal((await expectError(a, { type: 'history', peerId: b.userId, limit: 101 })).reason, 'validation_failed');
      assert.equal((await expectError(a, { type: 'history', peerId: b.userId, limit: 0 })).reason, 'validation_failed');
      assert.equal((await history(a, b.userId, { limit: 100 })).length, 5);

      const c = await user();
      // A third user cannot read the pair's conversation by its id: forbidden, the same reply as a
      // conversation that does not exist.
      const stolen = await byConv(c, {});
      const nonexistent = c.next((f) => f.type === 'error', true);
      c.send({ type: 'history', conversationId: randomUUID() });
      assert.deepEqual(stolen, { type: 'error', reason: 'forbidden' });
      assert.deepEqual(await nonexistent, { type: 'error', reason: 'forbidden' });
      const stolenWithId = await byConv(c, { requestId: 'steal' });
      assert.deepEqual(stolenWithId, { type: 'error', reason: 'forbidden', requestId: 'steal' });
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
