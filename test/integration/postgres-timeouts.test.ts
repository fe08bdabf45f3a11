/**
 * PostgreSQL that hangs (storage v2 tables): a statement stuck on a lock fails its batch after
 * `statement_timeout` (from the storage URL here; 30 s by default), the sender gets
 * `storage_unavailable` naming its clientMsgId, nothing is acknowledged, and a resend with the
 * same clientMsgId once the database is free again stores and delivers the message exactly once.
 * A timeline read that fails is retried (`chat.inboxReplayAttempts`), and only then reported; a
 * resume point that cannot be read refuses the authentication (`auth_failure unavailable`, 4503).
 * A connection cut while a transaction waits fails that write only: the process survives.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PG_URL, authedClient, closeAll, newUserId, openClient, startServer, startTcpProxy, token, waitFor, within, type Frame, type TestClient, type TestServer } from '../helpers/harness.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { messageId } from '../../src/chat/message-id.js';
import type { NewMessage } from '../../src/store/store.js';
import { GroupCommitter } from '../../src/store/group-commit.js';
import type { RampartConfigInput } from '../../src/config/schema.js';
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

  const chats = (c: TestClient): Frame[] => c.frames.filter((f) => f.type === 'chat_message');

  /** Runs `during` inside a transaction of the admin connection that holds `lockSql`, then rolls back. */
  async function whileLocked<T>(lockSql: string, params: unknown[], during: () => Promise<T>): Promise<T> {
    await admin.query('BEGIN');
    try {
      await admin.query(lockSql, params);
      return await during();
    } finally {
      await admin.query('ROLLBACK');
    }
  }
  const lockTable = (table: string): string => `LOCK TABLE "${schema}".${table} IN ACCESS EXCLUSIVE MODE`;

  test('a batch stuck on a lock fails with storage_unavailable; the resend is stored once', { timeout: 20_000 }, async () => {
    const a = await authedClient(srv.url);
    clients.push(a);
    const offline = newUserId();
    const first = await reply(a, 'first', offline, 'before the lock');
    assert.equal(first.type, 'message_sent');

    // Another session holds the recipient's user row (its timeline counter): the next append waits on it.
    const refused = await whileLocked(`SELECT last_pos FROM "${schema}".users WHERE user_id = $1 FOR UPDATE`, [offline], () =>
      reply(a, 'stuck', offline, 'during the lock'),
    );
    assert.deepEqual(refused, { type: 'error', reason: 'storage_unavailable', clientMsgId: 'stuck' });
    const logged = srv.logs.filter((l) => l.includes('storage call failed'));
    assert.equal(logged.length, 1);
    assert.match(logged[0]!, /statement timeout/);
    assert.doesNotMatch(logged[0]!, /during the lock/);

    const resent = await reply(a, 'stuck', offline, 'during the lock');
    assert.equal(resent.type, 'message_sent');
    assert.equal(resent.pos, 2, "the refused attempt took no position in the sender's timeline");
    const b = await authedClient(srv.url, offline);
    clients.push(b);
    await b.nthOfType('chat_message', 2);
    const got = chats(b);
    assert.deepEqual(got.map((f) => f.id), [first.id, resent.id]);
    assert.deepEqual(got.map((f) => f.pos), [1, 2], 'no hole in the recipient timeline either');
    assert.deepEqual(got.map((f) => f.content), ['before the lock', 'during the lock']);
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "${schema}".events e JOIN "${schema}".users u ON u.id = e.sender WHERE u.user_id = $1`, [a.userId]);
    assert.equal(rows[0].n, 2, 'the refused attempt left no row');
  });

  const replayFailures = (): number => srv.logs.filter((l) => l.includes('timeline read failed')).length;

  test('a timeline read that times out is retried: the session gets its backlog once the database answers', { timeout: 20_000 }, async () => {
    const a = await authedClient(srv.url);
    clients.push(a);
    const offline = newUserId();
    const m = await reply(a, 'r1', offline, 'waiting for you');
    const before = replayFailures();
    let b!: TestClient;
    await whileLocked(lockTable('timeline'), [], async () => {
      b = await authedClient(srv.url, offline);
      clients.push(b);
      await waitFor(() => replayFailures() > before, 5000, 'the first timeline read to fail');
    });
    const got = await b.next((f) => f.type === 'chat_message' || f.type === 'error');
    assert.deepEqual([got.type, got.id, got.pos], ['chat_message', m.id, 1]);
    // The live path works after the replay: a new message arrives directly.
    const live = await reply(a, 'r2', offline, 'live');
    const liveGot = await b.next((f) => f.type === 'chat_message' && f.id === live.id);
    assert.deepEqual([liveGot.content, liveGot.pos], ['live', 2]);
    assert.equal(b.frames.filter((f) => f.type === 'error').length, 0);
  });

  test('a timeline read that keeps failing: storage_unavailable after the last attempt; the next event reads the gap', { timeout: 20_000 }, async () => {
    const a = await authedClient(srv.url);
    clients.push(a);
    const offline = newUserId();
    await reply(a, 'q1', offline, 'stays in the timeline');
    const before = replayFailures();
    let b!: TestClient;
    const refused = await whileLocked(lockTable('timeline'), [], async () => {
      b = await authedClient(srv.url, offline);
      clients.push(b);
      const error = await b.next((f) => f.type === 'error');
      assert.equal(replayFailures() - before, 3, 'one log line per attempt');
      return error;
    });
    assert.deepEqual(refused, { type: 'error', reason: 'storage_unavailable' });
    assert.equal(b.closeCode, undefined, 'the session stays open');
    // The live message reveals the gap (pos 2 while the session is at 0): the stream reads
    // storage again, so the session gets the missed message first, then the live one.
    const live = await reply(a, 'q2', offline, 'live after the outage');
    await b.next((f) => f.type === 'chat_message' && f.id === live.id);
    assert.deepEqual(chats(b).map((f) => [f.pos, f.content]), [[1, 'stays in the timeline'], [2, 'live after the outage']]);
    // Nothing was acked: the next connection gets both too.
    const b2 = await authedClient(srv.url, offline);
    clients.push(b2);
    await b2.nthOfType('chat_message', 2);
    assert.deepEqual(chats(b2).map((f) => f.content), ['stays in the timeline', 'live after the outage']);
  });

  test('a timeline read that keeps failing: once the database answers, the stream reads again by itself (no new event needed)', { timeout: 20_000 }, async () => {
    const a = await authedClient(srv.url);
    clients.push(a);
    const quiet = newUserId();
    const m = await reply(a, 'z1', quiet, 'for a quiet user');
    let b!: TestClient;
    await whileLocked(lockTable('timeline'), [], async () => {
      b = await authedClient(srv.url, quiet);
      clients.push(b);
      await b.next((f) => f.type === 'error');
    });
    // Nobody sends anything more: the retry (inboxReplayRetryMs doubled, capped by
    // chat.inboxReplayMaxRetryMs) brings the backlog.
    const got = await b.next((f) => f.type === 'chat_message');
    assert.deepEqual([got.id, got.pos], [m.id, 1]);
    assert.equal(b.frames.filter((f) => f.type === 'error').length, 1, 'told once');
    assert.equal(b.closeCode, undefined);
  });

  test('retention deletes every pending entry between the two reads of a timeline page: the stream says timeline_pruned at once', { timeout: 20_000 }, async () => {
    const a = await authedClient(srv.url);
    clients.push(a);
    const away = newUserId();
    for (const k of ['p1', 'p2', 'p3']) await reply(a, k, away, `pending ${k}`);
    const waiting = async (): Promise<boolean> =>
      (await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() AND pid <> pg_backend_pid()")).rows[0].n > 0;
    let b!: TestClient;
    await admin.query('BEGIN');
    try {
      // The page query joins events: it waits here, after the user's state (first and last
      // position) was read in a statement of its own.
      await admin.query(lockTable('events'));
      b = await authedClient(srv.url, away);
      clients.push(b);
      await waitFor(waiting, 5000, 'the timeline page query to wait on the lock');
      await admin.query(`DELETE FROM "${schema}".timeline WHERE "user" = (SELECT id FROM "${schema}".users WHERE user_id = $1)`, [away]);
      await admin.query('COMMIT');
    } catch (err) {
      await admin.query('ROLLBACK');
      throw err;
    }
    const pruned = await b.next((f) => f.type === 'timeline_pruned' || f.type === 'chat_message');
    assert.deepEqual(pruned, { type: 'timeline_pruned', after: 0, firstPos: 4 });
  });

  test('frames without a position never precede auth_success (a typing indicator while the resume point is read)', { timeout: 20_000 }, async () => {
    const x = newUserId();
    const first = await authedClient(srv.url, x);
    const peer = await authedClient(srv.url);
    clients.push(first, peer);
    // Typing needs a conversation: one message first (its ids are then known without the locked table).
    await reply(peer, 'hello-x', x, 'hello');
    await first.next((f) => f.type === 'chat_message');
    const waiting = async (): Promise<boolean> =>
      (await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() AND pid <> pg_backend_pid()")).rows[0].n > 0;
    let second!: TestClient;
    await whileLocked(lockTable('users'), [], async () => {
      second = openClient(srv.url);
      clients.push(second);
      await second.opened;
      second.send({ type: 'auth', token: await token({ sub: x }) });
      // The second session joined the registry and waits on its resume point.
      await waitFor(waiting, 5000, 'the resume point read to wait on the lock');
      peer.send({ type: 'typing_indicator', recipientId: x, isTyping: true });
      await first.next((f) => f.type === 'typing_indicator');
    });
    const opening = await second.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
    assert.equal(opening.type, 'auth_success');
    assert.equal(second.frames[0]?.type, 'auth_success', 'nothing before auth_success');
    assert.equal(second.frames.filter((f) => f.type === 'typing_indicator').length, 0);
  });

  test('the resume point cannot be read: auth_failure unavailable and close 4503 after the retries; then auth works', { timeout: 20_000 }, async () => {
    const a = await authedClient(srv.url);
    clients.push(a);
    const offline = newUserId();
    await reply(a, 'u1', offline, 'for later');
    const before = replayFailures();
    const outcome = await whileLocked(lockTable('users'), [], async () => {
      const client = openClient(srv.url);
      clients.push(client);
      await client.opened;
      client.send({ type: 'auth', token: await token({ sub: offline }) });
      const closed = await client.closed;
      return { closed, frames: client.frames };
    });
    assert.equal(outcome.closed.code, 4503);
    assert.deepEqual(outcome.frames, [{ type: 'auth_failure', reason: 'unavailable' }], 'no auth_success, no partial stream');
    assert.equal(replayFailures() - before, 3, 'each attempt logged');
    assert.ok(srv.logs.some((l) => l.includes('"reason":"storage_unavailable"') && l.includes('"code":4503')), 'one security line for the refusal');
    await waitFor(async () => (await srv.server.limits.registry.countUser(`default:${offline}`)) === 0, 5000, 'the refused session to release its user slot');
    // The database answers again: the same user authenticates and gets its backlog.
    const b = await authedClient(srv.url, offline);
    clients.push(b);
    const got = await b.nextOfType('chat_message');
    assert.deepEqual([got.pos, got.content], [1, 'for later']);
  });
});

describe('PostgreSQL connection dropped in the middle of a transaction', () => {
  test('the write fails, nothing crashes, the broken client is discarded, and the store works once the database is back', { timeout: 20_000 }, async () => {
    const pgUrl = new URL(PG_URL);
    const proxy = await startTcpProxy(pgUrl.hostname, Number(pgUrl.port || 5432));
    pgUrl.port = String(proxy.port);
    const schema = uniquePgSchema('drop');
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    const appName = `rampart-${schema}`;
    const store = new PostgresStore(pgUrl.toString(), { schema, pool: { max: 2, application_name: appName } });
    // pg-pool listens for `error` only on idle clients: a checked-out one whose connection drops
    // used to emit an unhandled `error`, which ends the process. Any uncaught error fails here.
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => {
      uncaught.push(err);
    };
    process.on('uncaughtException', onUncaught);
    try {
      await store.init();
      const [alice, bob] = [newUserId(), newUserId()];
      const message = (): NewMessage => {
        const ts = Date.now();
        return { id: messageId(ts), tenantId: 'default', senderId: alice, to: { peerId: bob }, timestamp: ts, content: 'x', mentions: [], hashtags: [], links: [] };
      };
      assert.equal((await store.appendMessages([message()], { maxInboxSize: 100 }))[0]!.status, 'stored');
      // The admin connection (not through the proxy) holds the events table: the next append
      // waits inside its transaction, on a checked-out client, when the proxy cuts every connection.
      await admin.query('BEGIN');
      await admin.query(`LOCK TABLE "${schema}".events IN ACCESS EXCLUSIVE MODE`);
      const stuck = store.appendMessages([message()], { maxInboxSize: 100 });
      stuck.catch(() => {});
      await waitFor(
        async () => (await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = $1", [appName])).rows[0].n > 0,
        5000,
        'the append to wait on the lock',
      );
      await proxy.stop();
      await assert.rejects(stuck, /Connection terminated|terminating connection|ECONNRESET/);
      await admin.query('ROLLBACK');
      await proxy.start();
      await waitFor(async () => {
        try {
          return (await store.appendMessages([message()], { maxInboxSize: 100 }))[0]!.status === 'stored';
        } catch {
          return false;
        }
      }, 5000, 'the store to write again through the new connections');
      const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "${schema}".events`);
      assert.equal(rows[0].n, 2, 'the cut append left no row');
      assert.deepEqual(uncaught, []);
    } finally {
      process.off('uncaughtException', onUncaught);
      await admin.query('ROLLBACK').catch(() => {});
      await store.close();
      await proxy.close();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    }
  });
});

