/**
 * RampartClient against fake sockets on a fake clock: reconnect timing, permanent refusals, token
 * refresh, exactly-once delivery (dedupe, gaps), resends without duplicates, rate limits, and a
 * close() that leaves nothing behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RampartClient, type RampartClientOptions } from '../../src/client/rampart-client.js';
import { SendError } from '../../src/client/send-queue.js';
import { RequestError } from '../../src/client/requests.js';
import { MemorySyncStore, type SyncState, type SyncStore } from '../../src/client/sync-store.js';
import { FileSyncStore } from '../../src/client/file-sync-store.js';
import type { TimelineMessage, SentEvent } from '../../src/client/events.js';
import { tokenIdentity } from '../../src/client/token-source.js';
import { FakeClock, FakeSocket, fakeJwt, settle } from '../helpers/fake-client-env.js';

const ME = '11111111-1111-4111-8111-111111111111';
/** Whose a stored state is when `setup()`'s tokens wrote it: the server's user id and the token's identity. */
const MINE = { userId: ME, identity: tokenIdentity(fakeJwt(0, ME))! };
const PEER = '22222222-2222-4222-8222-222222222222';
const CONV = '33333333-3333-4333-8333-333333333333';
/** Ids of messages the tests edit or delete (the SDK refuses anything but a UUID before sending). */
const M1 = '44444444-4444-4444-8444-444444444441';
const M2 = '44444444-4444-4444-8444-444444444442';
const M3 = '44444444-4444-4444-8444-444444444443';
const M4 = '44444444-4444-4444-8444-444444444444';
const M5 = '44444444-4444-4444-8444-444444444445';

function setup(over: Partial<RampartClientOptions> = {}) {
  const clock = new FakeClock();
  const sockets: FakeSocket[] = [];
  let tokenCalls = 0;
  const client = new RampartClient({
    url: 'ws://rampart.test/ws',
    token: () => {
      tokenCalls++;
      return fakeJwt(clock.now() + 3_600_000, ME);
    },
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    clock,
    random: () => 0.5,
    backoff: { baseMs: 1000, maxMs: 8000 },
    ...over,
  });
  const seen: (TimelineMessage | SentEvent)[] = [];
  client.on('message', (m) => seen.push(m));
  client.on('sent', (s) => seen.push(s));
  const last = () => sockets[sockets.length - 1]!;
  /** Opens the newest socket and answers its `auth`. */
  const accept = async (resumeAfter = 0, lastPos = resumeAfter) => {
    await settle();
    last().open();
    last().receive({ type: 'auth_success', userId: ME, resumeAfter, lastPos });
    await settle();
  };
  return { clock, sockets, client, seen, last, accept, tokenCalls: () => tokenCalls };
}

const msg = (pos: number, id = `m${pos}`, senderId = PEER) => ({ type: 'chat_message', pos, id, conversationId: CONV, seq: pos, senderId, content: `c${pos}`, mentions: [], hashtags: [], links: [], timestamp: 1 });

test('reconnects with exponential backoff and full jitter; asks getToken again each time', async () => {
  const env = setup();
  const ready = env.client.connect();
  await env.accept();
  await ready;
  assert.equal(env.tokenCalls(), 1);
  // A new device names no position: the server replays what no device of the user acknowledged.
  assert.deepEqual(env.last().sent[0], { type: 'auth', token: env.last().sent[0]!.token, deviceId: env.client.deviceId });
  const delays: number[] = [];
  env.client.on('disconnected', (d) => delays.push(d.retryInMs ?? -1));
  for (let i = 0; i < 5; i++) {
    env.last().drop(1006);
    const count = env.sockets.length;
    await env.clock.advance((delays[i] ?? 0) - 1);
    assert.equal(env.sockets.length, count, 'no socket before the delay');
    await env.clock.advance(1);
    assert.equal(env.sockets.length, count + 1);
  }
  // random() = 0.5 → half of min(8000, 1000·2^n)
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 4000]);
  assert.equal(env.tokenCalls(), 6, 'a fresh token for every connect');
  await env.accept();
  await env.clock.advance(10_000); // stableConnectionMs (default): this connection stayed up
  env.last().drop(1006);
  assert.equal(delays[5], 500, 'authenticated and stayed up: backoff starts over');
  env.client.close();
});

test('a server shutdown (1001) reconnects after a randomized delay', async () => {
  const env = setup({ shutdownDelayMaxMs: 4000, random: () => 0.25 });
  void env.client.connect();
  await env.accept();
  let retry: number | undefined;
  env.client.on('disconnected', (d) => (retry = d.retryInMs));
  env.last().drop(1001, 'server shutting down');
  assert.equal(retry, 1000);
  await env.clock.advance(1000);
  assert.equal(env.sockets.length, 2);
  env.client.close();
});

for (const [what, act, reason] of [
  ['invalid token (4003)', (s: FakeSocket) => { s.receive({ type: 'auth_failure', reason: 'invalid_token' }); s.drop(4003); }, 'invalid_token'],
  ['identity change (4009)', (s: FakeSocket) => { s.receive({ type: 'auth_failure', reason: 'identity_change' }); s.drop(4009); }, 'identity_change'],
  ['forbidden origin (HTTP 403)', (s: FakeSocket) => s.refuse(403), 'origin_not_allowed'],
] as const) {
  test(`no reconnect after a permanent refusal: ${what}`, async () => {
    const env = setup();
    const ready = env.client.connect();
    await settle();
    const closed: { reason: string; permanent: boolean }[] = [];
    env.client.on('closed', (c) => closed.push(c));
    if (reason !== 'origin_not_allowed') env.last().open();
    act(env.last());
    await assert.rejects(ready, { name: 'ConnectError', reason });
    assert.deepEqual(closed, [{ reason, permanent: true }]);
    assert.equal(env.client.state, 'closed');
    await env.clock.advance(10 * 60_000);
    assert.equal(env.sockets.length, 1, 'never reconnected');
    assert.deepEqual(env.clock.pending, [], 'no timer left');
    await assert.rejects(env.client.sendMessage({ conversationId: CONV }, 'x'), { reason: 'closed' });
  });
}

test('refreshes the token on the open socket before exp, and again after each refresh', async () => {
  const env = setup({ refresh: { marginMs: 30_000, minDelayMs: 1000 } });
  // getToken returns a 2-minute token: refresh at exp − 30 s = 90 s.
  // This fake server never answers a ping: liveness checks off (they have their own tests).
  const tokens: string[] = [];
  const client = new RampartClient({
    url: 'ws://x/ws',
    token: () => {
      const t = fakeJwt(env.clock.now() + 120_000);
      tokens.push(t);
      return t;
    },
    createSocket: (u) => {
      const s = new FakeSocket(u);
      env.sockets.push(s);
      return s;
    },
    clock: env.clock,
    pingIntervalMs: 0,
  });
  void client.connect();
  await settle();
  env.last().open();
  env.last().receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 });
  await env.clock.advance(89_999);
  assert.equal(env.last().framesOf('auth').length, 1);
  await env.clock.advance(1);
  assert.equal(env.last().framesOf('auth').length, 2);
  assert.deepEqual(env.last().framesOf('auth')[1], { type: 'auth', token: tokens[1] });
  env.last().receive({ type: 'auth_success', userId: ME }); // the refresh's answer changes nothing
  assert.equal(client.state, 'open');
  await env.clock.advance(90_000);
  assert.equal(env.last().framesOf('auth').length, 3);
  assert.equal(env.sockets.length, 1);
  client.close();
  env.client.close();
  assert.deepEqual(env.clock.pending, []);
});

test('an expired token (4005) reconnects with a fresh one; a fixed token stops', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  env.last().receive({ type: 'auth_failure', reason: 'token_expired' });
  env.last().drop(4005);
  await env.clock.advance(500);
  assert.equal(env.sockets.length, 2);
  assert.equal(env.tokenCalls(), 2);
  env.client.close();

  const fixed = setup({ token: fakeJwt(Date.now() + 1000) });
  const closed: string[] = [];
  fixed.client.on('closed', (c) => closed.push(c.reason));
  void fixed.client.connect();
  await fixed.accept();
  fixed.last().drop(4005);
  assert.deepEqual(closed, ['token_expired']);
  assert.deepEqual(fixed.clock.pending, []);
});

test('dedupe: a replay after a reconnect delivers nothing twice; resume uses after = last processed pos', async () => {
  const store = new MemorySyncStore({ deviceId: 'dev-test', pos: 0, ...MINE });
  const env = setup({ store, ackDelayMs: 100 });
  void env.client.connect();
  await env.accept(0, 2);
  env.last().receive(msg(1));
  env.last().receive(msg(2));
  env.last().receive(msg(2)); // repeated on the same socket
  await env.clock.advance(100);
  assert.deepEqual(env.last().framesOf('ack'), [{ type: 'ack', upTo: 2 }], 'one batched ack');
  assert.deepEqual(store.load(), { deviceId: 'dev-test', pos: 2, ...MINE });
  env.last().drop(1006);
  await env.clock.advance(500);
  await env.accept(1, 3); // a server that replays from 1 anyway
  assert.deepEqual(env.last().sent[0], { type: 'auth', token: env.last().sent[0]!.token, deviceId: 'dev-test', after: 2 });
  for (const p of [1, 2, 3]) env.last().receive(msg(p));
  assert.deepEqual(env.seen.map((m) => (m as TimelineMessage).pos), [1, 2, 3]);
  assert.equal(env.client.pos, 3);
  env.client.close();
  assert.deepEqual(store.load(), { deviceId: 'dev-test', pos: 3, ...MINE }, 'close() persists the position');
});

test('gap detection: a missing pos resumes from the last one on a new socket, and the event is delivered once', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept(0, 0);
  const gaps: unknown[] = [];
  env.client.on('gap', (g) => gaps.push(g));
  env.last().receive(msg(1));
  env.last().receive(msg(3)); // 2 is missing
  env.last().receive(msg(4)); // ignored: the session is being resumed
  assert.deepEqual(gaps, [{ after: 1, got: 3 }]);
  assert.deepEqual(env.last().closedWith, { code: 1000, reason: 'gap' });
  env.last().drop(1000, 'gap');
  await env.clock.advance(500); // after the backoff, jittered (attempt 0, random 0.5 → 500 ms)
  assert.equal(env.sockets.length, 2);
  await env.accept(1, 4);
  assert.equal(env.last().sent[0]!.after, 1);
  for (const p of [2, 3, 4]) env.last().receive(msg(p));
  assert.deepEqual(env.seen.map((m) => (m as TimelineMessage).pos), [1, 2, 3, 4]);
  env.client.close();
});

test('resend after a reconnect: same clientMsgId, the message reaches the application once, the promise resolves once', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept(0, 0);
  const p = env.client.sendMessage({ conversationId: CONV }, 'hello', { clientMsgId: 'cm-1' });
  const first = env.last().framesOf('chat_message');
  assert.deepEqual(first, [{ type: 'chat_message', conversationId: CONV, content: 'hello', clientMsgId: 'cm-1' }]);
  env.last().drop(1006); // the message was stored, but message_sent was lost with the socket
  await env.clock.advance(500);
  await env.accept(0, 1);
  assert.deepEqual(env.last().framesOf('chat_message'), first, 'resent as it was');
  // The replay brings our own copy (pos 1), then the duplicate send is answered without a pos.
  env.last().receive(msg(1, 'mid-1', ME));
  env.last().receive({ type: 'message_sent', id: 'mid-1', clientMsgId: 'cm-1', conversationId: CONV, seq: 1, timestamp: 1 });
  const receipt = await p;
  assert.equal(receipt.id, 'mid-1');
  assert.deepEqual(env.seen.map((e) => ('own' in e ? `message ${e.id} own=${e.own}` : `sent ${e.id}`)), ['message mid-1 own=true']);
  assert.equal(env.client.pendingSends, 0);

  // The other order: the duplicate's answer first, then the replayed copy — still once.
  const p2 = env.client.sendMessage({ conversationId: CONV }, 'again', { clientMsgId: 'cm-2' });
  await dropAndReconnect(env);
  await env.accept(1, 2);
  env.last().receive({ type: 'message_sent', id: 'mid-2', clientMsgId: 'cm-2', conversationId: CONV, seq: 2, timestamp: 1 });
  env.last().receive(msg(2, 'mid-2', ME));
  await p2;
  assert.deepEqual(env.seen.map((e) => e.id), ['mid-1', 'mid-2']);
  assert.equal(env.client.pos, 2);

  // The normal path: message_sent with pos takes the place of our copy in the stream.
  const p3 = env.client.sendMessage({ recipientId: PEER }, 'third', { clientMsgId: 'cm-3' });
  env.last().receive({ type: 'message_sent', id: 'mid-3', clientMsgId: 'cm-3', conversationId: CONV, seq: 3, timestamp: 1, pos: 3 });
  await p3;
  assert.equal(env.client.pos, 3);
  assert.deepEqual(env.seen.map((e) => e.id), ['mid-1', 'mid-2', 'mid-3']);
  env.client.close();
});

test('sends wait while disconnected; rate_limited is retried after retryAfter; permanent errors reject', async () => {
  const env = setup({ maxPendingSends: 3 });
  void env.client.connect();
  const a = env.client.sendMessage({ conversationId: CONV }, 'a', { clientMsgId: 'a' });
  const b = env.client.sendMessage({ conversationId: CONV }, 'b', { clientMsgId: 'b' });
  const c = env.client.sendMessage({ conversationId: CONV }, 'c', { clientMsgId: 'c' });
  await assert.rejects(env.client.sendMessage({ conversationId: CONV }, 'd'), { reason: 'queue_full' });
  await env.accept();
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['a', 'b', 'c']);
  env.last().receive({ type: 'rate_limited', reason: 'burst_limit', retryAfter: 700, clientMsgId: 'a' });
  env.last().receive({ type: 'error', reason: 'forbidden', clientMsgId: 'b' });
  env.last().receive({ type: 'error', reason: 'storage_unavailable', clientMsgId: 'c' });
  await assert.rejects(b, (err: unknown) => err instanceof SendError && err.reason === 'forbidden');
  // The waits are the queue's: the longer one (storage_unavailable: random 0.5, base 1000 → 2000 ms,
  // longer than retryAfter) holds every send, and a and c then go again in their order — after the
  // rate_limited one at a time, until one is confirmed (the message budget has room again).
  await env.clock.advance(1999);
  assert.equal(env.last().framesOf('chat_message').length, 3, 'nothing before the wait ends');
  await env.clock.advance(1);
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['a', 'b', 'c', 'a'], 'the oldest retried first, alone');
  env.last().receive({ type: 'message_sent', id: 'ia', clientMsgId: 'a', conversationId: CONV, seq: 1, timestamp: 1, pos: 1 });
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['a', 'b', 'c', 'a', 'c'], 'both retried, in order');
  env.last().receive({ type: 'message_sent', id: 'ic', clientMsgId: 'c', conversationId: CONV, seq: 2, timestamp: 1, pos: 2 });
  assert.equal((await a).id, 'ia');
  assert.equal((await c).id, 'ic');
  env.client.close();
});

