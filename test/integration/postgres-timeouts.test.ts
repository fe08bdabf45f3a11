/**
 * PostgreSQL that hangs: a statement stuck on a lock fails its batch after `statement_timeout`
 * (from the storage URL here; 30 s by default), the sender gets `storage_unavailable` naming its
 * clientMsgId, nothing is acknowledged, and a resend with the same clientMsgId once the database
 * is free again stores and delivers the message exactly once. A timeline read that fails is
 * retried (`chat.inboxReplayAttempts`), and only then reported; the next live event reads the gap.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PG_URL, authedClient, closeAll, newUserId, startServer, waitFor, type Frame, type TestClient, type TestServer } from '../helpers/harness.js';
import { pgStorageUrl, uniquePgSchema } from '../helpers/storage-backends.js';

describe('PostgreSQL statement timeout and timeline read retries', () => {
  const schema = uniquePgSchema('timeout');
  const clients: TestClient[] = [];
  let srv: TestServer;
  let admin: pg.Client;

  before(async () => {
    admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    srv = await startServer({ storage: `${pgStorageUrl(schema)}&statement_timeout=300`, chat: { inboxReplayAttempts: 3, inboxReplayRetryMs: 100 } });
  });

  after(async () => {
    await closeAll(...clients);
    await srv?.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  });

  function reply(client: TestClient, clientMsgId: string, recipientId: string, content: string): Promise<Frame> {
    const answer = client.next((f) => f.clientMsgId === clientMsgId, true);
    client.send({ type: 'chat_message', recipientId, content, clientMsgId });
    return answer;
  }

  test('a batch stuck on a lock fails with storage_unavailable; the resend is stored once', { timeout: 20_000 }, async () => {
    const a = await authedClient(srv.url);
    clients.push(a);
    const offline = newUserId();
    const first = await reply(a, 'first', offline, 'before the lock');
    assert.equal(first.type, 'message_sent');

    // Another session holds the recipient's timeline counter: the next append waits on its row lock.
    await admin.query('BEGIN');
    await admin.query(`SELECT last_pos FROM "${schema}".users WHERE user_id = $1 FOR UPDATE`, [offline]);
    let refused: Frame;
    try {
      refused = await reply(a, 'stuck', offline, 'during the lock');
    } finally {
      await admin.query('ROLLBACK');
    }
    assert.deepEqual(refused, { type: 'error', reason: 'storage_unavailable', clientMsgId: 'stuck' });
    const logged = srv.logs.filter((l) => l.includes('store write failed'));
    assert.equal(logged.length, 1);
    assert.match(logged[0]!, /statement timeout/);
    assert.doesNotMatch(logged[0]!, /during the lock/);

    const resent = await reply(a, 'stuck', offline, 'during the lock');
    assert.equal(resent.type, 'message_sent');
    const b = await authedClient(srv.url, offline);
    clients.push(b);
    await b.nthOfType('chat_message', 2);
    const got = b.frames.filter((f) => f.type === 'chat_message');
    assert.deepEqual(got.map((f) => f.id), [first.id, resent.id]);
    assert.deepEqual(got.map((f) => f.content), ['before the lock', 'during the lock']);
    const { rows } = await admin.query(
      `SELECT count(*)::int AS n FROM "${schema}".timeline t JOIN "${schema}".users u ON u.id = t."user" WHERE u.user_id = $1`,
      [offline],
    );
    assert.equal(rows[0].n, 2, 'the refused attempt left no timeline entry');
  });

  /** Holds an ACCESS EXCLUSIVE lock on the timeline table (even reads wait) until `release`. */
  async function lockMessages(): Promise<() => Promise<void>> {
    await admin.query('BEGIN');
    await admin.query(`LOCK TABLE "${schema}".timeline IN ACCESS EXCLUSIVE MODE`);
    return async () => {
      await admin.query('ROLLBACK');
    };
  }

  const replayFailures = (): number => srv.logs.filter((l) => l.includes('timeline read failed')).length;

  test('a timeline read that times out is retried: the session gets its backlog once the database answers', { timeout: 20_000 }, async () => {
    const a = await authedClient(srv.url);
    clients.push(a);
    const offline = newUserId();
    const m = await reply(a, 'r1', offline, 'waiting for you');
    const before = replayFailures();
    const release = await lockMessages();
    let b: TestClient;
    try {
      b = await authedClient(srv.url, offline);
      clients.push(b);
      await waitFor(() => replayFailures() > before, 5000, 'the first inbox read to fail');
    } finally {
      await release();
    }
    const got = await b.next((f) => f.type === 'chat_message' || f.type === 'error');
    assert.deepEqual([got.type, got.id], ['chat_message', m.id]);
    // The live path works after the replay: a new message arrives directly.
    const live = await reply(a, 'r2', offline, 'live');
    assert.equal((await b.next((f) => f.type === 'chat_message' && f.id === live.id)).content, 'live');
    assert.equal(b.frames.filter((f) => f.type === 'error').length, 0);
  });

  test('a timeline read that keeps failing: storage_unavailable after the last attempt; the next live event reads the gap, in order', { timeout: 20_000 }, async () => {
    const a = await authedClient(srv.url);
    clients.push(a);
    const offline = newUserId();
    await reply(a, 'q1', offline, 'stays in the inbox');
    const before = replayFailures();
    const release = await lockMessages();
    let b: TestClient;
    let refused: Frame;
    try {
      b = await authedClient(srv.url, offline);
      clients.push(b);
      refused = await b.next((f) => f.type === 'error');
      assert.equal(replayFailures() - before, 3, 'one log line per attempt');
    } finally {
      await release();
    }
    assert.deepEqual(refused, { type: 'error', reason: 'storage_unavailable' });
    assert.equal(b.closeCode, undefined, 'the session stays open');
    const live = await reply(a, 'q2', offline, 'live after the outage');
    // The live event is ahead of the stream: the gap is read first, so both arrive, in pos order.
    await b.nthOfType('chat_message', 2);
    const streamed = b.frames.filter((f) => f.type === 'chat_message');
    assert.deepEqual(streamed.map((f) => f.content), ['stays in the inbox', 'live after the outage']);
    assert.equal(streamed[1]!.id, live.id);
    assert.equal((streamed[1]!.pos as number) - (streamed[0]!.pos as number), 1);
    // The next connection gets the inbox.
    const b2 = await authedClient(srv.url, offline);
    clients.push(b2);
    await b2.nthOfType('chat_message', 2);
    assert.deepEqual(b2.frames.filter((f) => f.type === 'chat_message').map((f) => f.content), ['stays in the inbox', 'live after the outage']);
  });
});
