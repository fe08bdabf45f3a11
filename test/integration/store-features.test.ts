/**
 * Contract of the schema-3 Store methods (receipts, edits and deletes, presence settings and
 * contacts), on SQLite and PostgreSQL, and the migration from schema 2 keeping data: a store is
 * filled, its schema-3 additions are dropped (exactly schema 2), and init() migrates it again.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { Database } from '../../src/store/sqlite-driver.js';
import pg from 'pg';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { messageId } from '../../src/chat/message-id.js';
import type { NewMessage, PrivacyOption, Store, StoredMessage } from '../../src/store/store.js';
import { PG_URL } from '../helpers/harness.js';

const T = 'default';
const OPTS = { maxInboxSize: 1000 };
const LIMITS = { maxGroupMembers: 10, maxGroupsPerUser: 10 };
let clock = Date.now();
const now = (): number => ++clock;

interface Backend {
  name: string;
  open(options?: PrivacyOption): Promise<Store>;
  /** Drop the later schemas' additions and version rows: the database is exactly at schema 2 (PostgreSQL) / 3 (SQLite). */
  downgrade(): Promise<void>;
  /** Back to just before `members.wrote`: schema 6 (SQLite) / version 4 (PostgreSQL). */
  beforeWrote(): Promise<void>;
  /** As the code before schema 10 (SQLite) / version 8 (PostgreSQL) could leave it: every member marked as having written. */
  everyoneMarkedWrote(): Promise<void>;
  teardown(): Promise<void>;
}