test('requests are answered by requestId; errors reject; in flight at a drop they fail', async () => {
  const env = setup();
  void env.client.connect();
  const list = env.client.listConversations({ limit: 5 });
  await env.accept();
  const req = env.last().framesOf('list_conversations')[0]!;
  assert.equal(req.limit, 5);
  env.last().receive({ type: 'conversations', conversations: [], requestId: req.requestId });
  assert.deepEqual(await list, { type: 'conversations', conversations: [], requestId: req.requestId });
  const read = env.client.markRead(CONV, 4);
  const rr = env.last().framesOf('read')[0]!;
  env.last().receive({ type: 'read_updated', conversationId: CONV, readSeq: 4, requestId: rr.requestId });
  assert.deepEqual(await read, { conversationId: CONV, readSeq: 4 });
  const group = env.client.createGroup('g', [PEER]);
  const gr = env.last().framesOf('create_group')[0]!;
  env.last().receive({ type: 'error', reason: 'forbidden', requestId: gr.requestId });
  await assert.rejects(group, { name: 'RequestError', reason: 'forbidden' });
  const sessions = env.client.listSessions();
  const ls = env.last().framesOf('list_sessions')[0]!;
  env.last().receive({ type: 'sessions', sessions: [{ sessionId: 'n1:1', node: 'n1', ip: '127.0.0.1', since: 1, current: true }], requestId: ls.requestId });
  assert.equal((await sessions)[0]?.sessionId, 'n1:1');
  const hist = env.client.history({ conversationId: CONV });
  env.last().drop(1006);
  await assert.rejects(hist, { reason: 'disconnected' });
  env.client.close();
});

test('a create in flight when the socket drops goes out again on the next one, under its key; an app key is used as given', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const created = env.client.createGroup('g', [PEER], { clientMsgId: 'app-key-1' });
  const rename = env.client.renameGroup(CONV, 'n');
  const first = env.last().framesOf('create_group');
  assert.equal(first[0]!.clientMsgId, 'app-key-1');
  env.last().drop(1006); // stored, perhaps; its answer lost with the socket
  await assert.rejects(rename, { reason: 'disconnected' });
  await env.clock.advance(500);
  await env.accept();
  assert.deepEqual(env.last().framesOf('create_group'), first, 'the same frame: key and requestId');
  env.last().receive({ type: 'group_updated', conversationId: CONV, changed: false, seq: 1, requestId: first[0]!.requestId });
  assert.deepEqual(await created, { conversationId: CONV, changed: false, seq: 1 });
  await assert.rejects(env.client.createGroup('g', [], { clientMsgId: 'has space' }), { reason: 'validation_failed' });
  env.client.close();
});

const edited = (pos: number, messageId: string, content = 'new') => ({ type: 'message_edited', pos, id: `e${pos}`, conversationId: CONV, seq: pos, messageId, actorId: PEER, content, mentions: [], hashtags: [], links: [], editedAt: 2, timestamp: 2 });
const deleted = (pos: number, messageId: string) => ({ type: 'message_deleted', pos, id: `d${pos}`, conversationId: CONV, seq: pos, messageId, actorId: PEER, deletedAt: 3, timestamp: 3 });

test('edits and deletes are timeline events: once each, in pos order, across a replay and a gap', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept(0, 0);
  const order: string[] = [];
  env.client.on('message', (m) => order.push(`message ${m.pos}`));
  env.client.on('edited', (e) => order.push(`edited ${e.pos} ${e.messageId} ${e.content}`));
  env.client.on('deleted', (d) => order.push(`deleted ${d.pos} ${d.messageId} ${d.deletedAt}`));
  env.last().receive(msg(1));
  env.last().receive(edited(2, 'm1'));
  env.last().receive(edited(2, 'm1')); // repeated: dropped
  env.last().receive(deleted(4, 'm1')); // 3 is missing: a gap, resumed from 2
  env.last().drop(1000, 'gap');
  await env.clock.advance(500);
  await env.accept(2, 4);
  assert.equal(env.last().sent[0]!.after, 2, 'resumes after the edit it processed');
  env.last().receive(edited(2, 'm1')); // a server that replays from further back anyway
  env.last().receive(msg(3));
  env.last().receive(deleted(4, 'm1'));
  assert.deepEqual(order, ['message 1', 'edited 2 m1 new', 'message 3', 'deleted 4 m1 3']);
  assert.equal(env.client.pos, 4);
  await env.clock.advance(250);
  assert.deepEqual(env.last().framesOf('ack'), [{ type: 'ack', upTo: 4 }], 'edits and deletes are acknowledged like messages');
  env.client.close();
});

test('editMessage / deleteMessage: queued under a clientMsgId, resent after a reconnect, resolved once; refusals reject', async () => {
  const env = setup({ sendBudget: { limit: 10 } }); // six changes within a second: not held by the send pacing (client-send-pacing.test.ts)
  void env.client.connect();
  const edit = env.client.editMessage(M1, 'fixed', { clientMsgId: 'ce-1' });
  const del = env.client.deleteMessage(M2, { clientMsgId: 'cd-1' });
  await env.accept(0, 0);
  const first = [...env.last().framesOf('edit_message'), ...env.last().framesOf('delete_message')];
  assert.deepEqual(first, [
    { type: 'edit_message', messageId: M1, content: 'fixed', clientMsgId: 'ce-1' },
    { type: 'delete_message', messageId: M2, clientMsgId: 'cd-1' },
  ]);
  assert.equal(env.client.pendingSends, 2);
  env.last().drop(1006); // the answers are lost with the socket
  await env.clock.advance(500);
  await env.accept(0, 2);
  assert.deepEqual([...env.last().framesOf('edit_message'), ...env.last().framesOf('delete_message')], first, 'resent as they were');
  // A message_sent cannot confirm an edit, even under its clientMsgId.
  env.last().receive({ type: 'message_sent', id: 'x', clientMsgId: 'ce-1', conversationId: CONV, seq: 9, timestamp: 1 });
  assert.equal(env.client.pendingSends, 2);
  env.last().receive({ type: 'message_changed', action: 'edited', messageId: M1, conversationId: CONV, seq: 1, clientMsgId: 'ce-1' });
  env.last().receive({ type: 'message_changed', action: 'edited', messageId: M1, conversationId: CONV, seq: 1, clientMsgId: 'ce-1' }); // a late repeat
  env.last().receive({ type: 'message_changed', action: 'deleted', messageId: M2, conversationId: CONV, clientMsgId: 'cd-1' }); // a tombstone already: no seq
  assert.deepEqual(await edit, { action: 'edited', messageId: M1, clientMsgId: 'ce-1', conversationId: CONV, seq: 1 });
  assert.deepEqual(await del, { action: 'deleted', messageId: M2, clientMsgId: 'cd-1', conversationId: CONV });
  assert.equal(env.client.pendingSends, 0);

  // rate_limited waits retryAfter; forbidden (not ours, window passed, not a member) rejects.
  const late = env.client.editMessage(M3, 'too late', { clientMsgId: 'ce-2' });
  const slow = env.client.deleteMessage(M4, { clientMsgId: 'cd-2' });
  env.last().receive({ type: 'error', reason: 'forbidden', clientMsgId: 'ce-2' });
  await assert.rejects(late, (err: unknown) => err instanceof SendError && err.reason === 'forbidden');
  env.last().receive({ type: 'rate_limited', reason: 'burst_limit', retryAfter: 300, clientMsgId: 'cd-2' });
  await env.clock.advance(299);
  assert.equal(env.last().framesOf('delete_message').length, 2);
  await env.clock.advance(1);
  assert.equal(env.last().framesOf('delete_message').length, 3);
  env.last().receive({ type: 'message_changed', action: 'deleted', messageId: M4, conversationId: CONV, seq: 5, clientMsgId: 'cd-2' });
  assert.equal((await slow).seq, 5);
  // One key, one change: a second change under a key still queued is refused locally.
  const queued = env.client.editMessage(M5, 'x', { clientMsgId: 'ce-3' });
  await assert.rejects(env.client.deleteMessage(M5, { clientMsgId: 'ce-3' }), { reason: 'duplicate_client_msg_id' });
  env.client.close();
  await assert.rejects(queued, { reason: 'closed' });
});

test('receipts, presence and the own read position arrive as events; presence and private reads are requests', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const events: unknown[] = [];
  env.client.on('receipt', (r) => events.push(['receipt', r]));
  env.client.on('presence', (p) => events.push(['presence', p]));
  env.client.on('read', (r) => events.push(['read', r]));
  env.last().receive({ type: 'receipt', conversationId: CONV, userId: PEER, delivered: 3 });
  env.last().receive({ type: 'receipt', conversationId: CONV, userId: PEER, delivered: 4, read: 4 });
  env.last().receive({ type: 'presence_changed', userId: PEER, online: true });
  env.last().receive({ type: 'presence_changed', userId: PEER, online: false });
  // markRead's answer settles the request; the copy every session of ours gets is an event.
  const read = env.client.markRead(CONV, 7, { private: true });
  const rr = env.last().framesOf('read')[0]!;
  assert.deepEqual({ ...rr, requestId: undefined }, { type: 'read', conversationId: CONV, upToSeq: 7, private: true, requestId: undefined });
  env.last().receive({ type: 'read_updated', conversationId: CONV, readSeq: 7, requestId: rr.requestId });
  env.last().receive({ type: 'read_updated', conversationId: CONV, readSeq: 7 });
  assert.deepEqual(await read, { conversationId: CONV, readSeq: 7 });
  assert.deepEqual(events, [
    ['receipt', { conversationId: CONV, userId: PEER, delivered: 3 }],
    ['receipt', { conversationId: CONV, userId: PEER, delivered: 4, read: 4 }],
    ['presence', { userId: PEER, online: true }],
    ['presence', { userId: PEER, online: false }],
    ['read', { conversationId: CONV, readSeq: 7 }],
  ]);
  const online = env.client.getPresence(CONV);
  const pr = env.last().framesOf('presence')[0]!;
  assert.equal(pr.conversationId, CONV);
  env.last().receive({ type: 'presence', conversationId: CONV, online: [ME, PEER], requestId: pr.requestId });
  assert.deepEqual(await online, { conversationId: CONV, online: [ME, PEER] });
  const hide = env.client.setPresenceVisible(false);
  const sp = env.last().framesOf('set_presence')[0]!;
  assert.equal(sp.visible, false);
  env.last().receive({ type: 'presence_updated', visible: false, requestId: sp.requestId });
  assert.equal(await hide, false);
  const forbidden = env.client.getPresence(PEER);
  env.last().receive({ type: 'error', reason: 'forbidden', requestId: env.last().framesOf('presence')[1]!.requestId });
  await assert.rejects(forbidden, { name: 'RequestError', reason: 'forbidden' });
  env.client.close();
});

test('close() leaves no timer, socket handler or listener, and rejects what is pending', async () => {
  const env = setup({ token: () => fakeJwt(Date.now() + 3_600_000) });
  void env.client.connect();
  await env.accept();
  env.last().receive(msg(1)); // an ack timer is running
  const sending = env.client.sendMessage({ conversationId: CONV }, 'x');
  const hist = env.client.history({ conversationId: CONV }); // a request timer is running
  assert.ok(env.clock.pending.length >= 3, `timers: ${env.clock.pending}`);
  let closedEvents = 0;
  env.client.on('closed', () => closedEvents++);
  const socket = env.last();
  env.client.close();
  assert.deepEqual(env.clock.pending, [], 'no timer');
  assert.ok(socket.detached, 'no socket handler');
  assert.deepEqual(socket.closedWith, { code: 1000, reason: 'client closed' });
  assert.deepEqual(socket.framesOf('ack'), [{ type: 'ack', upTo: 1 }], 'the last position is acknowledged on the way out');
  await assert.rejects(sending, { reason: 'closed' });
  await assert.rejects(hist, { reason: 'closed' });
  assert.equal(closedEvents, 1);
  // Listeners are gone: a late frame or close on the old socket reaches nobody.
  socket.onmessage?.({ data: JSON.stringify(msg(2)) });
  assert.equal(env.seen.length, 1);
  env.client.close(); // idempotent
  await env.clock.advance(60_000);
  assert.equal(env.sockets.length, 1);

  // Closing while a reconnect is scheduled cancels it.
  const env2 = setup();
  void env2.client.connect();
  await env2.accept();
  env2.last().drop(1006);
  assert.equal(env2.clock.pending.length, 1);
  env2.client.close();
  assert.deepEqual(env2.clock.pending, []);
  await env2.clock.advance(60_000);
  assert.equal(env2.sockets.length, 1);
});

test('a send the server could only refuse is rejected at once, before anything is queued or sent', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const bad: [Promise<unknown>, string][] = [
    [env.client.sendMessage({ conversationId: 'not-a-uuid' }, 'x'), 'conversationId: a UUID'],
    [env.client.sendMessage({ recipientId: 'bob' }, 'x'), 'recipientId: a UUID'],
    [env.client.sendMessage({ conversationId: CONV }, ''), 'content: empty'],
    [env.client.sendMessage({ conversationId: CONV }, 'x'.repeat(5001)), 'content: over 5000 characters'],
    [env.client.sendMessage({ recipientId: PEER }, { content: 'x', replyTo: 'nope' }), 'replyTo: a UUID'],
    [env.client.sendMessage({ recipientId: PEER }, { content: 'x', attachments: [{ type: 'image', url: 'ftp://x', name: 'a' }] }), 'attachments.url: an http(s) URL'],
    [env.client.editMessage('m1', 'x'), 'messageId: a UUID'],
    [env.client.editMessage(M1, ''), 'content: empty'],
    [env.client.deleteMessage('m1'), 'messageId: a UUID'],
  ];
  for (const [p, detail] of bad) await assert.rejects(p, (err: unknown) => err instanceof SendError && err.reason === 'validation_failed' && err.detail === detail);
  assert.equal(env.client.pendingSends, 0);
  assert.deepEqual(env.last().framesOf('chat_message'), []);
  env.client.close();
});

test("rate_limited without a clientMsgId (the connection's frame budget): the sends in flight go again after retryAfter", async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const a = env.client.sendMessage({ conversationId: CONV }, 'a', { clientMsgId: 'a' });
  await settle();
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 400 });
  await env.clock.advance(399);
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['a']);
  await env.clock.advance(1);
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['a', 'a']);
  env.last().receive({ type: 'message_sent', id: 'ia', clientMsgId: 'a', conversationId: CONV, seq: 1, timestamp: 1, pos: 1 });
  assert.equal((await a).id, 'ia');
  env.client.close();
});