/**
 * A server whose storage goes through a TCP proxy the test controls (cut, frozen), in a schema of
 * its own; `admin` reaches PostgreSQL directly. Set up and torn down with the enclosing describe.
 */
function serverBehindProxy(tag: string, storageQuery: string, config: RampartConfigInput = {}) {
  const schema = uniquePgSchema(tag);
  const clients: TestClient[] = [];
  const env = {} as { srv: TestServer; admin: pg.Client; proxy: Awaited<ReturnType<typeof startTcpProxy>>; schema: string; clients: TestClient[] };
  env.schema = schema;
  env.clients = clients;
  before(async () => {
    env.admin = new pg.Client({ connectionString: PG_URL });
    await env.admin.connect();
    const u = new URL(PG_URL);
    env.proxy = await startTcpProxy(u.hostname, Number(u.port || 5432));
    u.port = String(env.proxy.port);
    env.srv = await startServer({ ...config, storage: `${pgStorageUrl(schema, u.toString())}${storageQuery}` });
  });
  after(async () => {
    await env.proxy?.close(); // cuts frozen sockets too
    await closeAll(...clients);
    await env.srv?.close();
    await env.admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await env.admin.end();
  });
  return env;
}

describe('PostgreSQL connection that stops answering (a frozen network path)', () => {
  const env = serverBehindProxy('frozen', '&statement_timeout=1000');

  function reply(client: TestClient, clientMsgId: string, recipientId: string, content: string): Promise<Frame> {
    const answer = client.next((f) => f.clientMsgId === clientMsgId, true);
    client.send({ type: 'chat_message', recipientId, content, clientMsgId });
    return answer;
  }

  test('the batch in flight fails with storage_unavailable soon after statement_timeout; the next batch goes on a new connection', { timeout: 30_000 }, async () => {
    const { srv, admin, schema, proxy, clients } = env;
    const a = await authedClient(srv.url);
    const b = await authedClient(srv.url);
    clients.push(a, b);
    const [ra, rb] = [newUserId(), newUserId()];
    assert.equal((await reply(a, 'w0', ra, 'hello')).type, 'message_sent');
    await admin.query(`CREATE FUNCTION "${schema}".hang() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.content = 'HANG' THEN PERFORM pg_sleep(0.5); END IF; RETURN NEW; END $$`);
    await admin.query(`CREATE TRIGGER hang BEFORE INSERT ON "${schema}".events FOR EACH ROW EXECUTE FUNCTION "${schema}".hang()`);
    const stuck = reply(a, 'h1', ra, 'HANG');
    await waitFor(async () => (await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event = 'PgSleep'`)).rows[0].n > 0, 5000, 'the batch to be in flight');
    proxy.freeze(); // every open connection's path goes dead (no FIN, no RST); new ones still work
    const other = reply(b, 'o1', rb, 'an unrelated message after the freeze');
    // Without a client-side bound both waited for TCP to give up (minutes).
    assert.deepEqual(await within(stuck, 15_000, 'the stuck batch to fail'), { type: 'error', reason: 'storage_unavailable', clientMsgId: 'h1' });
    assert.equal((await within(other, 15_000, 'the next batch')).type, 'message_sent');
  });
});

describe('PostgreSQL refusing one row of a batch', () => {
  test('a trigger that raises on one message fails that message only; the others of its batch are stored', async () => {
    const schema = uniquePgSchema('poison');
    const store = new PostgresStore(pgStorageUrl(schema), { schema, pool: { max: 2 } });
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      await store.init();
      await admin.query(`CREATE FUNCTION "${schema}".poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.content = 'POISON' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$`);
      await admin.query(`CREATE TRIGGER poison BEFORE INSERT ON "${schema}".events FOR EACH ROW EXECUTE FUNCTION "${schema}".poison()`);
      const committer = new GroupCommitter(store, { maxInboxSize: 100 });
      const [a, b, c] = [newUserId(), newUserId(), newUserId()];
      const message = (from: string, to: string, content: string): NewMessage => {
        const ts = Date.now();
        return { id: messageId(ts), tenantId: 'default', senderId: from, to: { peerId: to }, timestamp: ts, content, mentions: [], hashtags: [], links: [] };
      };
      // Submitted in one turn: one batch, one transaction, rolled back whole by the trigger.
      const results = await Promise.allSettled([message(a, b, 'one'), message(c, b, 'POISON'), message(b, a, 'two'), message(c, a, 'three')].map((m) => committer.submit(m)));
      assert.deepEqual(results.map((r) => (r.status === 'fulfilled' ? r.value.status : 'rejected')), ['stored', 'rejected', 'stored', 'stored']);
      const page = await store.timeline('default', b, 0, 10);
      assert.deepEqual(page.entries.map((e) => (e.event.kind === 'message' ? e.event.content : '')), ['one', 'two'], 'what was acknowledged is stored, once');
      await committer.close();
    } finally {
      await store.close();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    }
  });
});

describe('PostgreSQL: a read stored whose answer was lost (connection cut at COMMIT)', () => {
  const env = serverBehindProxy('lostread', '', { chat: { receiptCoalesceMs: 0 } });

  function ask(client: TestClient, frame: Record<string, unknown>, requestId: string): Promise<Frame> {
    const answer = client.next((f) => f.requestId === requestId, true);
    client.send({ ...frame, requestId });
    return answer;
  }

  test('the reader asks again, nothing moves, and the other member still gets the receipt', { timeout: 30_000 }, async () => {
    const { srv, admin, schema, proxy, clients } = env;
    const a = await authedClient(srv.url);
    const r = await authedClient(srv.url);
    clients.push(a, r);
    a.send({ type: 'chat_message', recipientId: r.userId, content: 'one', clientMsgId: 'c1' });
    const conversationId = (await a.next((f) => f.type === 'message_sent')).conversationId as string;
    await r.next((f) => f.type === 'chat_message');
    r.send({ type: 'chat_message', recipientId: a.userId, content: 'two', clientMsgId: 'c2' }); // r shares from now on
    await a.next((f) => f.type === 'chat_message' && f.content === 'two');
    a.send({ type: 'chat_message', recipientId: r.userId, content: 'three', clientMsgId: 'c3' });
    await r.next((f) => f.type === 'chat_message' && f.content === 'three');

    await admin.query(`CREATE FUNCTION "${schema}".slow() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.receipt_seq = 3 THEN PERFORM pg_sleep(1); END IF; RETURN NULL; END $$`);
    await admin.query(`CREATE CONSTRAINT TRIGGER slow AFTER UPDATE ON "${schema}".members DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "${schema}".slow()`);
    const first = ask(r, { type: 'read', conversationId, upToSeq: 3 }, 'q1');
    const sleeping = async (): Promise<number> => (await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event = 'PgSleep'`)).rows[0].n;
    await waitFor(async () => (await sleeping()) > 0, 5000, 'the COMMIT to be running');
    await proxy.stop(); // the answer to COMMIT is lost; the server commits all the same
    await proxy.start();
    assert.deepEqual(await first, { type: 'error', reason: 'storage_unavailable', requestId: 'q1' });
    await waitFor(async () => (await sleeping()) === 0, 5000, 'the COMMIT to finish');
    const receipt = a.next((f) => f.type === 'receipt' && f.userId === r.userId && f.read === 3);
    const again = await ask(r, { type: 'read', conversationId, upToSeq: 3 }, 'q2');
    assert.deepEqual([again.type, again.readSeq], ['read_updated', 3]);
    await within(receipt, 10_000, 'the receipt of the read stored before');
  });
});
