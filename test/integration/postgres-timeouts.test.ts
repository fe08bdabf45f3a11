/**
 * PostgreSQL that hangs: a statement stuck on a lock fails its batch after `statement_timeout`
 * (from the storage URL here; 30 s by default), the sender gets `storage_unavailable` naming its
 * clientMsgId, nothing is acknowledged, and a resend with the same clientMsgId once the database
 * is free again stores and delivers the message exactly once.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PG_URL, authedClient, closeAll, newUserId, startServer, type Frame, type TestClient, type TestServer } from '../helpers/harness.js';
import { pgStorageUrl, uniquePgSchema } from '../helpers/storage-backends.js';

describe('PostgreSQL statement timeout', () => {
  const schema = uniquePgSchema('timeout');
  const clients: TestClient[] = [];
  let srv: TestServer;
  let admin: pg.Client;

  before(async () => {
    admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    srv = await startServer({ storage: `${pgStorageUrl(schema)}&statement_timeout=300` });
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

    // Another session holds the recipient's inbox counter: the next insert waits on its row lock.
    await admin.query('BEGIN');
    await admin.query(`SELECT unacked FROM "${schema}".inbox_counts WHERE recipient_id = $1 FOR UPDATE`, [offline]);
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
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "${schema}".messages WHERE recipient_id = $1`, [offline]);
    assert.equal(rows[0].n, 2, 'the refused attempt left no row');
  });
});