test('a send that closes the socket with 1009 (over maxMessageSize) is rejected, not resent on every reconnect', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const big = env.client.sendMessage({ conversationId: CONV }, 'x', { clientMsgId: 'big' });
  await settle();
  env.last().drop(1009);
  await assert.rejects(big, { reason: 'message_too_big' });
  await env.clock.advance(500);
  await env.accept();
  assert.deepEqual(env.last().framesOf('chat_message'), []);
  env.client.close();
});

test('close() from inside a listener leaves no timer behind', async () => {
  for (const event of ['message', 'ready', 'state'] as const) {
    const env = setup();
    const stop = (): void => env.client.close();
    if (event === 'message') env.client.on('message', stop);
    else if (event === 'ready') env.client.on('ready', stop);
    else env.client.on('state', (s) => (s.state === 'open' ? stop() : undefined));
    void env.client.connect().catch(() => {});
    await env.accept();
    if (event === 'message') env.last().receive(msg(1));
    await settle();
    assert.deepEqual(env.clock.pending, [], `no timer after close() in a ${event} listener`);
  }
});

test('timeline_pruned: ignored on a socket being replaced after a gap; one naming a position past ours resumes', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept(0, 10);
  env.last().receive(msg(1));
  env.last().receive(msg(3)); // gap after 1: this socket is replaced
  env.last().receive({ type: 'timeline_pruned', after: 3, firstPos: 6 }); // still arriving on it: ignored
  env.last().drop(1000, 'gap');
  await env.clock.advance(500);
  await env.accept(1, 10);
  assert.equal(env.last().sent[0]!.after, 1, 'resumes after the last delivered position, not past the hole');
  env.last().receive({ type: 'timeline_pruned', after: 4, firstPos: 6 }); // we are at 1: 2..4 were missed
  await settle();
  assert.equal(env.last().closedWith?.reason, 'gap');
  env.client.close();
});

test('an expired token again and again: the retries back off instead of hammering the server', async () => {
  const env = setup();
  const delays: number[] = [];
  env.client.on('disconnected', (d) => delays.push(d.retryInMs ?? -1));
  void env.client.connect();
  await env.accept();
  env.last().drop(4005);
  for (let i = 0; i < 3; i++) {
    await env.clock.advance(delays.at(-1)!);
    await settle();
    env.last().open();
    env.last().receive({ type: 'auth_failure', reason: 'token_expired' });
    env.last().drop(4005);
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000]);
  env.client.close();
});

test('a socket that never reaches auth_success is given up after connectTimeoutMs and the client reconnects', async () => {
  const env = setup({ connectTimeoutMs: 3000 });
  const reasons: string[] = [];
  env.client.on('disconnected', (d) => reasons.push(d.reason));
  void env.client.connect();
  await settle();
  env.last().open(); // the handshake completes, but no auth_success ever comes (a half-open connection)
  await env.clock.advance(2999);
  assert.equal(env.sockets.length, 1);
  await env.clock.advance(1);
  assert.deepEqual(env.sockets[0]!.closedWith, { code: 1000, reason: 'connect_timeout' });
  assert.deepEqual(reasons, ['connect_timeout']);
  await env.clock.advance(500); // backoff attempt 0 (random 0.5 → 500 ms)
  assert.equal(env.sockets.length, 2);
  await env.accept();
  await env.clock.advance(10_000);
  assert.equal(env.sockets.length, 2, 'an authenticated socket is never timed out');
  env.client.close();
});

test('liveness: a period with nothing received brings a ping; any frame, the pong included, keeps the connection', async () => {
  const env = setup({ pingIntervalMs: 25_000, pongTimeoutMs: 10_000 });
  void env.client.connect();
  await env.accept(); // t = 0: the first period ends at 25 s
  await env.clock.advance(20_000);
  env.last().receive(msg(1)); // traffic in this period: no ping at its end
  await env.clock.advance(5_000);
  assert.equal(env.last().framesOf('ping').length, 0);
  await env.clock.advance(24_999);
  assert.equal(env.last().framesOf('ping').length, 0);
  await env.clock.advance(1); // t = 50 s: a whole period of silence
  assert.deepEqual(env.last().framesOf('ping'), [{ type: 'ping' }]);
  await env.clock.advance(9_000);
  env.last().receive({ type: 'pong' });
  await env.clock.advance(1_000); // t = 60 s: the pong came in time; a new period starts
  assert.equal(env.client.state, 'open');
  assert.equal(env.sockets.length, 1);
  await env.clock.advance(24_999);
  assert.equal(env.last().framesOf('ping').length, 1);
  await env.clock.advance(1);
  assert.equal(env.last().framesOf('ping').length, 2);
  env.client.close();
  assert.deepEqual(env.clock.pending, [], 'close() leaves no liveness timer');
});

test('liveness: timers that fire late (a throttled background tab: at most once a minute) never give up a connection that answers', async () => {
  const clock = new FakeClock();
  // Every timer of 1 s or more fires a minute late at the earliest, as in a hidden browser tab.
  const throttled = { now: () => clock.now(), setTimeout: (fn: () => void, ms: number) => clock.setTimeout(fn, ms >= 1000 ? Math.max(ms, 60_000) : ms), clearTimeout: (h: unknown) => clock.clearTimeout(h) };
  const env = setup({ clock: throttled, pingIntervalMs: 25_000, pongTimeoutMs: 10_000 });
  void env.client.connect();
  await settle();
  env.last().open();
  env.last().receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 });
  let answered = 0;
  for (let i = 0; i < 20; i++) {
    await clock.advance(30_000);
    // The server answers each ping at once.
    const pings = env.last().framesOf('ping').length;
    for (; answered < pings; answered++) env.last().receive({ type: 'pong' });
  }
  assert.ok(answered >= 4, `pings were sent and answered (${answered})`);
  assert.equal(env.sockets.length, 1, 'never reconnected');
  assert.equal(env.client.state, 'open');
  env.client.close();
});

test('liveness: no answer to a ping within pongTimeoutMs → the connection is given up, unconfirmed sends go out again on the next one', async () => {
  const env = setup({ pingIntervalMs: 25_000, pongTimeoutMs: 10_000 });
  const reasons: string[] = [];
  env.client.on('disconnected', (d) => reasons.push(d.reason));
  void env.client.connect();
  await env.accept();
  const sent = env.client.sendMessage({ conversationId: CONV }, 'into the void', { clientMsgId: 'cm-dead' });
  assert.equal(env.last().framesOf('chat_message').length, 1);
  await env.clock.advance(25_000);
  assert.equal(env.last().framesOf('ping').length, 1);
  await env.clock.advance(9_999);
  assert.equal(env.sockets.length, 1);
  await env.clock.advance(1);
  assert.deepEqual(env.sockets[0]!.closedWith, { code: 1000, reason: 'heartbeat_timeout' });
  assert.deepEqual(reasons, ['heartbeat_timeout']);
  assert.equal(env.client.state, 'reconnecting');
  await env.clock.advance(500); // backoff attempt 0 (random 0.5 → 500 ms)
  assert.equal(env.sockets.length, 2);
  await env.accept();
  assert.deepEqual(env.last().framesOf('chat_message'), [{ type: 'chat_message', conversationId: CONV, content: 'into the void', clientMsgId: 'cm-dead' }]);
  env.last().receive({ type: 'message_sent', id: 'mid-9', clientMsgId: 'cm-dead', conversationId: CONV, seq: 1, timestamp: 1 });
  assert.equal((await sent).id, 'mid-9');
  env.client.close();
});

test('liveness: pingIntervalMs 0 sends no ping and never gives a quiet connection up', async () => {
  const env = setup({ pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept();
  await env.clock.advance(600_000);
  assert.equal(env.last().framesOf('ping').length, 0);
  assert.equal(env.client.state, 'open');
  env.client.close();
});

test('generated clientMsgIds are m- + a UUIDv7 of the clock: later sends sort after earlier ones', async () => {
  const { newClientMsgId } = await import('../../src/client/client-msg-id.js');
  const env = setup();
  void env.client.connect();
  await env.accept();
  const t0 = env.clock.now();
  const sends = [env.client.sendMessage({ conversationId: CONV }, 'one')];
  await env.clock.advance(1);
  sends.push(env.client.sendMessage({ conversationId: CONV }, 'two'));
  const settled = Promise.allSettled(sends); // rejected by close() below: never confirmed
  const ids = env.last().framesOf('chat_message').map((f) => String(f.clientMsgId));
  assert.equal(ids.length, 2);
  for (const id of ids) assert.match(id, /^m-[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const timeOf = (id: string): number => parseInt(id.slice(2, 10) + id.slice(11, 15), 16);
  assert.deepEqual(ids.map(timeOf), [t0, t0 + 1], 'the first 48 bits are the send time in ms');
  assert.ok(ids[0]! < ids[1]!, 'time-ordered');
  // Many ids in one millisecond are still distinct; the time prefix decides the order across milliseconds.
  const same = new Set(Array.from({ length: 1000 }, () => newClientMsgId(5)));
  assert.equal(same.size, 1000);
  assert.ok(newClientMsgId(0xfff) < newClientMsgId(0x1000));
  assert.ok(newClientMsgId(Date.UTC(2030, 0, 1)) > newClientMsgId(Date.UTC(2029, 11, 31)));
  env.client.close();
  assert.deepEqual((await settled).map((r) => r.status), ['rejected', 'rejected']);
});

test('a store that fails to load is retried with backoff: a transient failure keeps the device and its position', async () => {
  let loads = 0;
  const store = {
    load: () => {
      if (++loads <= 2) throw new Error('storage busy');
      return { deviceId: 'dev-kept', pos: 7, ...MINE };
    },
    save: () => {},
  };
  const env = setup({ store, storeLoadAttempts: 3 });
  const errors: string[] = [];
  env.client.on('error', (e) => errors.push(`${e.reason}: ${e.details ?? ''}`));
  void env.client.connect();
  await settle();
  assert.equal(env.sockets.length, 0, 'no socket before the state is known');
  await env.clock.advance(500); // backoff attempt 0 (random 0.5 → 500 ms)
  assert.equal(env.sockets.length, 0);
  await env.clock.advance(1000); // attempt 1 → 1000 ms
  assert.equal(loads, 3);
  await settle();
  env.last().open();
  assert.deepEqual(env.last().framesOf('auth')[0], { type: 'auth', token: env.last().framesOf('auth')[0]!.token, deviceId: 'dev-kept', after: 7 });
  assert.deepEqual(errors, ['store_failed: storage busy', 'store_failed: storage busy']);
  env.client.close();
});

test('a store that never loads: after storeLoadAttempts the client goes on as a new device; close() while waiting leaves nothing', async () => {
  const broken = { load: (): never => { throw new Error('no storage'); }, save: () => {} };
  const env = setup({ store: broken, storeLoadAttempts: 2 });
  const errors: string[] = [];
  env.client.on('error', (e) => errors.push(e.reason));
  void env.client.connect();
  await settle();
  await env.clock.advance(500);
  await settle();
  assert.equal(errors.length, 2);
  env.last().open();
  const auth = env.last().framesOf('auth')[0]!;
  assert.match(String(auth.deviceId), /^dev-/);
  assert.equal(auth.after, undefined, 'a new device names no position');
  env.client.close();

  const again = setup({ store: broken, storeLoadAttempts: 5 });
  const closed = again.client.connect().then(() => 'connected', (e: Error) => e.message);
  await settle();
  again.client.close();
  assert.match(await closed, /closed|client/);
  assert.deepEqual(again.clock.pending, [], 'no retry timer left');
  await again.clock.advance(60_000);
  assert.equal(again.sockets.length, 0);
});

test('a deviceId option the server would refuse throws at construction (not a 4002 on every auth, reconnecting forever)', async () => {
  const bad: [unknown, typeof TypeError | typeof RangeError][] = [
    ['', RangeError],
    ['x'.repeat(65), RangeError],
    ['my device', RangeError],
    ['tab\t', RangeError],
    ['appareil-é', RangeError],
    ['del\x7f', RangeError],
    [42, TypeError],
    [null, TypeError],
  ];
  for (const [deviceId, kind] of bad) {
    let created = 0;
    assert.throws(
      () => setup({ deviceId: deviceId as string, createSocket: () => { created++; return new FakeSocket('ws://rampart.test/ws'); } }),
      (err: unknown) => err instanceof kind && /deviceId: 1\.\.64 printable ASCII characters, no spaces/.test((err as Error).message),
      JSON.stringify(deviceId),
    );
    assert.equal(created, 0);
  }
  // At the bounds: accepted and sent as given.
  for (const deviceId of ['!', '~'.repeat(64), 'dev-0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b']) {
    const env = setup({ deviceId });
    void env.client.connect();
    await settle();
    env.last().open();
    assert.equal(env.last().framesOf('auth')[0]!.deviceId, deviceId);
    env.client.close();
  }
});

test('a stored state the server would refuse (bad deviceId or pos) is not used: store_failed, then a new device at once', async () => {
  for (const state of [{ deviceId: 'my device', pos: 3 }, { deviceId: 'x'.repeat(65), pos: 3 }, { deviceId: 'dev-ok', pos: -1 }, { deviceId: 'dev-ok', pos: 1.5 }]) {
    const env = setup({ store: new MemorySyncStore(state) });
    const errors: string[] = [];
    env.client.on('error', (e) => errors.push(e.reason));
    void env.client.connect();
    await settle();
    assert.equal(env.sockets.length, 1, 'no retry of the load: the state would be the same');
    env.last().open();
    const auth = env.last().framesOf('auth')[0]!;
    assert.match(String(auth.deviceId), /^dev-[0-9a-f-]{36}$/, JSON.stringify(state));
    assert.equal(auth.after, undefined, 'a new device names no position');
    assert.deepEqual(errors, ['store_failed']);
    env.client.close();
  }
});

// ── refusals that name no frame, and frames the server could only refuse ──

/** How a promise stands once pending callbacks ran, without moving the clock: settled, or 'pending'. */
async function standing<T>(p: Promise<T>): Promise<{ value: T } | { error: unknown } | 'pending'> {
  return Promise.race([p.then((value) => ({ value }), (error: unknown) => ({ error })), settle().then(() => 'pending' as const)]);
}

for (const [what, refusal, wait] of [
  ['rate_limited frame_limit (the frame budget, or the request budget refusing an ack)', { type: 'rate_limited', reason: 'frame_limit', retryAfter: 300 }, 300],
  ['error storage_unavailable', { type: 'error', reason: 'storage_unavailable' }, 2000],
  ['error internal_error (a failed limiter)', { type: 'error', reason: 'internal_error' }, 2000],
] as const) {
  test(`an ack answered by ${what}, naming no frame, is sent again after ${wait} ms though pos did not move`, async () => {
    const env = setup({ ackDelayMs: 100, pingIntervalMs: 0 });
    const errors: string[] = [];
    env.client.on('error', (e) => errors.push(e.reason));
    void env.client.connect();
    await env.accept(0, 2);
    env.last().receive(msg(1));
    env.last().receive(msg(2));
    await env.clock.advance(100);
    assert.deepEqual(env.last().framesOf('ack'), [{ type: 'ack', upTo: 2 }]);
    env.last().receive(refusal);
    assert.deepEqual(errors, [refusal.reason], 'still reported');
    await env.clock.advance(wait - 1);
    assert.equal(env.last().framesOf('ack').length, 1, 'nothing before the wait');
    await env.clock.advance(1);
    assert.deepEqual(env.last().framesOf('ack'), [{ type: 'ack', upTo: 2 }, { type: 'ack', upTo: 2 }]);
    await env.clock.advance(60_000);
    assert.equal(env.last().framesOf('ack').length, 2, 'once');
    env.client.close();
  });
}

test('during the frame budget wait nothing goes out; events processed meanwhile are acknowledged when it ends', async () => {
  const env = setup({ ackDelayMs: 100, ackEvery: 1 });
  void env.client.connect();
  await env.accept(0, 3);
  env.last().receive(msg(1));
  assert.deepEqual(env.last().framesOf('ack'), [{ type: 'ack', upTo: 1 }]);
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 400 });
  env.last().receive(msg(2));
  env.last().receive(msg(3));
  assert.equal(env.client.setTyping({ conversationId: CONV }, true), false, 'a typing indicator would only be refused');
  const list = env.client.listConversations();
  await env.clock.advance(399);
  assert.equal(env.last().framesOf('ack').length, 1);
  assert.equal(env.last().framesOf('list_conversations').length, 0, 'a request made during the wait waits too');
  await env.clock.advance(1);
  assert.deepEqual(env.last().framesOf('ack'), [{ type: 'ack', upTo: 1 }, { type: 'ack', upTo: 3 }]);
  assert.equal(env.last().framesOf('list_conversations').length, 1);
  assert.equal(env.client.setTyping({ conversationId: CONV }, true), true);
  env.last().receive({ type: 'conversations', conversations: [], requestId: env.last().framesOf('list_conversations')[0]!.requestId });
  assert.deepEqual((await list).conversations, []);
  env.client.close();
});

test('requests in flight at a refusal naming no frame: reads and keyed creates are asked again after the wait, changes fail with unconfirmed in 2 s, not at the 15 s timeout', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const hist = env.client.history({ conversationId: CONV, limit: 10 });
  const list = env.client.listConversations();
  const created = env.client.createGroup('g', [PEER]);
  const group = env.client.addMembers(CONV, [PEER]);
  const rename = env.client.renameGroup(CONV, 'new name');
  const [h1, l1, r1, c1] = [env.last().framesOf('history')[0]!, env.last().framesOf('list_conversations')[0]!, env.last().framesOf('rename_group')[0]!, env.last().framesOf('create_group')[0]!];
  assert.equal(typeof c1.clientMsgId, 'string', 'a create goes out under a key');
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 500 });
  // The list and the rename were not the dropped frames: their answers come, and they resolve.
  env.last().receive({ type: 'conversations', conversations: [], requestId: l1.requestId });
  env.last().receive({ type: 'group_updated', conversationId: CONV, changed: true, seq: 4, requestId: r1.requestId });
  assert.deepEqual(await rename, { conversationId: CONV, changed: true, seq: 4 });
  await env.clock.advance(499);
  assert.equal(env.last().framesOf('history').length, 1, 'nothing before retryAfter');
  await env.clock.advance(1);
  assert.deepEqual(env.last().framesOf('history'), [h1, h1], 'the read is asked again, under the same requestId');
  assert.equal(env.last().framesOf('list_conversations').length, 1, 'an answered request is not');
  assert.deepEqual(env.last().framesOf('create_group'), [c1, c1], 'a keyed create is asked again: its repeat is answered with the first group');
  assert.equal(env.last().framesOf('add_members').length, 1, 'another change is never repeated (it could undo a later one)');
  env.last().receive({ type: 'group_updated', conversationId: CONV, changed: false, seq: 1, requestId: c1.requestId });
  assert.deepEqual(await created, { conversationId: CONV, changed: false, seq: 1 });
  env.last().receive({ type: 'history', conversationId: CONV, messages: [], requestId: h1.requestId });
  env.last().receive({ type: 'history', conversationId: CONV, messages: [msg(9)], requestId: h1.requestId }); // a second answer: dropped
  assert.deepEqual((await hist).messages, []);
  assert.deepEqual((await list).conversations, []);
  await env.clock.advance(1499);
  assert.equal(await standing(group), 'pending', 'a change may still be answered');
  await env.clock.advance(1);
  const outcome = await standing(group);
  assert.ok(typeof outcome === 'object' && 'error' in outcome && outcome.error instanceof RequestError && outcome.error.reason === 'unconfirmed', `got ${JSON.stringify(outcome)}`);
  env.client.close();
});

