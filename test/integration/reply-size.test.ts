/**
 * Replies to requests stay within what a reading client may be sent: a `history` or
 * `conversations` page holds at most a quarter of `limits.maxBufferedBytes` of items (at least
 * one), says when it was cut short (`more`, `nextCursor`), and paging still reaches everything. A
 * page of 100 maximal messages (~6.6 MB in one frame) used to close the client that asked, 4030.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { authedClient, closeAll, maximalMessage, startServer, type Frame, type TestClient, type TestServer } from '../helpers/harness.js';
import { loadConfig } from '../../src/config/load-config.js';

const OPEN = {
  rateLimit: { burstLimit: 100_000, burstWindow: 1000, messagesPerMinute: 100_000, messagesPerHour: 100_000 },
  limits: { frames: { limit: 100_000, windowMs: 1000 }, requests: { limit: 100_000, windowMs: 1000 } },
};

describe('reply size bound (limits.maxBufferedBytes / 4)', () => {
  let srv: TestServer;
  const clients: TestClient[] = [];
  before(async () => {
    srv = await startServer(OPEN); // maxBufferedBytes 1 MiB: replies of at most 256 KiB of items
  });
  after(async () => {
    await closeAll(...clients);
    await srv.close();
  });
  const client = async (): Promise<TestClient & { userId: string }> => {
    const c = await authedClient(srv.url);
    clients.push(c);
    return c;
  };

  test('history of 100 maximal messages: pages cut short with more: true, paging gets all 100, the client stays open', async () => {
    const [a, b] = [await client(), await client()];
    for (let i = 0; i < 100; i++) a.send({ type: 'chat_message', recipientId: b.userId, ...maximalMessage(i) });
    await a.nthOfType('message_sent', 100);
    const seqs: number[] = [];
    let beforeSeq: number | undefined;
    let pages = 0;
    for (;;) {
      const requestId = `h${++pages}`;
      a.send({ type: 'history', peerId: b.userId, limit: 100, requestId, ...(beforeSeq !== undefined ? { beforeSeq } : {}) });
      const page = await a.next((f) => f.type === 'history' && f.requestId === requestId);
      const messages = page.messages as Frame[];
      assert.ok(Buffer.byteLength(JSON.stringify(page)) < 1024 * 1024, 'a page fits the slow-consumer bound');
      seqs.push(...messages.map((m) => m.seq as number));
      if (page.more !== true) break;
      assert.ok(messages.length >= 1 && messages.length < 100);
      beforeSeq = messages.at(-1)!.seq as number;
    }
    assert.ok(pages > 1, 'the first page was cut short');
    assert.deepEqual(seqs, Array.from({ length: 100 }, (_, i) => 100 - i), 'every message once, newest first');
    assert.equal(a.closeCode, undefined);
  });

  test('conversations whose last messages are maximal: pages cut short with a nextCursor, paging lists every one once', async () => {
    const me = await client();
    const peers: string[] = [];
    for (let i = 0; i < 12; i++) {
      const p = await client();
      p.send({ type: 'chat_message', recipientId: me.userId, ...maximalMessage(i) });
      await p.nthOfType('message_sent', 1);
      peers.push(p.userId);
    }
    const listed: string[] = [];
    let before: string | undefined;
    let pages = 0;
    for (;;) {
      const requestId = `l${++pages}`;
      me.send({ type: 'list_conversations', limit: 100, requestId, ...(before !== undefined ? { before } : {}) });
      const page = await me.next((f) => f.type === 'conversations' && f.requestId === requestId);
      listed.push(...(page.conversations as Frame[]).map((c) => c.peerId as string));
      if (page.nextCursor === undefined) break;
      before = page.nextCursor as string;
    }
    assert.ok(pages > 1, 'the first page was cut short');
    assert.deepEqual([...listed].sort(), [...peers].sort(), 'every conversation once');
    assert.equal(me.closeCode, undefined);
  });
});

test('limits.maxBufferedBytes below 256 KiB is refused at start-up (a replay paced at half of it would close reading clients)', () => {
  assert.throws(() => loadConfig(undefined, { RAMPART_LIMITS__MAX_BUFFERED_BYTES: '65536' }), /maxBufferedBytes/);
  assert.equal(loadConfig(undefined, { RAMPART_LIMITS__MAX_BUFFERED_BYTES: String(256 * 1024) }).limits.maxBufferedBytes, 256 * 1024);
});