function sqlite(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-feat-'));
  const file = join(dir, 'db.sqlite');
  return {
    name: 'sqlite',
    async open(options = {}) {
      const s = new SqliteStore(file, options);
      await s.init();
      return s;
    },
    async downgrade() {
      const db = new Database(file);
      // Schema 8 first (membership periods), 7 (members.wrote), 6 (the dedupe index as it was), 5 (recent timeline entries back into timeline), then 4.
      db.exec(`DELETE FROM schema_version WHERE version >= 9;
               DROP TRIGGER members_rejoined; DROP TABLE member_periods; DELETE FROM schema_version WHERE version = 8;
               ALTER TABLE members DROP COLUMN wrote; DELETE FROM schema_version WHERE version = 7;
               CREATE UNIQUE INDEX events_dedupe ON events (sender, client_msg_id) WHERE client_msg_id IS NOT NULL; DROP INDEX events_client_msg;
               DELETE FROM schema_version WHERE version = 6;
               INSERT INTO timeline SELECT * FROM timeline_recent; DROP TABLE timeline_recent; DELETE FROM schema_version WHERE version = 5;
               DROP INDEX events_edits; ALTER TABLE events DROP COLUMN edited_at; ALTER TABLE members DROP COLUMN delivered_seq;
               ALTER TABLE members DROP COLUMN receipt_seq; ALTER TABLE users DROP COLUMN presence; DELETE FROM schema_version WHERE version = 4;`);
      db.close();
    },
    async beforeWrote() {
      const db = new Database(file);
      db.exec(`DROP TRIGGER members_rejoined; DROP TABLE member_periods; ALTER TABLE members DROP COLUMN wrote;
               DELETE FROM schema_version WHERE version >= 7;`);
      db.close();
    },
    async everyoneMarkedWrote() {
      const db = new Database(file);
      db.exec('UPDATE members SET wrote = 1; DELETE FROM schema_version WHERE version >= 10;');
      db.close();
    },
    async teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgres(): Backend {
  const schema = `rampart_feat_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
  return {
    name: 'postgres',
    async open(options = {}) {
      const s = new PostgresStore(PG_URL, { schema, pool: { max: 3 }, ...options });
      await s.init();
      return s;
    },
    async downgrade() {
      const t = (x: string): string => `"${schema}".${x}`;
      // Version 6 first (membership periods), 5 (members.wrote), 4 (the dedupe index as it was), then 3.
      await admin.query(`DELETE FROM ${t('schema_version')} WHERE version >= 7;
        DROP TRIGGER members_rejoined ON ${t('members')}; DROP FUNCTION ${t('members_rejoined')}(); DROP TABLE ${t('member_periods')};
        DELETE FROM ${t('schema_version')} WHERE version = 6;
        ALTER TABLE ${t('members')} DROP COLUMN wrote; DELETE FROM ${t('schema_version')} WHERE version = 5;
        CREATE UNIQUE INDEX events_dedupe ON ${t('events')} (sender, client_msg_id) WHERE client_msg_id IS NOT NULL;
        DROP INDEX "${schema}".events_client_msg; DELETE FROM ${t('schema_version')} WHERE version = 4;
        DROP INDEX "${schema}".events_edits; ALTER TABLE ${t('events')} DROP COLUMN edited_at;
        ALTER TABLE ${t('members')} DROP COLUMN delivered_seq, DROP COLUMN receipt_seq; ALTER TABLE ${t('users')} DROP COLUMN presence;
        DELETE FROM ${t('schema_version')} WHERE version = 3;`);
      // The new dedupe index built beforehand without blocking, as docs/operations.md tells operators
      // of large tables: the version 4 migration must then go through all the same.
      await admin.query(`CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS events_client_msg ON ${t('events')} (client_msg_id, sender) WHERE client_msg_id IS NOT NULL`);
    },
    async beforeWrote() {
      const t = (x: string): string => `"${schema}".${x}`;
      await admin.query(`DROP TRIGGER members_rejoined ON ${t('members')}; DROP FUNCTION ${t('members_rejoined')}(); DROP TABLE ${t('member_periods')};
        ALTER TABLE ${t('members')} DROP COLUMN wrote; DELETE FROM ${t('schema_version')} WHERE version >= 5;`);
    },
    async everyoneMarkedWrote() {
      const t = (x: string): string => `"${schema}".${x}`;
      await admin.query(`UPDATE ${t('members')} SET wrote = true; DELETE FROM ${t('schema_version')} WHERE version >= 8;`);
    },
    async teardown() {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    },
  };
}

function message(from: string, to: NewMessage['to'], content = `m ${randomUUID()}`): NewMessage {
  const ts = now();
  return { id: messageId(ts), tenantId: T, senderId: from, to, timestamp: ts, content, mentions: [], hashtags: [], links: [] };
}

async function send(store: Store, m: NewMessage): Promise<StoredMessage> {
  const [out] = await store.appendMessages([m], OPTS);
  assert.equal(out?.status, 'stored');
  return (out as { message: StoredMessage }).message;
}

for (const make of [sqlite, postgres]) {
  const backend = make();
  describe(`Store schema 3 (${backend.name})`, () => {
    after(() => backend.teardown());

    test('acknowledge moves delivered per conversation once; updateRead private/public; receipts with a detail bound', async () => {
      const store = await backend.open();
      try {
        const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
        const m1 = await send(store, message(a, { peerId: b }));
        const m2 = await send(store, message(c, { peerId: b }));
        await send(store, message(a, { peerId: b }));
        const ack = await store.acknowledge(T, b, 'phone', 2);
        assert.equal(ack.position, 2);
        assert.deepEqual(ack.delivered.sort((x, y) => x.conversationId.localeCompare(y.conversationId)), [
          { conversationId: m1.conversationId, delivered: 1 },
          { conversationId: m2.conversationId, delivered: 1 },
        ].sort((x, y) => x.conversationId.localeCompare(y.conversationId)));
        assert.deepEqual((await store.acknowledge(T, b, 'laptop', 2)).delivered, [], 'nothing new: nothing moves');
        assert.deepEqual((await store.acknowledge(T, b, 'laptop', 3)).delivered, [{ conversationId: m1.conversationId, delivered: 2 }]);
        assert.deepEqual(await store.updateRead(T, b, m1.conversationId, 1, { private: true }), { readSeq: 1, receiptSeq: 0, receiptMoved: false });
        assert.deepEqual(await store.updateRead(T, b, m1.conversationId, 99, { private: false }), { readSeq: 2, receiptSeq: 2, receiptMoved: true });
        assert.deepEqual(await store.updateRead(T, b, m1.conversationId, 1, { private: false }), { readSeq: 2, receiptSeq: 2, receiptMoved: false });
        assert.equal(await store.updateRead(T, c, m1.conversationId, 1, { private: false }), undefined);
        // b has not written to a yet: a learns none of b's positions (the conversation shares only a's).
        assert.deepEqual((await store.receipts(T, a, [m1.conversationId], 5)).get(m1.conversationId), { delivered: 0, read: 0, members: [] });
        const audience = async () => {
          const x = (await store.audienceOf(T, m1.conversationId, a))!;
          return { members: [...x.members].sort(), sharing: [...x.sharing].sort() };
        };
        assert.deepEqual(await audience(), { members: [a, b].sort(), sharing: [a] });
        await send(store, message(b, { peerId: a }, 'the reply'));
        assert.deepEqual(await audience(), { members: [a, b].sort(), sharing: [a, b].sort() });
        const r = await store.receipts(T, a, [m1.conversationId, m2.conversationId], 5);
        assert.deepEqual(r.get(m1.conversationId), { delivered: 2, read: 2, members: [{ userId: b, delivered: 2, read: 2 }] });
        assert.equal(r.has(m2.conversationId), false, 'not a member: left out');
        assert.deepEqual((await store.receipts(T, a, [m1.conversationId], 0)).get(m1.conversationId), { delivered: 2, read: 2 });
      } finally {
        await store.close();
      }
    });

    test('appendMessages says when a message is its sender\'s first in the conversation (firstWrite)', async () => {
      const store = await backend.open();
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const first = async (m: NewMessage) => ((await store.appendMessages([m], OPTS))[0] as { firstWrite?: true }).firstWrite === true;
        assert.equal(await first(message(a, { peerId: b })), true, "a's first");
        assert.equal(await first(message(a, { peerId: b })), false, "a's second");
        assert.equal(await first(message(b, { peerId: a })), true, "b's first, in the same conversation");
        // Two messages of one sender in one batch: only the first of them.
        const c = randomUUID();
        const out = await store.appendMessages([message(c, { peerId: a }), message(c, { peerId: a })], OPTS);
        assert.deepEqual(out.map((o) => (o as { firstWrite?: true }).firstWrite === true), [true, false]);
      } finally {
        await store.close();
      }
    });

    test('a former member added back is a new member: nothing of theirs is shared until they write again, whichever node cached them as a writer', async () => {
      const store = await backend.open();
      const other = await backend.open(); // another node (PostgreSQL) or connection (SQLite) on the same data
      try {
        const [a, x, s] = [randomUUID(), randomUUID(), randomUUID()];
        const gid = randomUUID();
        const change = (actor: string) => {
          const ts = now();
          return { tenantId: T, actorId: actor, eventId: messageId(ts), timestamp: ts, conversationId: gid };
        };
        const writes = async (node: Store, content: string) =>
          ((await node.appendMessages([message(x, { conversationId: gid }, content)], OPTS))[0] as { firstWrite?: true }).firstWrite === true;
        const shared = async () => ({ sharing: (await store.audienceOf(T, gid, s))!.sharing.includes(x), contact: (await store.contactsOf(T, x)).includes(s) });
        assert.equal((await store.createGroup({ ...change(a), name: 'g', memberIds: [x] }, LIMITS)).status, 'ok');
        assert.equal(await writes(store, 'first membership'), true);
        assert.equal(await writes(store, 'first membership, again'), false, 'this node now knows x as a writer');
        // Removed; a stranger to x joins, becomes admin and adds x back (on the other node).
        assert.equal((await other.removeMembers({ ...change(a), userIds: [x] })).status, 'ok');
        assert.equal((await other.addMembers({ ...change(a), userIds: [s] }, LIMITS)).status, 'ok');
        assert.equal((await other.setRole({ ...change(a), userId: s, role: 'admin' })).status, 'ok');
        assert.equal((await other.addMembers({ ...change(s), userIds: [x] }, LIMITS)).status, 'ok');
        assert.deepEqual(await shared(), { sharing: false, contact: false }, 'x has not written since coming back');
        assert.equal(await writes(store, 'second membership'), true, 'a first write again, on the node that knew x as a writer');
        assert.deepEqual(await shared(), { sharing: true, contact: true });
        // Once more, all on one node.
        assert.equal((await store.removeMembers({ ...change(a), userIds: [x] })).status, 'ok');
        assert.equal((await store.addMembers({ ...change(a), userIds: [x] }, LIMITS)).status, 'ok');
        assert.deepEqual(await shared(), { sharing: false, contact: false });
        assert.equal(await writes(store, 'third membership'), true);
        assert.deepEqual(await shared(), { sharing: true, contact: true });
      } finally {
        await other.close();
        await store.close();
      }
    });

    test('createGroup with a clientMsgId: the same key answers with the group it made; a key held by a message is forbidden', async () => {
      const store = await backend.open();
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const create = (conversationId: string, clientMsgId: string) => {
          const ts = now();
          return store.createGroup({ tenantId: T, actorId: a, eventId: messageId(ts), timestamp: ts, conversationId, name: 'g', memberIds: [b], clientMsgId }, LIMITS);
        };
        const first = await create(randomUUID(), 'create-1');
        assert.equal(first.status, 'ok');
        const again = await create(randomUUID(), 'create-1');
        assert.equal(again.status, 'duplicate');
        assert.deepEqual((again as { event: unknown }).event, (first as { event: unknown }).event, 'the first create, nothing new');
        assert.equal((await store.listConversations(T, a, { limit: 10 })).conversations.length, 1);
        assert.equal((await store.timeline(T, b, 0, 10)).lastPos, 1, 'no second timeline entry');
        await send(store, { ...message(a, { peerId: b }), clientMsgId: 'held-by-a-message' });
        assert.equal((await create(randomUUID(), 'held-by-a-message')).status, 'forbidden');
        const ts = now();
        assert.equal((await store.createGroup({ tenantId: T, actorId: b, eventId: messageId(ts), timestamp: ts, conversationId: randomUUID(), name: 'g', memberIds: [], clientMsgId: 'create-1' }, LIMITS)).status, 'ok', "keys are per sender");
      } finally {
        await store.close();
      }
    });

    test('membersIfMember: only for a member, or with formerToo for one who left; never for a stranger', async () => {
      const store = await backend.open();
      try {
        const [a, b, x] = [randomUUID(), randomUUID(), randomUUID()];
        const gid = randomUUID();
        const ts = now();
        assert.equal((await store.createGroup({ tenantId: T, actorId: a, eventId: messageId(ts), timestamp: ts, conversationId: gid, name: 'g', memberIds: [b] }, LIMITS)).status, 'ok');
        const t2 = now();
        assert.equal((await store.leaveGroup({ tenantId: T, actorId: b, eventId: messageId(t2), timestamp: t2, conversationId: gid })).status, 'ok');
        assert.deepEqual(await store.membersIfMember(T, gid, a), [a]);
        assert.equal(await store.membersIfMember(T, gid, b), undefined, 'b left');
        assert.deepEqual(await store.membersIfMember(T, gid, b, { formerToo: true }), [a]);
        assert.equal(await store.membersIfMember(T, gid, x, { formerToo: true }), undefined, 'never a member');
        assert.equal(await store.membersIfMember('other', gid, b, { formerToo: true }), undefined, 'another tenant');
      } finally {
        await store.close();
      }
    });

    test('list_conversations: lastMessage is the newest message as history shows it, a deleted one as deleted', async () => {
      const store = await backend.open();
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const older = await send(store, message(a, { peerId: b }, 'older, still there'));
        const newest = await send(store, message(a, { peerId: b }, 'newest, to be deleted'));
        const ts = now();
        assert.equal((await store.deleteMessage({ tenantId: T, actorId: a, eventId: messageId(ts), messageId: newest.id, timestamp: ts }, OPTS)).status, 'ok');
        const hist = (await store.history(T, b, { conversationId: older.conversationId }, { limit: 10, groupHistory: 'since_join' }))!;
        assert.equal(hist.events[0]!.id, newest.id);
        const [conv] = (await store.listConversations(T, b, { limit: 10 })).conversations;
        assert.equal(conv!.lastMessage?.id, newest.id, 'not the older text');
        assert.ok(conv!.lastMessage?.deletedAt !== undefined && conv!.lastMessage.deletedBy === a, "shown as a tombstone");
        assert.equal(conv!.lastMessage?.content, '');
      } finally {
        await store.close();
      }
    });

    test('a removed member reads each message as it stood when they left: later edits never reach them', async () => {
      const store = await backend.open();
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const gid = randomUUID();
        const ts0 = now();
        const created = await store.createGroup({ tenantId: T, actorId: a, eventId: messageId(ts0), timestamp: ts0, conversationId: gid, name: 'g', memberIds: [b] }, { maxGroupMembers: 10, maxGroupsPerUser: 10 });
        assert.equal(created.status, 'ok');
        const to = { conversationId: gid };
        const m = await send(store, message(a, to, 'first words'));
        const n = await send(store, message(a, to, 'never edited before'));
        const p = await send(store, message(a, to, 'deleted later'));
        const edit = async (id: string, content: string) => {
          const ts = now();
          const out = await store.editMessage(
            { tenantId: T, actorId: a, eventId: messageId(ts), messageId: id, timestamp: ts, body: { content, mentions: [], hashtags: [], links: [] } },
            { ...OPTS, editWindowMs: 60_000 },
          );
          assert.equal(out.status, 'ok');
        };
        await edit(m.id, 'seen by b');
        const tsRemove = now();
        assert.equal((await store.removeMembers({ tenantId: T, actorId: a, eventId: messageId(tsRemove), timestamp: tsRemove, conversationId: gid, userIds: [b] })).status, 'ok');
        await edit(m.id, 'written after b left');
        await edit(n.id, 'also after b left');
        const tsDel = now();
        assert.equal((await store.deleteMessage({ tenantId: T, actorId: a, eventId: messageId(tsDel), messageId: p.id, timestamp: tsDel }, OPTS)).status, 'ok');

        const q = { limit: 50, groupHistory: 'since_join' as const };
        const seen = (await store.history(T, b, to, q))!.events.filter((e): e is StoredMessage => e.kind === 'message');
        const byId = new Map(seen.map((e) => [e.id, e]));
        assert.equal(byId.get(m.id)?.content, 'seen by b', 'the body of the last edit before the removal');
        assert.equal(byId.has(n.id), false, 'its body before the edit is no longer stored: left out');
        assert.equal(byId.get(p.id)?.content, '', 'a later deletion still erases');
        assert.equal(typeof byId.get(p.id)?.deletedAt, 'number');
        assert.ok(!JSON.stringify(seen).includes('after b left'));
        // Their timeline (a replay from 0, a new device) shows the same: the message whose body of
        // then is gone leaves a hole (reported as timeline_pruned by the stream), nothing later leaks.
        const page = await store.timeline(T, b, 0, 50);
        const replayed = page.entries.map((e) => e.event).filter((e): e is StoredMessage => e.kind === 'message');
        assert.deepEqual(replayed.map((e) => e.id), [m.id, p.id]);
        assert.equal(replayed[0]!.content, 'seen by b');
        assert.equal(replayed[1]!.content, '');
        assert.ok(!JSON.stringify(page.entries).includes('after b left'), 'no body written after the removal');
        const nPos = page.entries.find((e) => e.event.kind === 'message' && e.event.id === m.id)!.pos + 1;
        assert.equal(page.entries.some((e) => e.pos === nPos), false, 'the left-out message keeps its position empty');
        assert.ok(page.entries.some((e) => e.pos > nPos), 'the entries after it still come');
        assert.deepEqual(page.scanned, { count: page.entries.length + 1, toPos: page.entries.at(-1)!.pos }, 'the page says it read a row it left out');
        // A page that ends on the left-out row says how far it read, so a reader goes on past it.
        const upToN = await store.timeline(T, b, 0, nPos);
        assert.deepEqual(upToN.scanned, { count: nPos, toPos: nPos });
        assert.equal(upToN.entries.at(-1)!.pos, nPos - 1);
        assert.equal((await store.timeline(T, b, 0, nPos - 1)).scanned, undefined, 'nothing left out: no scanned');
        // A current member's timeline has the latest bodies.
        const own = (await store.timeline(T, a, 0, 50)).entries.map((e) => e.event).filter((e): e is StoredMessage => e.kind === 'message');
        assert.deepEqual(own.map((e) => e.content), ['written after b left', 'also after b left', '']);
        // Current members read the latest.
        const current = (await store.history(T, a, to, q))!.events.filter((e): e is StoredMessage => e.kind === 'message');
        assert.deepEqual(current.map((e) => e.content).sort(), ['', 'also after b left', 'written after b left'].sort());
      } finally {
        await store.close();
      }
    });

    test('a re-added member: each earlier membership shows messages as it ended; edits of messages from before they joined skip them', async () => {
      const store = await backend.open();
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const gid = randomUUID();
        const to = { conversationId: gid };
        const change = (ts = now()) => ({ tenantId: T, actorId: a, eventId: messageId(ts), timestamp: ts, conversationId: gid });
        assert.equal((await store.createGroup({ ...change(), name: 'g', memberIds: [b] }, { maxGroupMembers: 10, maxGroupsPerUser: 10 })).status, 'ok');
        const edit = async (id: string, content: string, groupHistory?: 'since_join' | 'all') => {
          const ts = now();
          const out = await store.editMessage(
            { tenantId: T, actorId: a, eventId: messageId(ts), messageId: id, timestamp: ts, body: { content, mentions: [], hashtags: [], links: [] } },
            { ...OPTS, editWindowMs: 60_000, ...(groupHistory === undefined ? {} : { groupHistory }) },
          );
          assert.equal(out.status, 'ok');
          return (out as { deliveries: { userId: string }[] }).deliveries.map((d) => d.userId);
        };
        const remove = async () => assert.equal((await store.removeMembers({ ...change(), userIds: [b] })).status, 'ok');
        const readd = async () => assert.equal((await store.addMembers({ ...change(), userIds: [b] }, { maxGroupMembers: 10, maxGroupsPerUser: 10 })).status, 'ok');

        const first = await send(store, message(a, to, 'first period'));
        await edit(first.id, 'edited in the first period');
        await remove();
        await edit(first.id, 'edited while b was out (1)');
        await readd();
        // b joined after `first`: under since_join its edits are not b's to see (the actor still gets one).
        assert.deepEqual(await edit(first.id, 'edited in the second period'), [a]);
        const second = await send(store, message(a, to, 'second period'));
        await edit(second.id, 'second, edited in the second period');
        await remove();
        await edit(first.id, 'edited while b was out (2)');
        await edit(second.id, 'second, edited while b was out');
        await readd();
        // With chat.groupHistory "all" the re-added member reads the whole history: the edit reaches them.
        assert.deepEqual((await edit(second.id, 'second, edited again', 'all')).sort(), [a, b].sort());

        const replayed = (await store.timeline(T, b, 0, 100)).entries.map((e) => e.event).filter((e): e is StoredMessage => e.kind === 'message');
        assert.deepEqual(
          replayed.map((e) => [e.id, e.content]),
          [
            [first.id, 'edited in the first period'], // as the first membership ended
            [second.id, 'second, edited in the second period'], // as the second ended
          ],
        );
        const own = (await store.timeline(T, a, 0, 100)).entries.map((e) => e.event).filter((e): e is StoredMessage => e.kind === 'message');
        assert.deepEqual(own.map((e) => e.content), ['edited while b was out (2)', 'second, edited again'], 'the author reads the latest');
        // A delete reaches b although b joined (again) after the message: b holds it from an earlier membership.
        const ts = now();
        const gone = await store.deleteMessage({ tenantId: T, actorId: a, eventId: messageId(ts), messageId: first.id, timestamp: ts }, { ...OPTS, groupHistory: 'since_join' });
        assert.deepEqual((gone as { deliveries: { userId: string }[] }).deliveries.map((d) => d.userId).sort(), [a, b].sort());
      } finally {
        await store.close();
      }
    });

    test("a delete's clientMsgId reused for a message answers with the delete; the other messages of the batch are stored", async () => {
      const store = await backend.open();
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const m = await send(store, message(a, { peerId: b }, 'to be deleted'));
        const ts = now();
        const gone = await store.deleteMessage({ tenantId: T, actorId: a, eventId: messageId(ts), messageId: m.id, timestamp: ts, clientMsgId: 'k' }, OPTS);
        assert.equal(gone.status, 'ok');
        if (gone.status !== 'ok') return;
        const reused = { ...message(a, { peerId: b }, 'same key'), clientMsgId: 'k' };
        const [first, second] = await store.appendMessages([reused, message(b, { peerId: a }, 'unrelated')], OPTS);
        assert.equal(first?.status, 'duplicate');
        if (first?.status === 'duplicate') assert.deepEqual([first.message.id, first.message.seq], [gone.event.id, gone.event.seq]);
        assert.equal(second?.status, 'stored', 'one sender reusing a key must not fail the batch');
      } finally {
        await store.close();
      }
    });

    test('one key raced by an edit and a message batch (other senders in it): neither transaction fails, the key names one of them', async () => {
      const store = await backend.open();
      try {
        const [a, b, c, d] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
        const target = await send(store, message(a, { peerId: b }, 'to edit'));
        for (let i = 0; i < 25; i++) {
          const k = `race-${i}`;
          const ts = now();
          // The batch's message goes to another conversation (a → c): its lock is not the edit's.
          const [edit, batch] = await Promise.all([
            store.editMessage(
              { tenantId: T, actorId: a, eventId: messageId(ts), messageId: target.id, timestamp: ts, clientMsgId: k, body: { content: `edit ${i}`, mentions: [], hashtags: [], links: [] } },
              { ...OPTS, editWindowMs: 3_600_000 },
            ),
            store.appendMessages([{ ...message(a, { peerId: c }, `message ${i}`), clientMsgId: k }, message(d, { peerId: c }, `bystander ${i}`)], OPTS),
          ]);
          assert.equal(batch[1]?.status, 'stored', "another sender's message in the batch is stored");
          const editWon = edit.status === 'ok' && batch[0]?.status === 'duplicate';
          const messageWon = batch[0]?.status === 'stored' && edit.status === 'duplicate';
          assert.ok(editWon || messageWon, `round ${i}: one of them owns the key (edit ${edit.status}, message ${batch[0]?.status})`);
        }
      } finally {
        await store.close();
      }
    });

    test('edit and delete: permissions, window, idempotency, tombstone, timeline events', async () => {
      const store = await backend.open();
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const m = await send(store, message(a, { peerId: b }, 'original'));
        const base = { tenantId: T, messageId: m.id, body: { content: 'changed', mentions: [], hashtags: [], links: [] } };
        const edit = (actorId: string, extra: Record<string, unknown> = {}, window = 60_000) => {
          const ts = now();
          return store.editMessage({ ...base, actorId, eventId: messageId(ts), timestamp: ts, ...extra }, { ...OPTS, editWindowMs: window });
        };
        assert.equal((await edit(b)).status, 'forbidden');
        assert.equal((await edit(a, {}, 0)).status, 'forbidden');
        assert.equal((await edit(a, { tenantId: 'other' })).status, 'forbidden');
        const ok = await edit(a, { clientMsgId: 'e1' });
        assert.equal(ok.status, 'ok');
        if (ok.status !== 'ok') return;
        assert.equal(ok.event.kind, 'edit');
        assert.equal(ok.event.seq, 2);
        assert.equal(ok.message.content, 'changed');
        assert.equal(typeof ok.message.editedAt, 'number');
        assert.deepEqual(ok.deliveries.map((d) => d.userId).sort(), [a, b].sort());
        const dup = await edit(a, { clientMsgId: 'e1' });
        assert.equal(dup.status, 'duplicate');
        const page = await store.timeline(T, b, 0, 10);
        assert.deepEqual(page.entries.map((e) => e.event.kind), ['message', 'edit']);
        const ts = now();
        const del = await store.deleteMessage({ tenantId: T, actorId: b, eventId: messageId(ts), messageId: m.id, timestamp: ts }, OPTS);
        assert.equal(del.status, 'forbidden', 'a direct peer may not delete');
        const ts2 = now();
        const gone = await store.deleteMessage({ tenantId: T, actorId: a, eventId: messageId(ts2), messageId: m.id, timestamp: ts2 }, OPTS);
        assert.equal(gone.status, 'ok');
        if (gone.status !== 'ok') return;
        assert.equal(gone.message.deletedBy, a);
        assert.equal(gone.message.content, '');
        const again = await store.deleteMessage({ tenantId: T, actorId: a, eventId: messageId(now()), messageId: m.id, timestamp: now() }, OPTS);
        assert.equal(again.status, 'unchanged');
        const after = await store.timeline(T, b, 0, 10);
        const editEvent = after.entries[1]!.event;
        assert.equal(editEvent.kind === 'edit' ? editEvent.content : 'x', '', 'the edit body is erased too');
        assert.equal(after.entries[2]!.event.kind, 'delete');
        const h = await store.history(T, b, { conversationId: m.conversationId }, { limit: 10, groupHistory: 'since_join' });
        assert.deepEqual(h!.events.map((e) => e.kind), ['message']);
      } finally {
        await store.close();
      }
    });

    test('contactsOf and presence settings', async () => {
      const store = await backend.open();
      try {
        const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
        // Who learns a user's presence: the members of conversations that user has written in.
        await send(store, message(a, { peerId: b }));
        await send(store, message(a, { peerId: b }));
        assert.deepEqual(await store.contactsOf(T, a), [b]);
        assert.deepEqual(await store.contactsOf(T, b), [], 'written to is no consent');
        await send(store, message(b, { peerId: a }));
        assert.deepEqual(await store.contactsOf(T, b), [a]);
        assert.deepEqual(await store.contactsOf(T, c), []);
        // Being added to a group is none either (a stranger can make one): only writing in it.
        const gid = randomUUID();
        const ts = now();
        assert.equal((await store.createGroup({ tenantId: T, actorId: a, eventId: messageId(ts), timestamp: ts, conversationId: gid, name: 'g', memberIds: [c] }, { maxGroupMembers: 10, maxGroupsPerUser: 10 })).status, 'ok');
        assert.deepEqual(await store.contactsOf(T, c), []);
        assert.deepEqual((await store.audienceOf(T, gid, c))?.sharing, []);
        await send(store, message(c, { conversationId: gid }));
        assert.deepEqual(await store.contactsOf(T, c), [a]);
        assert.deepEqual((await store.audienceOf(T, gid, a))?.sharing, [c]);
        assert.equal((await store.presenceSettings(T, [a])).size, 0);
        await store.setPresenceVisible(T, a, false);
        await store.setPresenceVisible(T, c, true);
        assert.deepEqual([...(await store.presenceSettings(T, [a, b, c]))].sort(), [[a, false], [c, true]].sort());
      } finally {
        await store.close();
      }
    });

    test('strangerPrivacy false: a direct conversation one side wrote in shares presence and receipts at once', async () => {
      const store = await backend.open({ strangerPrivacy: false });
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const m = await send(store, message(a, { peerId: b }));
        assert.deepEqual(await store.contactsOf(T, a), [b]);
        assert.deepEqual(await store.contactsOf(T, b), [a]);
        const audience = (await store.audienceOf(T, m.conversationId, b))!;
        assert.deepEqual([...audience.sharing].sort(), [...audience.members].sort());
        await store.acknowledge(T, b, 'phone', 1);
        assert.deepEqual((await store.receipts(T, a, [m.conversationId], 5)).get(m.conversationId), { delivered: 1, read: 0, members: [{ userId: b, delivered: 1, read: 0 }] });
      } finally {
        await store.close();
      }
    });

    test('the upgrade that adds members.wrote marks whom the running code marks: a moderator who only deleted others\' messages shares nothing', async () => {
      const [owner, bob, carol] = [randomUUID(), randomUUID(), randomUUID()];
      const gid = randomUUID();
      let store = await backend.open();
      const ts = now();
      const created = await store.createGroup({ tenantId: T, actorId: owner, eventId: messageId(ts), timestamp: ts, conversationId: gid, name: 'g', memberIds: [bob, carol] }, LIMITS);
      assert.equal(created.status, 'ok');
      const fromBob = await send(store, message(bob, { conversationId: gid }, 'bob writes'));
      const fromCarol = await send(store, message(carol, { conversationId: gid }, 'carol writes, then deletes it'));
      for (const [actor, m] of [[owner, fromBob], [carol, fromCarol]] as const) {
        const t2 = now();
        assert.equal((await store.deleteMessage({ tenantId: T, actorId: actor, eventId: messageId(t2), messageId: m.id, timestamp: t2 }, OPTS)).status, 'ok');
      }
      const sharingNow = (await store.audienceOf(T, gid, owner))!.sharing.sort();
      assert.deepEqual(sharingNow, [bob, carol].sort(), 'the running code: a delete is not writing; a deleted message was');
      await store.close();
      await backend.beforeWrote();
      store = await backend.open();
      try {
        assert.deepEqual((await store.audienceOf(T, gid, owner))!.sharing.sort(), sharingNow, 'the upgrade agrees');
      } finally {
        await store.close();
      }
    });

    test('the upgrade that resets members.wrote of former members added back agrees with the running code (SQLite 10, PostgreSQL 8)', async () => {
      const [owner, back, backAndWrote, stayed, direct] = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      const gid = randomUUID();
      let store = await backend.open();
      const change = (actor: string) => {
        const ts = now();
        return { tenantId: T, actorId: actor, eventId: messageId(ts), timestamp: ts, conversationId: gid };
      };
      assert.equal((await store.createGroup({ ...change(owner), name: 'g', memberIds: [back, backAndWrote, stayed] }, LIMITS)).status, 'ok');
      for (const u of [back, backAndWrote, stayed]) await send(store, message(u, { conversationId: gid }));
      assert.equal((await store.removeMembers({ ...change(owner), userIds: [back, backAndWrote] })).status, 'ok');
      assert.equal((await store.addMembers({ ...change(owner), userIds: [back, backAndWrote] }, LIMITS)).status, 'ok');
      await send(store, message(backAndWrote, { conversationId: gid }, 'written again'));
      await send(store, message(direct, { peerId: owner }, 'a direct conversation: its first message is seq 1, the members joined at 1'));
      const sharingNow = (await store.audienceOf(T, gid, owner))!.sharing.sort();
      assert.deepEqual(sharingNow, [backAndWrote, stayed].sort(), 'the running code');
      const directNow = (await store.audienceOf(T, (await store.directConversationId(T, owner, direct))!, owner))!.sharing;
      await store.close();
      await backend.everyoneMarkedWrote();
      store = await backend.open();
      try {
        assert.deepEqual((await store.audienceOf(T, gid, owner))!.sharing.sort(), sharingNow, 'the upgrade agrees');
        assert.deepEqual((await store.audienceOf(T, (await store.directConversationId(T, owner, direct))!, owner))!.sharing, directNow);
      } finally {
        await store.close();
      }
    });

    test('migration from schema 2 keeps data: read positions become receipt positions, acked entries delivered', async () => {
      const [a, b] = [randomUUID(), randomUUID()];
      let store = await backend.open();
      const m = await send(store, message(a, { peerId: b }, 'kept'));
      const keyed = { ...message(a, { peerId: b }, 'kept too'), clientMsgId: 'before-upgrade' };
      const m2 = await send(store, keyed);
      await send(store, message(b, { peerId: a }, 'answered'));
      await store.ack(T, b, 'phone', 1);
      await store.markRead(T, b, m.conversationId, 2);
      await store.close();
      await backend.downgrade();
      store = await backend.open();
      try {
        const h = await store.history(T, a, { conversationId: m.conversationId }, { limit: 10, groupHistory: 'since_join' });
        assert.deepEqual(h!.events.map((e) => (e.kind === 'message' ? e.content : '')), ['answered', 'kept too', 'kept']);
        // Both wrote before the upgrade: the new flag says so (not private, contacts both ways).
        assert.deepEqual(await store.contactsOf(T, a), [b]);
        assert.deepEqual((await store.receipts(T, a, [m.conversationId], 5)).get(m.conversationId), {
          delivered: 1,
          read: 2,
          members: [{ userId: b, delivered: 1, read: 2 }],
        });
        assert.equal((await store.syncState(T, b, 'phone')).deviceAckedPos, 1);
        // The dedupe key written before the upgrade (under the old index) still answers a retry.
        const [retry] = await store.appendMessages([{ ...keyed, id: messageId(now()) }], OPTS);
        assert.equal(retry?.status, 'duplicate');
        assert.equal((retry as { message: StoredMessage }).message.id, m2.id);
      } finally {
        await store.close();
      }
    });
  });
}