test('a read still unanswered after a refusal naming no frame keeps its original timeout; one repeated is not failed by a drop', async () => {
  const env = setup({ requestTimeoutMs: 3000 });
  void env.client.connect();
  await env.accept();
  const presence = env.client.getPresence(CONV).then(() => 'answered', (e: RequestError) => e.reason);
  const change = env.client.setPresenceVisible(false).then(() => 'answered', (e: RequestError) => e.reason);
  await env.clock.advance(2500);
  env.last().receive({ type: 'error', reason: 'internal_error' });
  await env.clock.advance(499);
  assert.equal(await standing(change), 'pending');
  await env.clock.advance(1);
  assert.deepEqual(await standing(change), { value: 'timeout' }, 'never later than requestTimeoutMs');
  await env.clock.advance(2000);
  assert.equal(env.last().framesOf('presence').length, 1, 'timed out before the wait (2 s) was over: not asked again');
  assert.equal(await presence, 'timeout');

  const again = env.client.getPresence(CONV);
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 800 });
  env.last().drop(1006); // while it waits to go again, it is not on the wire: it goes on the next socket
  await env.clock.advance(500);
  await env.accept();
  await env.clock.advance(300);
  const pr = env.last().framesOf('presence');
  assert.equal(pr.length, 1);
  env.last().receive({ type: 'presence', conversationId: CONV, online: [ME], requestId: pr[0]!.requestId });
  assert.deepEqual(await again, { conversationId: CONV, online: [ME] });
  env.client.close();
});

test('sends in flight at internal_error (naming no frame) go again under their clientMsgId; answered twice, the application sees one sent', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const a = env.client.sendMessage({ conversationId: CONV }, 'a', { clientMsgId: 'ca' });
  const e = env.client.editMessage(M1, 'new', { clientMsgId: 'ce' });
  env.last().receive({ type: 'error', reason: 'internal_error' });
  await env.clock.advance(1999); // random 0.5, base 1000 → 1000 + 1000
  assert.equal(env.last().framesOf('chat_message').length + env.last().framesOf('edit_message').length, 2);
  await env.clock.advance(1);
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['ca', 'ca']);
  assert.deepEqual(env.last().framesOf('edit_message').map((f) => f.clientMsgId), ['ce', 'ce']);
  // The first copy had been stored: it is answered with its pos, the repeat as a duplicate.
  const sentFrame = { type: 'message_sent', id: 'ia', clientMsgId: 'ca', conversationId: CONV, seq: 1, timestamp: 1 };
  env.last().receive({ ...sentFrame, pos: 1 });
  env.last().receive(sentFrame);
  const changed = { type: 'message_changed', action: 'edited', messageId: M1, conversationId: CONV, seq: 2, clientMsgId: 'ce' };
  env.last().receive(changed);
  env.last().receive(changed);
  assert.equal((await a).id, 'ia');
  assert.equal((await e).seq, 2);
  assert.deepEqual(env.seen.map((s) => s.id), ['ia'], 'one sent event');
  assert.equal(env.client.pos, 1);
  assert.equal(env.client.pendingSends, 0);
  env.client.close();
});

test('a token refresh dropped by the frame budget is made again after the wait; an answered one is not', async () => {
  const env = setup({ pingIntervalMs: 0, refresh: { marginMs: 30_000, minDelayMs: 1000 } });
  void env.client.connect();
  await env.accept();
  await env.clock.advance(3_570_000); // 1-hour token: refreshed 30 s before exp
  assert.equal(env.last().framesOf('auth').length, 2);
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 250 });
  await env.clock.advance(249);
  assert.equal(env.last().framesOf('auth').length, 2);
  await env.clock.advance(1);
  assert.equal(env.last().framesOf('auth').length, 3, 'made again');
  env.last().receive({ type: 'auth_success', userId: ME });
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 250 });
  await env.clock.advance(1000);
  assert.equal(env.last().framesOf('auth').length, 3, 'answered: not again');
  assert.equal(env.client.state, 'open');
  env.client.close();
});

test('a caller-supplied clientMsgId the server would refuse is rejected at once: never queued, sent or resent', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const detail = 'clientMsgId: 1..64 printable ASCII characters, no spaces';
  for (const id of ['', 'has space', 'x'.repeat(65), 'café', 'tab\t', 'del\x7f']) {
    const attempts: Promise<unknown>[] = [
      env.client.sendMessage({ conversationId: CONV }, 'x', { clientMsgId: id }),
      env.client.editMessage(M1, 'x', { clientMsgId: id }),
      env.client.deleteMessage(M1, { clientMsgId: id }),
    ];
    for (const p of attempts) {
      const s = await standing(p);
      assert.ok(typeof s === 'object' && 'error' in s, `${JSON.stringify(id)}: rejected at once`);
      const err = s.error;
      assert.ok(err instanceof SendError && err.reason === 'validation_failed' && err.detail === detail && err.clientMsgId === id, String(err));
    }
  }
  assert.equal(env.client.pendingSends, 0);
  env.last().drop(1006);
  await env.clock.advance(500);
  await env.accept();
  for (const s of env.sockets) assert.deepEqual([...s.framesOf('chat_message'), ...s.framesOf('edit_message'), ...s.framesOf('delete_message')], []);
  // At the bounds: sent.
  env.client.sendMessage({ conversationId: CONV }, 'x', { clientMsgId: '!'.repeat(63) + '~' }).catch(() => {});
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['!'.repeat(63) + '~']);
  env.client.close();
});

test('a request the server would refuse (names, member lists, limits, ids) rejects at once with validation_failed; nothing is sent', async () => {
  const env = setup();
  void env.client.connect();
  const many = (n: number) => Array.from({ length: n }, (_, i) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`);
  const bad: [() => Promise<unknown>, string][] = [
    [() => env.client.createGroup('', [PEER]), 'name: 1..100 characters'],
    [() => env.client.createGroup('n'.repeat(101), [PEER]), 'name: 1..100 characters'],
    [() => env.client.createGroup('g', many(257)), 'memberIds: 0..256 UUIDs'],
    [() => env.client.createGroup('g', [PEER, 'bob']), 'memberIds: UUIDs only'],
    [() => env.client.addMembers(CONV, []), 'userIds: 1..256 UUIDs'],
    [() => env.client.addMembers(CONV, many(257)), 'userIds: 1..256 UUIDs'],
    [() => env.client.removeMembers(CONV, ['u2']), 'userIds: UUIDs only'],
    [() => env.client.renameGroup(CONV, 'n'.repeat(101)), 'name: 1..100 characters'],
    [() => env.client.renameGroup('c1', 'n'), 'conversationId: a UUID'],
    [() => env.client.setRole(CONV, 'u', 'admin'), 'userId: a UUID'],
    [() => env.client.leaveGroup('c1'), 'conversationId: a UUID'],
    [() => env.client.history({ conversationId: CONV, limit: 101 }), 'limit: an integer from 1 to 100'],
    [() => env.client.history({ conversationId: CONV, limit: 0 }), 'limit: an integer from 1 to 100'],
    [() => env.client.history({ conversationId: CONV, beforeSeq: -1 }), 'beforeSeq: an integer from 0 to 2^53 − 1'],
    [() => env.client.history({ peerId: 'p' }), 'peerId: a UUID'],
    [() => env.client.listConversations({ limit: 101 }), 'limit: an integer from 1 to 100'],
    [() => env.client.listConversations({ before: '' }), 'before: 1..200 characters (a nextCursor)'],
    [() => env.client.markRead(CONV, 1.5), 'upToSeq: an integer from 0 to 2^53 − 1'],
    [() => env.client.getPresence('c'), 'conversationId: a UUID'],
    [() => env.client.endSession('n1 42'), 'sessionId: 1..128 printable ASCII characters, no spaces'],
  ];
  const check = async () => {
    for (const [call, detail] of bad) {
      const s = await standing(call());
      assert.ok(typeof s === 'object' && 'error' in s, `${detail}: rejected at once`);
      assert.ok(s.error instanceof RequestError && s.error.reason === 'validation_failed' && s.error.detail === detail, String(s.error));
    }
  };
  await check(); // before the socket is open
  await env.accept();
  await check();
  const types = ['create_group', 'add_members', 'remove_members', 'rename_group', 'set_role', 'leave_group', 'history', 'list_conversations', 'read', 'presence', 'end_session'];
  assert.deepEqual(env.last().sent.filter((f) => types.includes(String(f.type))), []);
  assert.ok(!env.clock.pending.includes(15_000), 'no request timer left waiting');
  // At the bounds: sent. Only the protocol's fields go out.
  const ignore = () => {};
  env.client.createGroup('n'.repeat(100), many(256)).catch(ignore);
  env.client.history({ conversationId: CONV, limit: 100, beforeSeq: 0, extra: 1 } as never).catch(ignore);
  env.client.listConversations({ limit: 100, before: 'c'.repeat(200) }).catch(ignore);
  assert.equal(env.last().framesOf('create_group').length, 1);
  assert.deepEqual({ ...env.last().framesOf('history')[0], requestId: undefined }, { type: 'history', conversationId: CONV, beforeSeq: 0, limit: 100, requestId: undefined });
  assert.equal(env.last().framesOf('list_conversations').length, 1);
  env.client.close();
});

test('setTyping with a target the server would refuse throws a TypeError at once, online or not; nothing is sent', async () => {
  const env = setup();
  const bad: [unknown, unknown, string][] = [
    [{ conversationId: 'c1' }, true, 'setTyping: conversationId: a UUID'],
    [{ recipientId: 'bob' }, false, 'setTyping: recipientId: a UUID'],
    [{ conversationId: 42 }, true, 'setTyping: conversationId: a UUID'],
    [{ conversationId: CONV, recipientId: PEER }, true, 'setTyping: target: exactly one of conversationId and recipientId'],
    [{}, true, 'setTyping: target: exactly one of conversationId and recipientId'],
    [null, true, 'setTyping: target: exactly one of conversationId and recipientId'],
    [{ conversationId: CONV }, 'yes', 'setTyping: isTyping: a boolean'],
  ];
  const check = () => {
    for (const [target, isTyping, message] of bad) {
      assert.throws(() => env.client.setTyping(target as never, isTyping as never), (err: unknown) => err instanceof TypeError && err.message === message, message);
    }
  };
  check(); // before connecting: a programming error, not a connection state
  void env.client.connect();
  await env.accept();
  check();
  assert.deepEqual(env.last().framesOf('typing_indicator'), [], 'no frame the server could only refuse (a strike towards 4029)');
  // Valid: sent, naming only the target's id (an object with more fields, such as a conversation from
  // listConversations(), would otherwise put keys on the wire that the strict schema refuses).
  const conversation = { conversationId: CONV, kind: 'group', name: 'g', unreadCount: 0 };
  assert.equal(env.client.setTyping(conversation as never, true), true);
  assert.equal(env.client.setTyping({ conversationId: undefined, recipientId: PEER } as never, false), true);
  assert.deepEqual(env.last().framesOf('typing_indicator'), [
    { type: 'typing_indicator', conversationId: CONV, isTyping: true },
    { type: 'typing_indicator', recipientId: PEER, isTyping: false },
  ]);
  env.client.close();
});

test('sendMessage: a target naming both ids is refused before queueing; only the target id goes on the wire', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  // Compiles: TypeScript does not flag a key of another member of the Target union.
  const both = env.client.sendMessage({ conversationId: CONV, recipientId: PEER }, 'x', { clientMsgId: 'c-both' });
  const s = await standing(both);
  assert.ok(typeof s === 'object' && 'error' in s, 'rejected at once (the server\'s refusal would name no clientMsgId: resent on every reconnect)');
  assert.ok(s.error instanceof SendError && s.error.reason === 'validation_failed' && s.error.detail === 'target: exactly one of conversationId and recipientId', String(s.error));
  assert.equal(env.client.pendingSends, 0);
  const conversation = { conversationId: CONV, kind: 'direct', peerId: PEER, unreadCount: 0 };
  env.client.sendMessage(conversation as never, 'hi', { clientMsgId: 'c-conv' }).catch(() => {});
  assert.deepEqual(env.last().framesOf('chat_message'), [{ type: 'chat_message', conversationId: CONV, content: 'hi', clientMsgId: 'c-conv' }]);
  env.client.close();
});

test('a token refresh due during the server-requested wait goes out right after it, not into it', async () => {
  const env = setup({ pingIntervalMs: 0, refresh: { marginMs: 30_000, minDelayMs: 1000 } });
  void env.client.connect();
  await env.accept();
  await env.clock.advance(3_569_900); // the 1-hour token is refreshed at 3 570 000 (30 s before exp)
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 300 });
  await env.clock.advance(100);
  assert.equal(env.last().framesOf('auth').length, 1, 'due, but the wait runs: an auth now would be refused (a strike)');
  await env.clock.advance(199);
  assert.equal(env.last().framesOf('auth').length, 1);
  await env.clock.advance(1); // the wait is over
  assert.equal(env.last().framesOf('auth').length, 2);
  assert.equal(env.tokenCalls(), 2, 'the token fetched when due is the one sent');
  // Unanswered, it is made again after a further refusal naming no frame; answered, the next one comes on schedule.
  env.last().receive({ type: 'auth_success', userId: ME });
  await env.clock.advance(3_000_000);
  assert.equal(env.last().framesOf('auth').length, 2);
  assert.equal(env.client.state, 'open');
  env.client.close();
  assert.deepEqual(env.clock.pending, []);
});

test('liveness: a ping due during the server-requested wait is held until it ends; the pong timeout counts from the ping sent', async () => {
  const env = setup({ pingIntervalMs: 1000, pongTimeoutMs: 500 });
  const gaveUp: number[] = [];
  void env.client.connect();
  await env.accept();
  const t0 = env.clock.now();
  const t = () => env.clock.now() - t0;
  env.client.on('disconnected', () => gaveUp.push(t()));
  const pings = () => env.last().framesOf('ping').length;
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 3000 }); // heard; the wait runs to 3000
  await env.clock.advance(2999); // a period of silence ended at 2000: a ping is due, and held
  assert.equal(pings(), 0, 'a ping now would only be refused again');
  assert.equal(env.client.state, 'open', 'not given up over a ping the SDK held back (2000 + pongTimeoutMs passed)');
  await env.clock.advance(1); // t = 3000: the wait is over
  assert.equal(pings(), 1);
  await env.clock.advance(400);
  env.last().receive({ type: 'pong' }); // within pongTimeoutMs of the ping sent
  await env.clock.advance(100); // t = 3500: answered, a new period starts
  assert.equal(env.client.state, 'open');

  // A frame heard while a ping is held proves the connection alive: no ping when the wait ends.
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 3000 }); // the wait runs to 6500
  await env.clock.advance(2500); // t = 6000: silent since 4500, the ping due at 5500 is held
  assert.equal(pings(), 1);
  env.last().receive(msg(1));
  await env.clock.advance(500); // t = 6500
  assert.equal(pings(), 1, 'heard during the hold: nothing to ask');

  // Silent from here on: a ping at 7500, given up at 8000 — as without a wait.
  await env.clock.advance(999);
  assert.equal(pings(), 1);
  await env.clock.advance(1);
  assert.equal(pings(), 2);
  await env.clock.advance(1000);
  assert.deepEqual(gaveUp, [8000]);
  env.client.close();
});

test('liveness: a dead connection during a long wait is given up at most pongTimeoutMs after the wait ends', async () => {
  const env = setup({ pingIntervalMs: 1000, pongTimeoutMs: 500 });
  const at: number[] = [];
  void env.client.connect();
  await env.accept();
  const t0 = env.clock.now();
  env.client.on('disconnected', () => at.push(env.clock.now() - t0));
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 3000 }); // the last frame ever received
  await env.clock.advance(10_000);
  // Ping held from 2000 to 3000, sent at 3000; no answer by 3500 (plus the one confirming turn).
  assert.deepEqual(at, [3500]);
  assert.equal(env.sockets[0]!.framesOf('ping').length, 1);
  env.client.close();

  // A clock stepped back an hour during the wait cannot stretch the hold past the wait asked for.
  const clock = new FakeClock();
  let step = 0;
  const stepped = { now: () => clock.now() + step, setTimeout: (fn: () => void, ms: number) => clock.setTimeout(fn, ms), clearTimeout: (h: unknown) => clock.clearTimeout(h) };
  const env2 = setup({ clock: stepped, pingIntervalMs: 1000, pongTimeoutMs: 500 });
  const at2: number[] = [];
  void env2.client.connect();
  await settle();
  env2.last().open();
  env2.last().receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 });
  const s0 = clock.now();
  env2.client.on('disconnected', () => at2.push(clock.now() - s0));
  env2.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 3000 });
  await clock.advance(1500);
  step = -3_600_000;
  await clock.advance(10_000);
  // What is left of the wait cannot be known any more; it is taken as the whole wait, never more:
  // the ping due at 2000 goes at 5000 (not an hour later), the connection is given up at 5500.
  assert.deepEqual(at2, [5500]);
  env2.client.close();
});

/** The socket drops; the client reconnects after its backoff delay (the socket is not yet accepted). */
async function dropAndReconnect(env: ReturnType<typeof setup>): Promise<void> {
  let retryIn = -1;
  env.client.on('disconnected', (d) => (retryIn = d.retryInMs ?? -1));
  env.last().drop(1006);
  await env.clock.advance(retryIn);
}

test('a wait asked for dropped frames holds only its own socket: after a reconnect, sends go at once', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 30_000 });
  await dropAndReconnect(env);
  assert.equal(env.sockets.length, 2);
  await env.accept();
  const sent = env.client.sendMessage({ conversationId: CONV }, 'hello', { clientMsgId: 'cm-after-reconnect' });
  assert.equal(env.last().framesOf('chat_message').length, 1, 'not held for the old socket\'s 30 s');
  env.last().receive({ type: 'message_sent', id: '018bcfe5-6800-7000-8000-000000000001', timestamp: 1, conversationId: CONV, seq: 1, clientMsgId: 'cm-after-reconnect', pos: 1 });
  await sent;
  env.client.close();
});

test('a send in flight when the server asked for a wait goes first on the next socket: order kept across the reconnect', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const first = env.client.sendMessage({ conversationId: CONV }, 'one', { clientMsgId: 'cm-1' });
  assert.equal(env.last().framesOf('chat_message').length, 1);
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 30_000 });
  await dropAndReconnect(env);
  await env.accept();
  const second = env.client.sendMessage({ conversationId: CONV }, 'two', { clientMsgId: 'cm-2' });
  assert.deepEqual(
    env.last().framesOf('chat_message').map((f) => f.clientMsgId),
    ['cm-1', 'cm-2'],
    'the older send first, at once',
  );
  env.last().receive({ type: 'message_sent', id: '018bcfe5-6800-7000-8000-000000000001', timestamp: 1, conversationId: CONV, seq: 1, clientMsgId: 'cm-1', pos: 1 });
  env.last().receive({ type: 'message_sent', id: '018bcfe5-6800-7000-8000-000000000002', timestamp: 2, conversationId: CONV, seq: 2, clientMsgId: 'cm-2', pos: 2 });
  await Promise.all([first, second]);
  env.client.close();
});

// ── close() from a listener, storage retries in order, backoff that survives auth, getToken() timeouts ──

test('close() from a state listener on "reconnecting" stops the client: no timer, no new socket, nothing acked or stored', async () => {
  const store = new MemorySyncStore({ deviceId: 'dev-1', pos: 0, ...MINE });
  const env = setup({ store, pingIntervalMs: 0 });
  void env.client.connect().catch(() => {});
  await env.accept(0, 0);
  env.client.on('state', (s) => (s.state === 'reconnecting' ? env.client.close() : undefined));
  env.last().drop(1006);
  assert.equal(env.client.state, 'closed');
  assert.deepEqual(env.clock.pending, [], 'no reconnect timer');
  await env.clock.advance(60_000);
  assert.equal(env.sockets.length, 1, 'never reconnected');
  assert.equal(env.client.state, 'closed');
  assert.deepEqual(env.seen, []);
  assert.deepEqual(store.load(), { deviceId: 'dev-1', pos: 0, ...MINE }, 'no position the application never saw');
});

test('close() from a state listener on "authenticating" sends no auth on the closed socket', async () => {
  const env = setup();
  void env.client.connect().catch(() => {});
  env.client.on('state', (s) => (s.state === 'authenticating' ? env.client.close() : undefined));
  await settle();
  env.last().open();
  assert.equal(env.client.state, 'closed');
  assert.deepEqual(env.last().sent, []);
  assert.deepEqual(env.clock.pending, []);
});

test('a send retried after storage_unavailable keeps its place: later sends wait behind it, also across a reconnect', async () => {
  const env = setup({ pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept();
  const a = env.client.sendMessage({ conversationId: CONV }, 'A', { clientMsgId: 'a' });
  env.last().receive({ type: 'error', reason: 'storage_unavailable', clientMsgId: 'a' });
  const b = env.client.sendMessage({ conversationId: CONV }, 'B', { clientMsgId: 'b' });
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['a'], 'B waits behind A');
  await env.clock.advance(1999); // retry delay: random 0.5, base 1000 → 1000 + 1000
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['a']);
  await env.clock.advance(1);
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['a', 'a', 'b'], 'the older send first');
  env.last().receive({ type: 'message_sent', id: 'ia', clientMsgId: 'a', conversationId: CONV, seq: 1, timestamp: 1, pos: 1 });
  env.last().receive({ type: 'message_sent', id: 'ib', clientMsgId: 'b', conversationId: CONV, seq: 2, timestamp: 1, pos: 2 });
  assert.deepEqual([(await a).id, (await b).id], ['ia', 'ib']);

  // Two edits of one message: the stale one must never land after the newer one.
  const e1 = env.client.editMessage(M1, 'v1', { clientMsgId: 'e1' });
  env.last().receive({ type: 'error', reason: 'storage_unavailable', clientMsgId: 'e1' });
  const e2 = env.client.editMessage(M1, 'v2', { clientMsgId: 'e2' });
  // The socket drops during the wait: on the next one the edits still go in their order.
  await dropAndReconnect(env);
  await env.accept(2, 2);
  await env.clock.advance(3000);
  assert.deepEqual(env.last().framesOf('edit_message').map((f) => f.content), ['v1', 'v2']);
  env.last().receive({ type: 'message_changed', action: 'edited', messageId: M1, conversationId: CONV, seq: 3, clientMsgId: 'e1' });
  env.last().receive({ type: 'message_changed', action: 'edited', messageId: M1, conversationId: CONV, seq: 4, clientMsgId: 'e2' });
  assert.deepEqual([(await e1).seq, (await e2).seq], [3, 4]);
  env.client.close();
});

test('close() from a "sent" listener: the send just confirmed resolves; the position covers it', async () => {
  const store = new MemorySyncStore({ deviceId: 'dev-1', pos: 0, ...MINE });
  const env = setup({ store });
  void env.client.connect();
  await env.accept(0, 0);
  const p = env.client.sendMessage({ conversationId: CONV }, 'x', { clientMsgId: 'x' });
  let sent = 0;
  env.client.on('sent', () => {
    sent++;
    env.client.close();
  });
  env.last().receive({ type: 'message_sent', id: 'idx', clientMsgId: 'x', conversationId: CONV, seq: 1, timestamp: 1, pos: 1 });
  assert.equal(sent, 1);
  assert.equal(await p.then((r) => `resolved ${r.id}`, (e: SendError) => `rejected ${e.reason}`), 'resolved idx');
  assert.deepEqual(store.load(), { deviceId: 'dev-1', pos: 1, ...MINE });
});

test('close() from a timeline listener saves the position with that event: it is not handed over again after a restart', async () => {
  for (const event of ['message', 'edited'] as const) {
    const store = new MemorySyncStore({ deviceId: 'dev-1', pos: 0, ...MINE });
    const env = setup({ store });
    void env.client.connect();
    await env.accept(0, 2);
    const handed: [number, number][] = []; // [the event's pos, the client's pos then]
    const stop = (e: { pos: number }): void => {
      handed.push([e.pos, env.client.pos]);
      env.client.close();
    };
    if (event === 'message') env.client.on('message', stop);
    else env.client.on('edited', stop);
    env.last().receive(event === 'message' ? msg(1) : edited(1, 'm1'));
    assert.deepEqual(handed, [[1, 1]], `${event}: the position covers the event being handed over`);
    assert.deepEqual(store.load(), { deviceId: 'dev-1', pos: 1, ...MINE }, event);
    assert.deepEqual(env.last().framesOf('ack'), [{ type: 'ack', upTo: 1 }], event);
  }
});

test('a server that closes right after auth_success: the reconnect delays keep growing; a connection that stayed up starts them over', async () => {
  const env = setup({ pingIntervalMs: 0, stableConnectionMs: 5000 });
  const delays: number[] = [];
  env.client.on('disconnected', (d) => delays.push(d.retryInMs ?? -1));
  void env.client.connect();
  await env.accept();
  for (let i = 0; i < 5; i++) {
    env.last().drop(1006);
    await env.clock.advance(delays.at(-1)!);
    await env.accept();
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 4000], 'random 0.5 → half of min(8000, 1000·2^n)');
  await env.clock.advance(4999);
  env.last().drop(1006);
  assert.equal(delays.at(-1), 4000, 'up for less than stableConnectionMs: still backing off');
  await env.clock.advance(4000);
  await env.accept();
  await env.clock.advance(5000);
  env.last().drop(1006);
  assert.equal(delays.at(-1), 500, 'up for stableConnectionMs: the backoff starts over');
  env.client.close();
});

test('repeated gaps reconnect with jittered, growing delays, not at 0 ms each time', async () => {
  const env = setup({ pingIntervalMs: 0, random: () => 0.25 });
  const delays: number[] = [];
  env.client.on('disconnected', (d) => delays.push(d.retryInMs ?? -1));
  void env.client.connect();
  await env.accept(0, 5);
  for (let i = 0; i < 4; i++) {
    env.last().receive(msg(3)); // 1 and 2 never come: a gap, every time
    env.last().drop(1000, 'gap');
    await env.clock.advance(delays.at(-1)!);
    assert.equal(env.sockets.length, i + 2);
    await env.accept(0, 5);
  }
  assert.deepEqual(delays, [250, 500, 1000, 2000], 'random 0.25 → a quarter of min(8000, 1000·2^n)');
  env.client.close();
});

test('a getToken() that never answers is given up after connectTimeoutMs; the next attempt connects, the late token is ignored', async () => {
  const clock = new FakeClock();
  const sockets: FakeSocket[] = [];
  let calls = 0;
  let answerLate: (token: string) => void = () => {};
  const client = new RampartClient({
    url: 'ws://x/ws',
    token: () => {
      calls++;
      if (calls === 1) return new Promise<string>((resolve) => (answerLate = resolve));
      return fakeJwt(clock.now() + 3_600_000, ME);
    },
    createSocket: (u) => {
      const s = new FakeSocket(u);
      sockets.push(s);
      return s;
    },
    clock,
    random: () => 0.5,
    backoff: { baseMs: 1000, maxMs: 8000 },
    connectTimeoutMs: 3000,
    pingIntervalMs: 0,
  });
  const errors: string[] = [];
  client.on('error', (e) => errors.push(e.reason));
  const ready = client.connect();
  await settle(); // the store is read, getToken() asked
  assert.equal(calls, 1);
  await clock.advance(2999);
  assert.equal(client.state, 'connecting');
  assert.deepEqual(errors, []);
  await clock.advance(1);
  assert.deepEqual(errors, ['token_unavailable']);
  assert.equal(client.state, 'reconnecting');
  await clock.advance(500); // backoff attempt 0 (random 0.5 → 500 ms)
  assert.equal(calls, 2);
  assert.equal(sockets.length, 1);
  answerLate(fakeJwt(clock.now() + 3_600_000, ME));
  await settle();
  assert.equal(sockets.length, 1, 'the late token opens no second socket');
  sockets[0]!.open();
  sockets[0]!.receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 });
  await ready;
  assert.equal(client.state, 'open');
  await clock.advance(60_000);
  assert.equal(sockets.length, 1);
  client.close();
  assert.deepEqual(clock.pending, []);
});

test('FileSyncStore: a read error is retried (store_failed), not taken for "no state": the device keeps its saved position', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-sdk-'));
  try {
    const path = join(dir, 'state.json');
    mkdirSync(path); // the first read fails (EISDIR), as any read error other than a missing file would
    const env = setup({ store: new FileSyncStore(path), pingIntervalMs: 0 });
    const errors: string[] = [];
    env.client.on('error', (e) => errors.push(e.reason));
    void env.client.connect();
    await settle();
    assert.deepEqual(errors, ['store_failed']);
    assert.equal(env.sockets.length, 0, 'no socket before the state is known');
    rmSync(path, { recursive: true });
    writeFileSync(path, JSON.stringify({ deviceId: 'dev-keep', pos: 500, ...MINE }));
    await env.clock.advance(500); // backoff attempt 0 (random 0.5 → 500 ms)
    await env.accept(500, 900);
    assert.deepEqual(env.last().framesOf('auth')[0], { type: 'auth', token: env.last().framesOf('auth')[0]!.token, deviceId: 'dev-keep', after: 500 });
    env.client.close();
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { deviceId: 'dev-keep', pos: 500, ...MINE });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('FileSyncStore: an ill-formed file is reported (store_failed) and replaced by a new device at once, without retries', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-sdk-'));
  try {
    const path = join(dir, 'state.json');
    for (const bad of ['{"deviceId":"my device","pos":3}', '{not json']) {
      writeFileSync(path, bad);
      const env = setup({ store: new FileSyncStore(path), pingIntervalMs: 0 });
      const errors: string[] = [];
      env.client.on('error', (e) => errors.push(e.reason));
      void env.client.connect();
      await settle();
      assert.deepEqual(errors, ['store_failed'], bad);
      assert.equal(env.sockets.length, 1, 'a new device at once: reading again would read the same');
      await env.accept(0, 0);
      assert.match(String(env.last().framesOf('auth')[0]!.deviceId), /^dev-/);
      env.client.close();
      assert.equal(JSON.parse(readFileSync(path, 'utf8')).deviceId, env.client.deviceId, 'the next save replaces it');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resumed behind its position (the server resumes at what this device acknowledged): acks follow the replay, never ahead of it', async () => {
  const env = setup({ ackDelayMs: 100 });
  void env.client.connect();
  await env.accept(0, 0);
  for (const p of [1, 2, 3, 4, 5]) env.last().receive(msg(p));
  await env.clock.advance(100);
  assert.deepEqual(env.last().framesOf('ack'), [{ type: 'ack', upTo: 5 }]);
  for (const p of [6, 7]) env.last().receive(msg(p));
  env.last().drop(1006); // 6 and 7 processed, their ack never sent
  await env.clock.advance(500);
  await env.accept(5, 7); // the device acknowledged 5: the server replays 6 and 7
  await env.clock.advance(100);
  // The server caps an ack at what this session's stream sent (5 so far): nothing beyond that yet.
  assert.ok(env.last().framesOf('ack').every((a) => (a.upTo as number) <= 5), JSON.stringify(env.last().framesOf('ack')));
  for (const p of [6, 7]) env.last().receive(msg(p)); // replays of what the client had
  await env.clock.advance(100);
  assert.deepEqual(env.last().framesOf('ack').at(-1), { type: 'ack', upTo: 7 });
  assert.deepEqual(env.seen.map((m) => (m as TimelineMessage).pos), [1, 2, 3, 4, 5, 6, 7], 'each event once');
  env.client.close();
});

// ── found by the second SDK review (each failed before its fix) ──

test('a token valid for 60 days is refreshed marginMs before exp, not in a tight loop (timer delays past 2^31 − 1 ms)', async () => {
  const realNow = Date.now();
  const sockets: FakeSocket[] = [];
  let tokenCalls = 0;
  const client = new RampartClient({
    url: 'ws://rampart.test/ws',
    token: () => {
      tokenCalls++;
      return fakeJwt(realNow + 60 * 24 * 3_600_000, ME);
    },
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    pingIntervalMs: 0,
    // no `clock`: the system clock's setTimeout, whose longest delay is ~24.8 days
  });
  void client.connect();
  await settle();
  sockets[0]!.open();
  sockets[0]!.receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 });
  await new Promise((r) => setTimeout(r, 100));
  const auths = sockets[0]!.framesOf('auth').length;
  client.close();
  assert.equal(auths, 1, `auth frames sent in 100 ms: ${auths} (getToken called ${tokenCalls} times)`);
});

test('close() saves the position even when the previous save of that same position failed', async () => {
  let saved: SyncState | undefined;
  let failNext = false;
  const store: SyncStore = {
    load: () => undefined,
    save: (s) => {
      if (failNext) {
        failNext = false;
        throw new Error('EMFILE: too many open files');
      }
      saved = { ...s };
    },
  };
  const env = setup({ store });
  const errors: string[] = [];
  env.client.on('error', (e) => errors.push(e.reason));
  void env.client.connect();
  await env.accept();
  env.last().receive(msg(1));
  failNext = true; // a passing failure, just when the batched save runs
  await env.clock.advance(250);
  assert.deepEqual(errors, ['store_failed']);
  env.client.close();
  assert.equal(saved?.pos, 1, `stored pos after close(): ${saved?.pos}`);
});

test('1009 rejects only the largest send in flight; the others go again under their clientMsgId', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const outcome = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (e instanceof SendError ? e.reason : String(e)));
  const a = outcome(env.client.sendMessage({ conversationId: CONV }, 'small A', { clientMsgId: 'cid-a' }));
  const big = outcome(env.client.sendMessage({ conversationId: CONV }, 'x'.repeat(5000), { clientMsgId: 'cid-big' }));
  const c = outcome(env.client.sendMessage({ conversationId: CONV }, 'small C', { clientMsgId: 'cid-c' }));
  await settle();
  assert.equal(env.last().framesOf('chat_message').length, 3);
  // The server read A (and stored it; its message_sent was lost with the socket), then closed on the big one.
  env.last().drop(1009);
  assert.equal(await big, 'message_too_big');
  await env.clock.advance(1000);
  await env.accept();
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['cid-a', 'cid-c'], 'resent, in order');
  // The server answers A's resend with the first id (stored once), C's as new.
  env.last().receive({ type: 'message_sent', id: 'id-a', clientMsgId: 'cid-a', conversationId: CONV, seq: 1, timestamp: 1 });
  env.last().receive({ type: 'message_sent', id: 'id-c', clientMsgId: 'cid-c', conversationId: CONV, seq: 2, pos: 2, timestamp: 2 });
  assert.deepEqual([await a, await c], ['resolved', 'resolved']);
  env.client.close();
});

test('a send whose frame is over maxFrameBytes (counted in UTF-8) is refused at once, never sent', async () => {
  const env = setup({ maxFrameBytes: 4096 });
  void env.client.connect();
  await env.accept();
  // 2000 characters, 6000 bytes in UTF-8: over the limit though its string length is not.
  await assert.rejects(env.client.sendMessage({ conversationId: CONV }, '€'.repeat(2000)), { reason: 'message_too_big' });
  const ok = env.client.sendMessage({ conversationId: CONV }, '€'.repeat(1000), { clientMsgId: 'cid-ok' });
  await settle();
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['cid-ok']);
  env.last().receive({ type: 'message_sent', id: 'id-ok', clientMsgId: 'cid-ok', conversationId: CONV, seq: 1, pos: 1, timestamp: 1 });
  await ok;
  env.client.close();
});

test('markRead: a non-boolean `private` is refused before sending, not sent as a public read', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const read = env.client.markRead(CONV, 3, { private: 'yes' as unknown as boolean });
  await assert.rejects(read, { reason: 'validation_failed' });
  assert.deepEqual(env.last().framesOf('read'), []);
  env.client.close();
});

test('timeline_pruned at the end of the stream: the position it skips to is acknowledged, so the hole is not reported again at every reconnect', async () => {
  const env = setup();
  const pruned: unknown[] = [];
  env.client.on('pruned', (p) => pruned.push(p));
  void env.client.connect();
  await env.accept(0, 5);
  // Retention deleted positions 1..5, nothing after them yet: the server counts them as sent on this socket.
  env.last().receive({ type: 'timeline_pruned', after: 0, firstPos: 6 });
  await env.clock.advance(1000);
  assert.deepEqual(env.last().framesOf('ack').map((f) => f.upTo), [5]);
  assert.equal(env.client.pos, 5);
  // A server that did not get the ack reports the hole again: nothing in it is new to this client.
  env.last().drop(1006);
  await env.clock.advance(1000);
  await env.accept(0, 5);
  env.last().receive({ type: 'timeline_pruned', after: 0, firstPos: 6 });
  await settle();
  env.client.close();
  assert.equal(pruned.length, 1);
});

test('attachments go on the wire with only the keys the server knows (its schema is strict)', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  // Structurally an Attachment for TypeScript (an object from a file picker may carry more keys).
  const fromPicker = { type: 'image' as const, url: 'https://cdn.example.com/a.png', name: 'a.png', size: 1234 };
  void env.client.sendMessage({ conversationId: CONV }, { content: 'look', attachments: [fromPicker] }).catch(() => {});
  await settle();
  const [frame] = env.last().framesOf('chat_message');
  assert.deepEqual(frame!.attachments, [{ type: 'image', url: 'https://cdn.example.com/a.png', name: 'a.png' }]);
  env.client.close();
});

test('connect() after close() rejects with closed, also when an earlier connect() had resolved', async () => {
  const env = setup();
  const first = env.client.connect();
  await env.accept();
  await first;
  env.client.close();
  await assert.rejects(env.client.connect(), { reason: 'closed' });
});

test('an asynchronous store never has two saves running: the newest position is saved after the running one', async () => {
  const calls: { pos: number; finish: () => void }[] = [];
  let running = 0;
  let most = 0;
  const store: SyncStore = {
    load: () => undefined,
    save: (s) =>
      new Promise<void>((resolve) => {
        running++;
        most = Math.max(most, running);
        calls.push({
          pos: s.pos,
          finish: () => {
            running--;
            resolve();
          },
        });
      }),
  };
  const env = setup({ store, ackDelayMs: 10 });
  void env.client.connect();
  await env.accept();
  env.last().receive(msg(1));
  await env.clock.advance(10); // the first save starts (pos 1) and stays running
  env.last().receive(msg(2));
  env.last().receive(msg(3));
  await env.clock.advance(10); // positions moved meanwhile: nothing starts beside the running save
  assert.deepEqual(calls.map((c) => c.pos), [1]);
  calls[0]!.finish();
  await settle();
  assert.deepEqual(calls.map((c) => c.pos), [1, 3], 'the newest position, once the first save finished');
  calls[1]!.finish();
  await settle();
  assert.equal(most, 1);
  env.client.close();
});

test('FileSyncStore: a save leaves only the state file (the temp file is renamed, or removed when the save fails)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-sync-'));
  try {
    const path = join(dir, 'state.json');
    const store = new FileSyncStore(path);
    store.save({ deviceId: 'dev-1', pos: 7 });
    assert.deepEqual(store.load(), { deviceId: 'dev-1', pos: 7 });
    assert.deepEqual(readdirSync(dir), ['state.json']);
    // The target is a directory: the rename fails, and the temp file does not stay behind.
    const blocked = join(dir, 'blocked');
    mkdirSync(blocked);
    assert.throws(() => new FileSyncStore(blocked).save({ deviceId: 'dev-1', pos: 8 }));
    assert.deepEqual(readdirSync(dir).sort(), ['blocked', 'state.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an asynchronous save that never settles holds later saves at most 10 s, and close() saves at once', async () => {
  const saved: number[] = [];
  let first = true;
  const store: SyncStore = {
    load: () => undefined,
    save: (s) => {
      saved.push(s.pos);
      if (first) {
        first = false;
        return new Promise<void>(() => {}); // never settles
      }
      return Promise.resolve();
    },
  };
  const env = setup({ store, ackDelayMs: 10 });
  void env.client.connect();
  await env.accept();
  env.last().receive(msg(1));
  await env.clock.advance(10); // the save of pos 1 starts, and hangs
  for (let p = 2; p <= 5; p++) env.last().receive(msg(p));
  await env.clock.advance(20);
  assert.deepEqual(saved, [1], 'nothing beside the running save');
  await env.clock.advance(10_000);
  assert.deepEqual(saved, [1, 5], 'after 10 s the newest position goes anyway');
  env.last().receive(msg(6));
  env.client.close();
  assert.deepEqual(saved, [1, 5, 6], 'close() saves the last position');
});

test('close() while a save runs: the final position is saved at once, and not again when the running save settles', async () => {
  const saved: number[] = [];
  const finish: (() => void)[] = [];
  const store: SyncStore = {
    load: () => undefined,
    save: (s) => {
      saved.push(s.pos);
      return new Promise<void>((r) => finish.push(r));
    },
  };
  const env = setup({ store, ackDelayMs: 10 });
  void env.client.connect();
  await env.accept();
  env.last().receive(msg(1));
  await env.clock.advance(10);
  env.last().receive(msg(2));
  env.last().receive(msg(3));
  env.client.close();
  for (const f of finish) f();
  await settle();
  for (const f of finish) f();
  assert.deepEqual(saved, [1, 3]);
});

test('receipt positions a list reply gave are known: a late receipt frame below them reaches no listener', async () => {
  const env = setup();
  const seen: unknown[] = [];
  env.client.on('receipt', (r) => seen.push(r));
  void env.client.connect();
  await env.accept();
  const list = env.client.listConversations();
  await settle();
  const req = env.last().framesOf('list_conversations')[0]!;
  const conversation = { conversationId: CONV, kind: 'direct', role: 'member', memberCount: 2, lastSeq: 9, lastActivityAt: 1, readSeq: 0, unreadCount: 0, receipts: { delivered: 5, read: 4, members: [{ userId: PEER, delivered: 5, read: 4 }] } };
  env.last().receive({ type: 'conversations', conversations: [conversation], requestId: req.requestId });
  await list;
  env.last().receive({ type: 'receipt', conversationId: CONV, userId: PEER, read: 3 }); // sent before the list was read
  env.last().receive({ type: 'receipt', conversationId: CONV, userId: PEER, delivered: 5, read: 6 });
  assert.deepEqual(seen, [{ conversationId: CONV, userId: PEER, read: 6 }]);
  env.client.close();
});

// ── whose position a stored state holds; own messages once across resends; `sent` in order; saves in order ──

const OTHER = '55555555-5555-4555-8555-555555555555';

test('a stored state of another user (one browser or machine, two users) is not resumed from: every event of this user is handed over, then saved as theirs', async () => {
  const store = new MemorySyncStore({ deviceId: 'dev-shared', pos: 5, userId: OTHER, identity: tokenIdentity(fakeJwt(0, OTHER))! });
  const env = setup({ store, ackDelayMs: 10, pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept(0, 9); // the server does not know this device for ME: what no device of ME acknowledged
  const auth = env.last().framesOf('auth')[0]!;
  assert.deepEqual(auth, { type: 'auth', token: auth.token, deviceId: 'dev-shared' }, "the device id is kept, the other user's position is not named");
  for (let p = 1; p <= 9; p++) env.last().receive(msg(p));
  await env.clock.advance(10);
  assert.deepEqual(env.seen.map((m) => (m as TimelineMessage).pos), [1, 2, 3, 4, 5, 6, 7, 8, 9], 'none dropped as a replay');
  assert.deepEqual(env.last().framesOf('ack'), [{ type: 'ack', upTo: 9 }]);
  env.client.close();
  assert.deepEqual(store.load(), { deviceId: 'dev-shared', pos: 9, ...MINE });
});

test('a stored state an older SDK wrote (no user id) keeps its device id, not its position: the server says where the device resumes', async () => {
  const store = new MemorySyncStore({ deviceId: 'dev-old', pos: 5 });
  const env = setup({ store, ackDelayMs: 10, pingIntervalMs: 0 });
  void env.client.connect();
  // This device acknowledged 3: for its own user 4 and 5 come again (processed, never acknowledged);
  // for another user all of them are new. Either way nothing may be dropped, nor acknowledged unseen.
  await env.accept(3, 7);
  const auth = env.last().framesOf('auth')[0]!;
  assert.deepEqual(auth, { type: 'auth', token: auth.token, deviceId: 'dev-old' });
  for (let p = 4; p <= 7; p++) env.last().receive(msg(p));
  await env.clock.advance(10);
  assert.deepEqual(env.seen.map((m) => (m as TimelineMessage).pos), [4, 5, 6, 7]);
  assert.deepEqual(env.last().framesOf('ack'), [{ type: 'ack', upTo: 7 }]);
  env.client.close();
  assert.deepEqual(store.load(), { deviceId: 'dev-old', pos: 7, ...MINE }, 'the next save names the user');
});

test('a token provider that changes users between connections: the position is not carried over to the new user', async () => {
  let sub = ME;
  const env = setup({ token: () => fakeJwt(2_000_000_000_000, sub), pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept(0, 2);
  env.last().receive(msg(1));
  env.last().receive(msg(2));
  sub = OTHER; // logout, login as someone else, same client
  env.last().drop(1006);
  await env.clock.advance(1000);
  await settle();
  env.last().open();
  const auth = env.last().framesOf('auth')[0]!;
  assert.deepEqual(auth, { type: 'auth', token: auth.token, deviceId: env.client.deviceId }, "no `after` from the first user's timeline");
  env.last().receive({ type: 'auth_success', userId: OTHER, resumeAfter: 0, lastPos: 2 });
  env.last().receive(msg(1, 'o1'));
  env.last().receive(msg(2, 'o2'));
  assert.deepEqual(env.seen.map((m) => m.id), ['m1', 'm2', 'o1', 'o2']);
  env.client.close();
});

test('a resent message confirmed (an answer without pos) before its replayed copy is handed over once, however many own messages the replay holds before the copy', async () => {
  const env = setup({ ackEvery: 1_000_000, pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept(0, 0);
  const p = env.client.sendMessage({ conversationId: CONV }, 'hello');
  await settle();
  const cid = env.last().framesOf('chat_message')[0]!.clientMsgId as string;
  env.last().drop(1006); // before the answer: the server stored it at 2501, behind a backlog of 2500
  await env.clock.advance(1000);
  await env.accept(0, 2501);
  assert.equal(env.last().framesOf('chat_message').length, 1, 'resent on the new socket');
  env.last().receive({ type: 'message_sent', id: 'mine', clientMsgId: cid, conversationId: CONV, seq: 2501, timestamp: 1 });
  await p;
  for (let pos = 1; pos <= 2500; pos++) env.last().receive(msg(pos, `other-device-${pos}`, ME));
  env.last().receive(msg(2501, 'mine', ME));
  const mine = env.seen.filter((e) => e.id === 'mine');
  env.client.close();
  assert.deepEqual(mine.map((e) => ('own' in e ? 'message' : 'sent')), ['sent']);
  assert.equal(env.seen.length, 2501);
});

test('a resent message whose replayed copy came first, thousands of own messages before its late answer without pos, is handed over once', async () => {
  const env = setup({ ackEvery: 1_000_000, pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept(0, 0);
  const p = env.client.sendMessage({ conversationId: CONV }, 'hello');
  await settle();
  const cid = env.last().framesOf('chat_message')[0]!.clientMsgId as string;
  env.last().drop(1006); // before the answer: the server stored it at 1
  await env.clock.advance(1000);
  await env.accept(0, 2501);
  env.last().receive(msg(1, 'mine', ME)); // the replay brings the copy first…
  for (let pos = 2; pos <= 2501; pos++) env.last().receive(msg(pos, `other-device-${pos}`, ME));
  // … and the resend is answered late (the server's storage was slow), as a repeat.
  env.last().receive({ type: 'message_sent', id: 'mine', clientMsgId: cid, conversationId: CONV, seq: 1, timestamp: 1 });
  await p;
  const mine = env.seen.filter((e) => e.id === 'mine');
  env.client.close();
  assert.deepEqual(mine.map((e) => ('own' in e ? 'message' : 'sent')), ['message']);
});

test('a send answered twice (a refusal that named no frame sent it again) is handed over once, however many own messages come between the answers', async () => {
  const env = setup({ ackEvery: 1_000_000, pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept(0, 0);
  const p = env.client.sendMessage({ conversationId: CONV }, 'hello');
  await settle();
  const cid = env.last().framesOf('chat_message')[0]!.clientMsgId as string;
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 100 });
  await env.clock.advance(100);
  assert.equal(env.last().framesOf('chat_message').length, 2, 'sent again after the wait');
  env.last().receive({ type: 'message_sent', id: 'mine', clientMsgId: cid, conversationId: CONV, seq: 1, timestamp: 1, pos: 1 });
  await p;
  for (let pos = 2; pos <= 2002; pos++) env.last().receive(msg(pos, `other-device-${pos}`, ME));
  env.last().receive({ type: 'message_sent', id: 'mine', clientMsgId: cid, conversationId: CONV, seq: 1, timestamp: 1 }); // the repeat's answer
  const mine = env.seen.filter((e) => e.id === 'mine');
  env.client.close();
  assert.equal(mine.length, 1);
});

test('a message_sent with pos that arrives while a gap is being resumed is not handed over out of order: its copy comes in the replay, in its place', async () => {
  const env = setup({ pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept(0, 0);
  env.last().receive(msg(1));
  const p = env.client.sendMessage({ conversationId: CONV }, 'hello');
  await settle();
  const cid = env.last().framesOf('chat_message')[0]!.clientMsgId as string;
  env.last().receive(msg(3)); // 2 is missing: a gap, this socket is being replaced
  // The answer to our send was already on the wire: it carries pos 4.
  env.last().receive({ type: 'message_sent', id: 'mine', clientMsgId: cid, conversationId: CONV, seq: 4, timestamp: 1, pos: 4 });
  assert.deepEqual(await p.then((r) => r.id), 'mine', 'the send is confirmed');
  env.last().drop(1000, 'gap');
  await env.clock.advance(1000);
  await env.accept(1, 4);
  assert.equal(env.last().framesOf('auth')[0]!.after, 1);
  env.last().receive(msg(2));
  env.last().receive(msg(3));
  env.last().receive(msg(4, 'mine', ME)); // our own copy in the replay
  env.client.close();
  assert.deepEqual(env.seen.map((e) => [e.id, e.pos]), [['m1', 1], ['m2', 2], ['m3', 3], ['mine', 4]], 'each once, in pos order');
});

/** An asynchronous store whose writes take effect when they complete, released by the test in any order. */
function slowStore() {
  let state = undefined as SyncState | undefined;
  const running: { pos: number; done: () => void }[] = [];
  const store: SyncStore = {
    load: () => undefined,
    save: (s) =>
      new Promise<void>((resolve) => {
        running.push({
          pos: s.pos,
          done: () => {
            state = { ...s };
            resolve();
          },
        });
      }),
  };
  /** Completes every running save, the newest first, until none is left. */
  const finishAll = async (): Promise<void> => {
    while (running.length > 0) {
      for (const r of running.splice(0).reverse()) r.done();
      await settle();
    }
  };
  return { store, running, finishAll, saved: () => state };
}

test('close() while an asynchronous save runs: the store ends at the position the client closed at, whatever order the writes complete in', async () => {
  const slow = slowStore();
  const env = setup({ store: slow.store, ackDelayMs: 10, pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept(0, 0);
  env.last().receive(msg(1));
  await env.clock.advance(10); // the save of 1 starts, and runs on
  assert.deepEqual(slow.running.map((r) => r.pos), [1]);
  env.last().receive(msg(2));
  env.last().receive(msg(3));
  env.client.close();
  await slow.finishAll();
  assert.equal(slow.saved()?.pos, 3);
});

test('a hung save overtaken after 10 s that completes last: the newest position is saved again', async () => {
  const slow = slowStore();
  const env = setup({ store: slow.store, ackDelayMs: 10, pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept(0, 0);
  env.last().receive(msg(1));
  await env.clock.advance(10); // the save of 1 starts, and hangs
  const hung = slow.running.splice(0);
  for (let p = 2; p <= 5; p++) env.last().receive(msg(p));
  await env.clock.advance(10_000); // the newest position goes anyway
  assert.deepEqual(slow.running.map((r) => r.pos), [5]);
  await slow.finishAll();
  hung[0]!.done(); // the hung write lands last
  await settle();
  await slow.finishAll();
  assert.equal(slow.saved()?.pos, 5);
  env.client.close();
});

test('close() while a save hangs: the final position is saved once the hang is given up (10 s), and the save timer ends with it', async () => {
  const slow = slowStore();
  const env = setup({ store: slow.store, ackDelayMs: 10, pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept(0, 0);
  env.last().receive(msg(1));
  await env.clock.advance(10);
  const hung = slow.running.splice(0);
  env.last().receive(msg(2));
  env.client.close();
  assert.equal(slow.running.length, 0, 'nothing beside the running save');
  await env.clock.advance(10_000);
  assert.deepEqual(slow.running.map((r) => r.pos), [2]);
  await slow.finishAll();
  hung[0]!.done();
  await settle();
  await slow.finishAll();
  assert.equal(slow.saved()?.pos, 2);
  assert.deepEqual(env.clock.pending, [], 'no timer left');
});

// ── `sent` once after a repeat; nothing of one user sent as another; whose position across tenants; a create held by its rate limit; timers after close() ──

test('a send repeated after a dropped frame, its repeat answered first (no pos), the original later in its place (pos): `sent` once, the position still moves', async () => {
  const env = setup({ ackDelayMs: 10, pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept(0, 0);
  const p = env.client.sendMessage({ conversationId: CONV }, 'hello');
  await settle();
  const cid = env.last().framesOf('chat_message')[0]!.clientMsgId as string;
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 100 }); // one of our frames dropped unread
  await env.clock.advance(100);
  assert.equal(env.last().framesOf('chat_message').length, 2, 'the send went again');
  // The repeat is a duplicate, answered at once; the original's answer waits for its place in the stream.
  env.last().receive({ type: 'message_sent', id: 'mine', clientMsgId: cid, conversationId: CONV, seq: 2, timestamp: 1 });
  env.last().receive(msg(1));
  env.last().receive({ type: 'message_sent', id: 'mine', clientMsgId: cid, conversationId: CONV, seq: 2, timestamp: 1, pos: 2 });
  env.last().receive(msg(3));
  assert.equal((await p).id, 'mine');
  assert.deepEqual(env.seen.map((e) => e.id), ['mine', 'm1', 'm3'], '`mine` once; the stream goes on past its position');
  assert.equal(env.client.pos, 3);
  await env.clock.advance(10);
  assert.deepEqual(env.last().framesOf('ack'), [{ type: 'ack', upTo: 3 }]);
  env.client.close();
});

/** The promise, its rejection handled now (it may reject before the test awaits it). */
function early<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

/** `setup()` with a token provider whose user the test switches (`who.sub`), and an `auth_success` for any user. */
function switchingSetup(over: Partial<RampartClientOptions> = {}) {
  const who = { sub: ME, tid: undefined as string | undefined };
  const token = (): string => {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    return `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub: who.sub, exp: 2_000_000_000, ...(who.tid !== undefined ? { tid: who.tid } : {}) })}.sig`;
  };
  const env = setup({ token, pingIntervalMs: 0, ...over });
  const acceptAs = async (userId: string, resumeAfter = 0, lastPos = resumeAfter): Promise<void> => {
    await settle();
    env.last().open();
    env.last().receive({ type: 'auth_success', userId, resumeAfter, lastPos });
    await settle();
  };
  return { ...env, who, acceptAs };
}

test('the token provider switches users while sends are queued: what user A queued fails with user_changed, never goes out as user B', async () => {
  const env = switchingSetup();
  void env.client.connect();
  await env.acceptAs(ME);
  const inFlight = early(env.client.sendMessage({ conversationId: CONV }, 'on the wire as A', { clientMsgId: 'a1' }));
  env.last().drop(1006); // A goes offline before the answer
  const queued = early(env.client.sendMessage({ recipientId: PEER }, 'written by A, offline', { clientMsgId: 'a2' }));
  const edit = early(env.client.editMessage(M1, 'edited by A', { clientMsgId: 'a3' }));
  env.who.sub = OTHER; // logout, login as B, same client
  await env.clock.advance(1000);
  await env.acceptAs(OTHER);
  assert.deepEqual([...env.last().framesOf('chat_message'), ...env.last().framesOf('edit_message')], [], 'nothing of A’s on B’s connection');
  for (const p of [inFlight, queued, edit]) await assert.rejects(p, { name: 'SendError', reason: 'user_changed' });
  const b = env.client.sendMessage({ conversationId: CONV }, 'written by B', { clientMsgId: 'b1' });
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['b1'], 'B’s own sends go');
  env.last().receive({ type: 'message_sent', id: 'ib', clientMsgId: 'b1', conversationId: CONV, seq: 1, timestamp: 1, pos: 1 });
  assert.equal((await b).id, 'ib');
  env.client.close();
});

test('a keyed create unanswered when the connection dropped is not repeated after the token provider switched users: it fails with user_changed, carrying its key', async () => {
  const env = switchingSetup();
  void env.client.connect();
  await env.acceptAs(ME);
  const created = early(env.client.createGroup('team', [PEER], { clientMsgId: 'create-1' }));
  const history = early(env.client.history({ conversationId: CONV })); // made as A while A was online, asked later
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 100 }); // the history goes again after the wait
  env.last().drop(1006); // the create's answer is lost with the socket
  env.who.sub = OTHER;
  await env.clock.advance(1000);
  await env.acceptAs(OTHER);
  assert.deepEqual([...env.last().framesOf('create_group'), ...env.last().framesOf('history')], [], 'not asked as B');
  await assert.rejects(created, { name: 'RequestError', reason: 'user_changed', clientMsgId: 'create-1' });
  await assert.rejects(history, { reason: 'user_changed' });
  env.client.close();
});

test('auth_success names another user than the last connection’s (a token the SDK cannot read): what was made as the first fails with user_changed before anything goes out', async () => {
  let user = ME;
  const env = setup({ token: () => 'opaque-token', pingIntervalMs: 0 });
  void env.client.connect();
  await settle();
  env.last().open();
  env.last().receive({ type: 'auth_success', userId: user, resumeAfter: 0, lastPos: 0 });
  env.last().drop(1006);
  const queued = early(env.client.sendMessage({ conversationId: CONV }, 'by the first user', { clientMsgId: 'x1' }));
  const created = early(env.client.createGroup('g', [PEER], { clientMsgId: 'k1' }));
  user = OTHER;
  await env.clock.advance(1000);
  await settle();
  env.last().open();
  env.last().receive({ type: 'auth_success', userId: user, resumeAfter: 0, lastPos: 0 });
  await settle();
  assert.deepEqual([...env.last().framesOf('chat_message'), ...env.last().framesOf('create_group')], [], 'nothing of the first user’s goes out');
  await assert.rejects(queued, { reason: 'user_changed' });
  await assert.rejects(created, { reason: 'user_changed', clientMsgId: 'k1' });
  env.client.close();
});

test('the same sub in another tenant (`tid`) is another user: a stored position of one tenant is not resumed from in the other', async () => {
  const env = switchingSetup({ ackDelayMs: 10 });
  const store = new MemorySyncStore();
  const env2 = switchingSetup({ store, ackDelayMs: 10 });
  env2.who.tid = 't1';
  void env2.client.connect();
  await env2.acceptAs(ME, 0, 5);
  for (let p = 1; p <= 5; p++) env2.last().receive(msg(p));
  env2.client.close();
  assert.equal(store.load()?.pos, 5);
  env.client.close();
  // Tenant t2, same sub: the server's user there is another (tid:sub), with a timeline of its own.
  const t2 = switchingSetup({ store, ackDelayMs: 10 });
  t2.who.tid = 't2';
  void t2.client.connect();
  await t2.acceptAs(ME, 0, 3); // auth_success names the sub only: it cannot tell the tenants apart
  const auth = t2.last().framesOf('auth')[0]!;
  assert.deepEqual(auth, { type: 'auth', token: auth.token, deviceId: store.load()!.deviceId }, 'no `after` from tenant t1’s timeline');
  for (let p = 1; p <= 3; p++) t2.last().receive(msg(p, `t2-${p}`));
  assert.deepEqual(t2.seen.map((e) => e.id), ['t2-1', 't2-2', 't2-3'], 'none dropped as a replay');
  t2.client.close();
  assert.deepEqual(store.load(), { deviceId: auth.deviceId, pos: 3, userId: ME, identity: JSON.stringify([ME, 't2']) });
  // Back in tenant t2: its own position is resumed from.
  const again = switchingSetup({ store });
  again.who.tid = 't2';
  void again.client.connect();
  await again.acceptAs(ME, 3, 3);
  assert.equal(again.last().framesOf('auth')[0]!.after, 3);
  again.client.close();
});

test('a state this SDK’s previous version wrote (userId, no identity) is not resumed from: it cannot tell tenants apart; its device id is kept', async () => {
  const store = new MemorySyncStore({ deviceId: 'dev-prev', pos: 5, userId: ME });
  const env = setup({ store, ackDelayMs: 10, pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept(3, 6); // the server's record of this device for this user
  const auth = env.last().framesOf('auth')[0]!;
  assert.deepEqual(auth, { type: 'auth', token: auth.token, deviceId: 'dev-prev' });
  for (let p = 4; p <= 6; p++) env.last().receive(msg(p));
  assert.deepEqual(env.seen.map((e) => e.pos), [4, 5, 6], 'nothing dropped as a replay');
  env.client.close();
  assert.deepEqual(store.load(), { deviceId: 'dev-prev', pos: 6, ...MINE }, 'the next save says whose it is');
});

test('a keyed create refused by the group-create limit goes out again under its key after the wait, while that fits in its timeout', async () => {
  const env = setup({ pingIntervalMs: 0, requestTimeoutMs: 15_000 });
  void env.client.connect();
  await env.accept();
  const created = env.client.createGroup('team', [PEER], { clientMsgId: 'k1' });
  const first = env.last().framesOf('create_group')[0]!;
  // A repeat of a create whose answer was lost counts against the limit like a new one.
  env.last().receive({ type: 'rate_limited', reason: 'group_creates', retryAfter: 1500, requestId: first.requestId });
  await env.clock.advance(1499);
  assert.equal(env.last().framesOf('create_group').length, 1, 'not before the wait');
  await env.clock.advance(1);
  assert.deepEqual(env.last().framesOf('create_group'), [first, first], 'again, under the same key');
  env.last().receive({ type: 'group_updated', conversationId: CONV, changed: false, seq: 1, requestId: first.requestId });
  assert.deepEqual(await created, { conversationId: CONV, changed: false, seq: 1 });
  // A wait held across a reconnect (the limit is the user's): the create goes on the next socket after it.
  const second = env.client.createGroup('team2', [PEER], { clientMsgId: 'k2' });
  const f2 = env.last().framesOf('create_group')[2]!;
  env.last().receive({ type: 'rate_limited', reason: 'group_creates', retryAfter: 3000, requestId: f2.requestId });
  await dropAndReconnect(env);
  await env.accept();
  assert.deepEqual(env.last().framesOf('create_group'), [], 'held');
  await env.clock.advance(3000);
  assert.deepEqual(env.last().framesOf('create_group'), [f2]);
  env.last().receive({ type: 'group_updated', conversationId: M1, changed: true, seq: 1, requestId: f2.requestId });
  assert.equal((await second).conversationId, M1);
  env.client.close();
});

test('a keyed create whose rate-limit wait does not fit in its timeout rejects with rate_limited and its key, so the app retries under the same key', async () => {
  const env = setup({ pingIntervalMs: 0, requestTimeoutMs: 5000 });
  void env.client.connect();
  await env.accept();
  const created = env.client.createGroup('team', [PEER]); // a key made by the SDK
  const frame = env.last().framesOf('create_group')[0]!;
  env.last().receive({ type: 'rate_limited', reason: 'group_creates', retryAfter: 60_000, requestId: frame.requestId });
  await assert.rejects(created, { name: 'RequestError', reason: 'rate_limited', retryAfter: 60_000, clientMsgId: frame.clientMsgId });
  // Any other failure of a create carries its key too; other requests are not held.
  const again = env.client.createGroup('team', [PEER], { clientMsgId: String(frame.clientMsgId) });
  const f2 = env.last().framesOf('create_group')[1]!;
  assert.equal(f2.clientMsgId, frame.clientMsgId);
  env.last().receive({ type: 'error', reason: 'storage_unavailable', requestId: f2.requestId });
  await assert.rejects(again, { reason: 'storage_unavailable', clientMsgId: frame.clientMsgId });
  const rename = env.client.renameGroup(CONV, 'n');
  env.last().receive({ type: 'rate_limited', reason: 'membership_changes', retryAfter: 100, requestId: env.last().framesOf('rename_group')[0]!.requestId });
  await assert.rejects(rename, (e: RequestError) => e.reason === 'rate_limited' && e.clientMsgId === undefined);
  assert.deepEqual(env.clock.pending.filter((ms) => ms === 100), [], 'nothing held for a change');
  env.client.close();
});

test('close() while a save hangs and close()’s own save hangs too: no timer is left once the running one’s SAVE_WAIT_MS is over', async () => {
  const slow = slowStore();
  const env = setup({ store: slow.store, ackDelayMs: 10, pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept(0, 0);
  env.last().receive(msg(1));
  await env.clock.advance(10); // the save of 1 starts, and hangs
  await env.clock.advance(9_000);
  env.last().receive(msg(2));
  env.client.close();
  assert.deepEqual(env.clock.pending, [1000], 'only the running save’s own timer');
  await env.clock.advance(1000); // given up: close()'s save of 2 goes, and hangs too
  assert.deepEqual(slow.running.map((r) => r.pos), [1, 2]);
  assert.deepEqual(env.clock.pending, [], 'nothing waits for close()’s own save');
});

test('close() that starts the last save itself leaves no timer; a hung save finishing after it is followed by the newest once more, still without a timer', async () => {
  const slow = slowStore();
  const env = setup({ store: slow.store, ackDelayMs: 10, pingIntervalMs: 0 });
  void env.client.connect();
  await env.accept(0, 0);
  env.last().receive(msg(1));
  await env.clock.advance(10); // the save of 1 starts, and hangs
  const hung = slow.running.splice(0);
  env.last().receive(msg(2));
  await env.clock.advance(10_000); // given up: 2 goes beside it, and completes
  await slow.finishAll();
  env.last().receive(msg(3));
  env.client.close(); // no save running: close()'s save of 3 starts at once
  assert.deepEqual(slow.running.map((r) => r.pos), [3]);
  assert.deepEqual(env.clock.pending, [], 'no timer for close()’s own save');
  await slow.finishAll();
  hung[0]!.done(); // the save of 1 lands last, after close()
  await settle();
  assert.deepEqual(slow.running.map((r) => r.pos), [3], 'the newest once more');
  assert.deepEqual(env.clock.pending, []);
  await slow.finishAll();
  assert.equal(slow.saved()?.pos, 3);
});

test('a resync frame is the `resync` event (frames outside the timeline may be missing: the app asks again); the stream goes on', async () => {
  const env = setup();
  const resyncs: unknown[] = [];
  const errors: unknown[] = [];
  env.client.on('resync', (e) => resyncs.push(e));
  env.client.on('error', (e) => errors.push(e));
  void env.client.connect();
  await env.accept();
  env.last().receive({ type: 'resync' });
  await settle();
  assert.deepEqual({ resyncs, errors, state: env.client.state }, { resyncs: [{}], errors: [], state: 'open' });
  env.client.close();
});
