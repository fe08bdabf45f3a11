/**
 * One contract for every Store adapter (storage v2), run against SQLite (temp file) and PostgreSQL
 * (a fresh schema in the shared `test` database). Every case runs against both. PostgreSQL being
 * unreachable is a failure, not a skip.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { Database } from '../../src/store/sqlite-driver.js';
import pg from 'pg';
import { ContentCipher, UnknownKeyError } from '../../src/store/content-cipher.js';
import { GroupCommitter } from '../../src/store/group-commit.js';
import { openStore } from '../../src/store/open-store.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SQLITE_MIGRATIONS, SqliteStore, type SqliteStoreOptions } from '../../src/store/sqlite-store.js';
import { MIGRATIONS as PG_MIGRATIONS } from '../../src/store/pg-migrations.js';
import type {
  AppendOptions,
  AppendOutcome,
  ConversationEvent,
  ConversationListQuery,
  ConversationSummary,
  Delivery,
  GroupChangeOutcome,
  GroupLimits,
  MembershipEvent,
  NewMessage,
  Store,
  StoredMessage,
} from '../../src/store/store.js';

const PG_URL = process.env.RAMPART_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** Every SQLite schema version, in order: what a database at the current schema has applied. */
const SQLITE_VERSIONS = SQLITE_MIGRATIONS.map((_, i) => i + 1);
const T = 'default';
const LIMITS: AppendOptions = { maxInboxSize: 1000 };
const GL: GroupLimits = { maxGroupMembers: 100, maxGroupsPerUser: 100 };

type RawTable = 'events' | 'conversations';

interface Harness {
  setup(): Promise<void>;
  /** A new, initialised Store over the same database as every other one this harness opened. */
  open(options?: { cipher?: ContentCipher; maxDevicesPerUser?: number }): Promise<Store>;
  /** One row as stored (bypassing the adapter): `events` by event id, `conversations` by conversation id. */
  raw(table: RawTable, id: string): Promise<Record<string, unknown> | undefined>;
  teardown(): Promise<void>;
}

function sqliteHarness(tuning: SqliteStoreOptions = {}): Harness {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-store-'));
  const file = join(dir, 'store.db');
  return {
    async setup() {},
    async open(options = {}) {
      const store = new SqliteStore(file, { ...tuning, ...options });
      await store.init();
      return store;
    },
    async raw(table, id) {
      const db = new Database(file, { readonly: true });
      try {
        const column = table === 'events' ? 'id' : 'uuid';
        return db.prepare(`SELECT * FROM ${table} WHERE ${column} = unhex(replace(?, '-', ''))`).get(id) as
          | Record<string, unknown>
          | undefined;
      } finally {
        db.close();
      }
    },
    async teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresHarness(): Harness {
  const schema = `rampart_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: PG_URL, max: 1, connectionTimeoutMillis: 5000 });
  return {
    async setup() {
      await admin.query('SELECT 1'); // unreachable → the suite fails here
    },
    async open(options = {}) {
      // Every store has its own pool: two stores are two nodes.
      const store = new PostgresStore(PG_URL, { ...options, schema, pool: { max: 4, connectionTimeoutMillis: 5000 } });
      try {
        await store.init();
      } catch (err) {
        await store.close();
        throw err;
      }
      return store;
    },
    async raw(table, id) {
      const column = table === 'events' ? 'id' : 'uuid';
      return (await admin.query(`SELECT * FROM "${schema}".${table} WHERE ${column} = $1`, [id])).rows[0] as
        | Record<string, unknown>
        | undefined;
    },
    async teardown() {
      try {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await admin.end();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Builders

/** A UUIDv7 for time `ms` (time-ordered, as the server assigns them). */
function v7(ms: number): string {
  const ts = ms.toString(16).padStart(12, '0');
  const r = randomUUID();
  return `${ts.slice(0, 8)}-${ts.slice(8, 12)}-7${r.slice(15, 18)}-${r.slice(19)}`;
}

let counter = 0;
const BASE_TS = Date.now();
const nextTs = (): number => BASE_TS + ++counter;

const users = (n: number): string[] => Array.from({ length: n }, () => randomUUID());
const sorted = (values: readonly string[]): string[] => [...values].sort();

/** A direct message `from` → `to`. Its id is a UUIDv7 of its timestamp. */
function dm(from: string, to: string, extra: Partial<NewMessage> = {}): NewMessage {
  const timestamp = extra.timestamp ?? nextTs();
  return {
    id: v7(timestamp),
    tenantId: T,
    senderId: from,
    to: { peerId: to },
    timestamp,
    content: `message ${counter}`,
    mentions: [],
    hashtags: [],
    links: [],
    ...extra,
  };
}

/** A group message. */
function gm(from: string, conversationId: string, extra: Partial<NewMessage> = {}): NewMessage {
  return dm(from, from, { to: { conversationId }, ...extra });
}

/** The common fields of a group request by `actorId`. */
function req(actorId: string, tenantId = T): { tenantId: string; actorId: string; eventId: string; timestamp: number } {
  const timestamp = nextTs();
  return { tenantId, actorId, eventId: v7(timestamp), timestamp };
}

function stored(outcome: AppendOutcome | undefined): StoredMessage {
  assert.ok(outcome !== undefined && outcome.status === 'stored', `expected stored, got ${JSON.stringify(outcome)}`);
  return outcome.message;
}

function okEvent(outcome: GroupChangeOutcome): MembershipEvent {
  assert.equal(outcome.status, 'ok', `expected ok, got ${JSON.stringify(outcome)}`);
  return (outcome as { event: MembershipEvent }).event;
}

function okDeliveries(outcome: GroupChangeOutcome): Delivery[] {
  assert.equal(outcome.status, 'ok');
  return sortDeliveries((outcome as { deliveries: Delivery[] }).deliveries);
}

function sortDeliveries(deliveries: readonly Delivery[]): Delivery[] {
  return [...deliveries].sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.pos - b.pos));
}

function deliveriesOf(outcome: AppendOutcome | undefined): Delivery[] {
  assert.ok(outcome !== undefined && outcome.status === 'stored');
  return sortDeliveries(outcome.deliveries);
}

const d = (userId: string, pos: number): Delivery => ({ userId, pos });

async function createGroup(store: Store, owner: string, members: readonly string[], name = 'a group'): Promise<string> {
  const conversationId = randomUUID();
  okEvent(await store.createGroup({ ...req(owner), conversationId, name, memberIds: members }, GL));
  return conversationId;
}

async function allEntries(store: Store, userId: string, tenantId = T): Promise<{ pos: number; event: ConversationEvent }[]> {
  return (await store.timeline(tenantId, userId, 0, 10_000)).entries;
}

/** The last event of `userId`'s timeline. */
async function lastEvent(store: Store, userId: string): Promise<ConversationEvent | undefined> {
  return (await allEntries(store, userId)).at(-1)?.event;
}

async function lastPos(store: Store, userId: string, tenantId = T): Promise<number> {
  return (await store.syncState(tenantId, userId)).lastPos;
}

async function historyIds(store: Store, userId: string, conversationId: string, mode: 'all' | 'since_join' = 'all'): Promise<number[] | undefined> {
  const page = await store.history(T, userId, { conversationId }, { limit: 1000, groupHistory: mode });
  return page?.events.map((e) => e.seq);
}

/** Wraps a store and records its appendMessages calls (the group committer's transactions). */
function spy(store: Store, fail?: Error): { store: Pick<Store, 'appendMessages'>; calls: NewMessage[][] } {
  const calls: NewMessage[][] = [];
  return {
    calls,
    store: {
      async appendMessages(batch, options) {
        calls.push([...batch]);
        if (fail !== undefined) throw fail;
        return store.appendMessages(batch, options);
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------

function storeContract(name: string, makeHarness: () => Harness): void {
  describe(`Store contract: ${name}`, () => {
    let h: Harness;
    let store: Store;

    before(async () => {
      h = makeHarness();
      await h.setup();
      store = await h.open();
    });

    after(async () => {
      await store?.close();
      await h?.teardown();
    });

    test('init is idempotent and ping answers', async () => {
      await store.init();
      await store.ping();
      assert.deepEqual(await store.appendMessages([], LIMITS), []);
    });

    test('direct messages: seq per conversation, pos per user, the sender gets its own copy', async () => {
      const [alice, bob, carol] = users(3);
      const first = [dm(alice!, bob!), dm(alice!, bob!), dm(bob!, alice!)];
      const out1 = await store.appendMessages(first, LIMITS);
      const m1 = stored(out1[0]);
      const conversationId = m1.conversationId;
      assert.match(conversationId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.deepEqual(m1, {
        kind: 'message',
        id: first[0]!.id,
        tenantId: T,
        conversationId,
        conversationKind: 'direct',
        seq: 1,
        senderId: alice,
        recipientId: bob,
        content: first[0]!.content,
        mentions: [],
        hashtags: [],
        links: [],
        timestamp: first[0]!.timestamp,
      });
      assert.deepEqual(out1.map((o) => stored(o).seq), [1, 2, 3]);
      assert.deepEqual(out1.map((o) => stored(o).conversationId), [conversationId, conversationId, conversationId]);
      assert.equal(stored(out1[2]).recipientId, alice);
      assert.deepEqual(out1.map(deliveriesOf), [1, 2, 3].map((p) => sortDeliveries([d(alice!, p), d(bob!, p)])));

      // A second batch continues both counters; a new peer is a new conversation with seq 1.
      const out2 = await store.appendMessages([dm(alice!, carol!), dm(bob!, alice!)], LIMITS);
      const toCarol = stored(out2[0]);
      assert.notEqual(toCarol.conversationId, conversationId);
      assert.equal(toCarol.seq, 1);
      assert.deepEqual(deliveriesOf(out2[0]), sortDeliveries([d(alice!, 4), d(carol!, 1)]));
      assert.equal(stored(out2[1]).seq, 4);
      assert.equal(stored(out2[1]).conversationId, conversationId);
      assert.deepEqual(deliveriesOf(out2[1]), sortDeliveries([d(alice!, 5), d(bob!, 4)]));

      // Timelines hold exactly those events, decoded, in pos order.
      const aliceTl = await store.timeline(T, alice!, 0, 100);
      assert.deepEqual(aliceTl.entries.map((e) => e.pos), [1, 2, 3, 4, 5]);
      assert.deepEqual(aliceTl.entries.map((e) => e.event), [...out1, ...out2].map(stored));
      assert.equal(aliceTl.firstPos, 1);
      assert.equal(aliceTl.lastPos, 5);
      const bobTl = await store.timeline(T, bob!, 0, 100);
      assert.deepEqual(bobTl.entries.map((e) => e.event), [...out1.map(stored), stored(out2[1])]);
      assert.deepEqual((await store.timeline(T, carol!, 0, 100)).entries, [{ pos: 1, event: toCarol }]);

      // Note to self: a one-member conversation; recipientId is the sender.
      const self = stored((await store.appendMessages([dm(carol!, carol!)], LIMITS))[0]);
      assert.equal(self.recipientId, carol);
      assert.equal(self.seq, 1);
      assert.notEqual(self.conversationId, toCarol.conversationId);
      assert.deepEqual(await store.membersIfMember(T, self.conversationId, carol!), [carol]);
      assert.equal(await lastPos(store, carol!), 2);
      assert.deepEqual(sorted((await store.membersIfMember(T, conversationId, bob!))!), sorted([alice!, bob!]));
    });

    test('a direct conversation named by its conversationId: either member may send; anyone else is forbidden', async () => {
      const [alice, bob, mallory] = users(3);
      const first = stored((await store.appendMessages([dm(alice!, bob!)], LIMITS))[0]);
      const conversationId = first.conversationId;
      // Both members, by id, in one batch with a by-peer message: one conversation, seq continues.
      const byId = [gm(bob!, conversationId), dm(alice!, bob!), gm(alice!, conversationId.toUpperCase())];
      const out = await store.appendMessages(byId, LIMITS);
      assert.deepEqual(out.map((o) => stored(o).seq), [2, 3, 4]);
      assert.deepEqual(out.map((o) => stored(o).conversationId), [conversationId, conversationId, conversationId]);
      assert.deepEqual(out.map((o) => stored(o).conversationKind), ['direct', 'direct', 'direct']);
      assert.deepEqual(out.map((o) => stored(o).recipientId), [alice, bob, bob]);
      assert.deepEqual(stored(out[0]), { ...stored(out[1]), id: byId[0]!.id, senderId: bob, recipientId: alice, seq: 2, content: byId[0]!.content, timestamp: byId[0]!.timestamp });
      assert.deepEqual(deliveriesOf(out[0]), sortDeliveries([d(alice!, 2), d(bob!, 2)]));
      assert.deepEqual(deliveriesOf(out[2]), sortDeliveries([d(alice!, 4), d(bob!, 4)]));
      // Both timelines hold it, decoded as stored (recipientId set).
      for (const u of [alice!, bob!]) {
        const tl = await allEntries(store, u);
        assert.deepEqual(tl.map((e) => e.event), [first, ...out.map(stored)]);
      }
      const page = await store.history(T, alice!, { peerId: bob! }, { limit: 10, groupHistory: 'all' });
      assert.deepEqual(page?.events.map((e) => e.seq), [4, 3, 2, 1]);

      // A third user naming that id is forbidden, and nothing is stored.
      assert.deepEqual(await store.appendMessages([gm(mallory!, conversationId)], LIMITS), [{ status: 'forbidden' }]);
      assert.equal(await lastPos(store, mallory!), 0);
      assert.equal(await lastPos(store, alice!), 4);
      assert.equal(await lastPos(store, bob!), 4);

      // The recipient's bound applies as for a message by peer; a note to self by id has one member.
      assert.equal(await store.ack(T, alice!, undefined, 4), 4);
      const bounded = await store.appendMessages([gm(alice!, conversationId)], { maxInboxSize: 4 });
      assert.deepEqual(bounded, [{ status: 'inbox_full' }]);
      const self = stored((await store.appendMessages([dm(mallory!, mallory!)], LIMITS))[0]);
      const again = await store.appendMessages([gm(mallory!, self.conversationId), gm(alice!, self.conversationId)], LIMITS);
      assert.equal(stored(again[0]).seq, 2);
      assert.equal(stored(again[0]).recipientId, mallory);
      assert.deepEqual(deliveriesOf(again[0]), [d(mallory!, 2)]);
      assert.deepEqual(again[1], { status: 'forbidden' });
    });

    test('round-trips replyTo, attachments, mentions, hashtags, links and clientMsgId; absent stays absent', async () => {
      const [alice, bob] = users(2);
      const full = dm(alice!, bob!, {
        content: 'see https://example.com/a?b=1 #rampart @bob "quotes" \\ \u00e9\u{1F510}',
        replyTo: randomUUID(),
        attachments: [
          { type: 'image', url: 'https://cdn.example.com/i.png', name: 'i.png' },
          { type: 'file', url: 'http://example.com/f', name: 'report "final".pdf' },
        ],
        mentions: [bob!],
        hashtags: ['rampart'],
        links: [
          { url: 'https://example.com/a?b=1', safe: true },
          { url: 'javascript:alert(1)', safe: false },
        ],
        clientMsgId: 'rt-1',
      });
      const bare = dm(alice!, bob!);
      const empty = dm(alice!, bob!, { attachments: [] });
      const out = await store.appendMessages([full, bare, empty], LIMITS);
      const [gotFull, gotBare, gotEmpty] = (await allEntries(store, bob!)).map((e) => e.event as StoredMessage);
      assert.deepEqual(gotFull, stored(out[0]));
      assert.equal(gotFull!.content, full.content);
      assert.equal(gotFull!.replyTo, full.replyTo);
      assert.deepEqual(gotFull!.attachments, full.attachments);
      assert.deepEqual(gotFull!.mentions, [bob]);
      assert.deepEqual(gotFull!.hashtags, ['rampart']);
      assert.deepEqual(gotFull!.links, full.links);
      assert.equal(gotFull!.clientMsgId, 'rt-1');
      assert.deepEqual(gotBare, stored(out[1]));
      for (const key of ['replyTo', 'attachments', 'clientMsgId']) {
        assert.equal(Object.hasOwn(gotBare!, key), false, `${key} must be absent, not undefined`);
      }
      assert.deepEqual(gotEmpty!.attachments, []);
      assert.equal(typeof gotFull!.timestamp, 'number');
      assert.equal(typeof gotFull!.seq, 'number');
    });

    test('dedupe by (tenant, sender, clientMsgId): across batches, within a batch, whatever the recipient', async () => {
      const [alice, bob, carol] = users(3);
      const original = dm(alice!, bob!, { clientMsgId: 'c-1' });
      const first = stored((await store.appendMessages([original], LIMITS))[0]);

      const [again] = await store.appendMessages([dm(alice!, bob!, { clientMsgId: 'c-1', content: 'retry' })], LIMITS);
      assert.deepEqual(again, { status: 'duplicate', message: first });
      // Same key to another peer: still the first message, nothing stored.
      const [elsewhere] = await store.appendMessages([dm(alice!, carol!, { clientMsgId: 'c-1' })], LIMITS);
      assert.deepEqual(elsewhere, { status: 'duplicate', message: first });
      assert.equal(await lastPos(store, carol!), 0);

      // Within one batch: the second gets the first one's message; another sender or tenant is another key.
      const a = dm(alice!, bob!, { clientMsgId: 'c-2' });
      const b = dm(alice!, bob!, { clientMsgId: 'c-2', content: 'same key' });
      const otherSender = dm(carol!, bob!, { clientMsgId: 'c-2' });
      const otherTenant = dm(alice!, bob!, { clientMsgId: 'c-2', tenantId: 'tenant-x' });
      const out = await store.appendMessages([a, b, otherSender, otherTenant], LIMITS);
      assert.deepEqual(out.map((o) => o.status), ['stored', 'duplicate', 'stored', 'stored']);
      assert.deepEqual(out[1], { status: 'duplicate', message: stored(out[0]) });
      assert.equal(stored(out[0]).seq, 2);
      assert.equal(stored(out[3]).tenantId, 'tenant-x');
      assert.equal(stored(out[3]).seq, 1);

      // Alice: original, a → 2; Bob: original, a, carol's → 3.
      assert.equal(await lastPos(store, alice!), 2);
      assert.equal(await lastPos(store, bob!), 3);
      assert.equal(await lastPos(store, bob!, 'tenant-x'), 1);

      // A refused message stores nothing: a later one of the same batch with its key is stored, and a
      // repeat after that gets it.
      const refused = dm(alice!, bob!, { clientMsgId: 'c-3' });
      refused.to = { conversationId: randomUUID() }; // no such conversation
      const out3 = await store.appendMessages([refused, dm(alice!, bob!, { clientMsgId: 'c-3', mentions: [bob!] }), dm(alice!, bob!, { clientMsgId: 'c-3' })], LIMITS);
      assert.deepEqual(out3.map((o) => o.status), ['forbidden', 'stored', 'duplicate']);
      assert.deepEqual(out3[2], { status: 'duplicate', message: stored(out3[1]) });
    });

    test('inbox_full for a direct recipient at the bound; duplicates still answered; the sender is never bounded', async () => {
      const [alice, bob, carol] = users(3);
      const limits = { maxInboxSize: 3 };
      const batch = [dm(alice!, bob!, { clientMsgId: 'f-1' }), dm(alice!, bob!), dm(alice!, carol!), dm(alice!, bob!), dm(alice!, bob!)];
      const out = await store.appendMessages(batch, limits);
      assert.deepEqual(out.map((o) => o.status), ['stored', 'stored', 'stored', 'stored', 'inbox_full']);
      assert.deepEqual(out[4], { status: 'inbox_full' });
      assert.equal(await lastPos(store, bob!), 3);
      assert.equal(await lastPos(store, alice!), 4, 'nothing of a refused message is stored');
      assert.deepEqual((await store.appendMessages([dm(alice!, bob!)], limits)).map((o) => o.status), ['inbox_full']);
      // A retry of a stored message is a duplicate even when the inbox is full.
      const retry = await store.appendMessages([dm(alice!, bob!, { clientMsgId: 'f-1' })], limits);
      assert.deepEqual(retry, [{ status: 'duplicate', message: stored(out[0]) }]);
      // Alice's own backlog (4 unacked) does not stop her from sending.
      assert.equal((await store.appendMessages([dm(alice!, carol!)], limits))[0]!.status, 'stored');
      // Acking frees room: one device acks 1 → exactly one more fits.
      assert.equal(await store.ack(T, bob!, 'phone', 1), 1);
      const more = await store.appendMessages([dm(carol!, bob!), dm(alice!, bob!)], limits);
      assert.deepEqual(more.map((o) => o.status), ['stored', 'inbox_full']);
      assert.equal(await lastPos(store, bob!), 4);
      // The same through acknowledge (what the server calls), with the counters just cached by a
      // batch: the bound must see the new position at once, not after some other write.
      assert.equal((await store.acknowledge(T, bob!, 'phone', 3)).position, 3);
      const again = await store.appendMessages([dm(carol!, bob!), dm(carol!, bob!), dm(alice!, bob!)], limits);
      assert.deepEqual(again.map((o) => o.status), ['stored', 'stored', 'inbox_full']);
      assert.equal(await lastPos(store, bob!), 6);
    });

    test('a direct message refused (inbox_full) or answered as a duplicate creates no conversation', async () => {
      const [alice, bob, carol, dave] = users(4);
      const limits = { maxInboxSize: 1 };
      assert.equal((await store.appendMessages([dm(carol!, bob!)], limits))[0]!.status, 'stored');
      // Alice never wrote to bob, whose backlog is full; in one batch with a message that is stored.
      const out = await store.appendMessages([dm(alice!, bob!), dm(alice!, dave!, { clientMsgId: 'c-1' })], limits);
      assert.deepEqual(out.map((o) => o.status), ['inbox_full', 'stored']);
      // The key again, now towards a new peer: a duplicate of the first, nothing stored.
      assert.equal((await store.appendMessages([dm(alice!, carol!, { clientMsgId: 'c-1' })], limits))[0]!.status, 'duplicate');
      assert.equal(await store.directConversationId(T, alice!, bob!), undefined);
      assert.equal(await store.directConversationId(T, alice!, carol!), undefined);
      const listed = async (u: string) => (await store.listConversations(T, u, { limit: 10, groupHistory: 'since_join' })).conversations.map((c) => c.peerId);
      assert.deepEqual(await listed(alice!), [dave]);
      assert.deepEqual(await listed(bob!), [carol]);
      // A later message that is stored creates the conversation as usual.
      assert.equal((await store.acknowledge(T, bob!, 'phone', 1)).position, 1);
      assert.equal((await store.appendMessages([dm(alice!, bob!)], limits))[0]!.status, 'stored');
      assert.ok((await store.directConversationId(T, alice!, bob!)) !== undefined);
    });

    test('group members at the bound are skipped; the sender always gets its copy', async () => {
      const [owner, a, b] = users(3);
      const gid = await createGroup(store, owner!, [a!, b!]);
      // Everyone has the `created` event at pos 1. Owner and a acknowledge it, b does not.
      await store.ack(T, owner!, undefined, 1);
      await store.ack(T, a!, undefined, 1);
      const limits = { maxInboxSize: 2 };
      const out = await store.appendMessages([gm(owner!, gid), gm(owner!, gid)], limits);
      assert.deepEqual(out.map((o) => o.status), ['stored', 'stored']);
      assert.deepEqual(deliveriesOf(out[0]), sortDeliveries([d(owner!, 2), d(a!, 2), d(b!, 2)]));
      assert.deepEqual(deliveriesOf(out[1]), sortDeliveries([d(owner!, 3), d(a!, 3)]), 'b is at the bound: skipped');
      // b (at the bound) sends: its own entry is written, the others get theirs if below the bound.
      const fromB = await store.appendMessages([gm(b!, gid)], limits);
      assert.deepEqual(deliveriesOf(fromB[0]), sortDeliveries([d(b!, 3)]), 'owner and a are at the bound now');
      // b still sees the skipped message in history.
      assert.deepEqual(await historyIds(store, b!, gid), [4, 3, 2, 1]);
    });

    test('groups: create, add, remove, rename, setRole, leave — events, deliveries and members', async () => {
      const [owner, a, b, c, e] = users(5);
      const conversationId = randomUUID();
      const createReq = { ...req(owner!), conversationId, name: 'Team', memberIds: [a!, b!, a!, owner!] };
      const created = await store.createGroup(createReq, GL);
      assert.deepEqual(
        { ...okEvent(created), userIds: sorted(okEvent(created).userIds) },
        {
          kind: 'membership',
          id: createReq.eventId,
          tenantId: T,
          conversationId,
          seq: 1,
          action: 'created',
          actorId: owner,
          userIds: sorted([owner!, a!, b!]),
          name: 'Team',
          timestamp: createReq.timestamp,
        },
      );
      assert.deepEqual(okDeliveries(created), sortDeliveries([d(owner!, 1), d(a!, 1), d(b!, 1)]));
      assert.deepEqual(sorted((await store.membersIfMember(T, conversationId, a!))!), sorted([owner!, a!, b!]));
      assert.deepEqual(await lastEvent(store, b!), okEvent(created));

      // The owner adds c (and a, already a member): only c is listed.
      const added = await store.addMembers({ ...req(owner!), conversationId, userIds: [a!, c!] }, GL);
      const addedEvent = okEvent(added);
      assert.equal(addedEvent.action, 'added');
      assert.equal(addedEvent.seq, 2);
      assert.deepEqual(addedEvent.userIds, [c]);
      assert.deepEqual(okDeliveries(added), sortDeliveries([d(owner!, 2), d(a!, 2), d(b!, 2), d(c!, 1)]));
      assert.deepEqual(await store.addMembers({ ...req(owner!), conversationId, userIds: [a!, c!] }, GL), { status: 'unchanged' });

      // A plain member may not add, remove or rename.
      assert.deepEqual(await store.addMembers({ ...req(a!), conversationId, userIds: [e!] }, GL), { status: 'forbidden' });
      assert.deepEqual(await store.removeMembers({ ...req(a!), conversationId, userIds: [b!] }), { status: 'forbidden' });
      assert.deepEqual(await store.renameGroup({ ...req(a!), conversationId, name: 'Mine' }), { status: 'forbidden' });

      // Roles: only the owner changes them.
      const promoted = okEvent(await store.setRole({ ...req(owner!), conversationId, userId: a!, role: 'admin' }));
      assert.equal(promoted.action, 'role_changed');
      assert.deepEqual(promoted.userIds, [a]);
      assert.equal(promoted.role, 'admin');
      assert.deepEqual(await store.setRole({ ...req(owner!), conversationId, userId: a!, role: 'admin' }), { status: 'unchanged' });
      assert.deepEqual(await store.setRole({ ...req(a!), conversationId, userId: b!, role: 'admin' }), { status: 'forbidden' });
      okEvent(await store.setRole({ ...req(owner!), conversationId, userId: b!, role: 'admin' }));

      // Admins add; admins cannot remove admins; nobody removes the owner.
      okEvent(await store.addMembers({ ...req(a!), conversationId, userIds: [e!] }, GL));
      assert.deepEqual(await store.removeMembers({ ...req(a!), conversationId, userIds: [b!] }), { status: 'forbidden' });
      assert.deepEqual(await store.removeMembers({ ...req(a!), conversationId, userIds: [owner!] }), { status: 'forbidden' });
      assert.deepEqual(await store.removeMembers({ ...req(owner!), conversationId, userIds: [owner!] }), { status: 'forbidden' });
      assert.deepEqual(await store.removeMembers({ ...req(a!), conversationId, userIds: [randomUUID()] }), { status: 'unchanged' });

      // An admin removes a member: the removed one gets the event too, and nothing after it.
      const removed = await store.removeMembers({ ...req(a!), conversationId, userIds: [c!, randomUUID()] });
      const removedEvent = okEvent(removed);
      assert.equal(removedEvent.action, 'removed');
      assert.deepEqual(removedEvent.userIds, [c]);
      assert.deepEqual(
        okDeliveries(removed).map((x) => x.userId),
        sorted([owner!, a!, b!, e!, c!]),
        'current members and the removed one',
      );
      assert.deepEqual(await lastEvent(store, c!), removedEvent);
      const cPos = await lastPos(store, c!);
      assert.equal(await store.membersIfMember(T, conversationId, c!), undefined);
      assert.deepEqual((await store.appendMessages([gm(c!, conversationId)], LIMITS))[0], { status: 'forbidden' });
      stored((await store.appendMessages([gm(e!, conversationId)], LIMITS))[0]);
      assert.equal(await lastPos(store, c!), cPos, 'a removed member receives nothing more');

      // The owner removes an admin.
      okEvent(await store.removeMembers({ ...req(owner!), conversationId, userIds: [b!] }));

      // Rename: admin allowed; the same name is unchanged.
      const renamed = okEvent(await store.renameGroup({ ...req(a!), conversationId, name: 'Team 2' }));
      assert.equal(renamed.action, 'renamed');
      assert.deepEqual(renamed.userIds, []);
      assert.equal(renamed.name, 'Team 2');
      assert.deepEqual(await store.renameGroup({ ...req(a!), conversationId, name: 'Team 2' }), { status: 'unchanged' });

      // A plain member leaves.
      const left = await store.leaveGroup({ ...req(e!), conversationId });
      const leftEvent = okEvent(left);
      assert.equal(leftEvent.action, 'left');
      assert.deepEqual(leftEvent.userIds, [e]);
      assert.equal(Object.hasOwn(leftEvent, 'newOwnerId'), false);
      assert.deepEqual(okDeliveries(left).map((x) => x.userId), sorted([owner!, a!, e!]));
      assert.deepEqual(sorted((await store.membersIfMember(T, conversationId, owner!))!), sorted([owner!, a!]));

      // Re-adding a former member makes them current again.
      okEvent(await store.addMembers({ ...req(owner!), conversationId, userIds: [c!] }, GL));
      assert.deepEqual(sorted((await store.membersIfMember(T, conversationId, c!))!), sorted([owner!, a!, c!]));
      assert.equal(await lastPos(store, c!), cPos + 1);

      // Seqs are contiguous across messages and membership events.
      assert.deepEqual(await historyIds(store, owner!, conversationId), Array.from({ length: 11 }, (_, i) => 11 - i));
    });

    test('owner hand-over: to the oldest admin, else the longest-standing member; the last member closes the group', async () => {
      const [owner, m1, m2, adm] = users(4);
      const gid = await createGroup(store, owner!, [m1!]);
      okEvent(await store.addMembers({ ...req(owner!), conversationId: gid, userIds: [m2!] }, GL));
      okEvent(await store.addMembers({ ...req(owner!), conversationId: gid, userIds: [adm!] }, GL));
      okEvent(await store.setRole({ ...req(owner!), conversationId: gid, userId: adm!, role: 'admin' }));

      const left = okEvent(await store.leaveGroup({ ...req(owner!), conversationId: gid }));
      assert.equal(left.action, 'left');
      assert.equal(left.newOwnerId, adm, 'an admin outranks longer-standing plain members');
      const admView = (await store.listConversations(T, adm!, { limit: 10 })).conversations.find((c) => c.conversationId === gid);
      assert.equal(admView?.role, 'owner');
      // The new owner may now change roles; the old one is gone.
      assert.deepEqual(await store.setRole({ ...req(owner!), conversationId: gid, userId: m1!, role: 'admin' }), { status: 'forbidden' });

      // No admin left: the longest-standing member (m1 joined at creation) becomes owner.
      const left2 = okEvent(await store.leaveGroup({ ...req(adm!), conversationId: gid }));
      assert.equal(left2.newOwnerId, m1);
      okEvent(await store.setRole({ ...req(m1!), conversationId: gid, userId: m2!, role: 'admin' }));

      okEvent(await store.leaveGroup({ ...req(m2!), conversationId: gid }));
      const last = await store.leaveGroup({ ...req(m1!), conversationId: gid });
      assert.deepEqual(okDeliveries(last).map((x) => x.userId), [m1], 'the leaver learns it');
      // Closed: every later operation and send is forbidden, even for a former member.
      assert.equal(await store.membersIfMember(T, gid, m1!), undefined);
      assert.deepEqual((await store.appendMessages([gm(m1!, gid)], LIMITS))[0], { status: 'forbidden' });
      assert.deepEqual(await store.addMembers({ ...req(m1!), conversationId: gid, userIds: [owner!] }, GL), { status: 'forbidden' });
      assert.deepEqual(await store.leaveGroup({ ...req(m1!), conversationId: gid }), { status: 'forbidden' });
      assert.equal((await store.listConversations(T, m1!, { limit: 10 })).conversations.some((c) => c.conversationId === gid), false);
    });

    test('refusals: non-member, other tenant, missing group, limits', async () => {
      const [owner, a, outsider, x, y] = users(5);
      const gid = await createGroup(store, owner!, [a!]);
      const missing = randomUUID();
      const forbidden = { status: 'forbidden' };

      // A non-member, whatever they try; a send from them too.
      assert.deepEqual(await store.addMembers({ ...req(outsider!), conversationId: gid, userIds: [x!] }, GL), forbidden);
      assert.deepEqual(await store.removeMembers({ ...req(outsider!), conversationId: gid, userIds: [a!] }), forbidden);
      assert.deepEqual(await store.leaveGroup({ ...req(outsider!), conversationId: gid }), forbidden);
      assert.deepEqual(await store.renameGroup({ ...req(outsider!), conversationId: gid, name: 'x' }), forbidden);
      assert.deepEqual(await store.setRole({ ...req(outsider!), conversationId: gid, userId: a!, role: 'admin' }), forbidden);
      assert.deepEqual(await store.appendMessages([gm(outsider!, gid)], LIMITS), [forbidden]);

      // The same owner uuid in another tenant is another user; the group does not exist there.
      const other = 'tenant-other';
      assert.deepEqual(await store.addMembers({ ...req(owner!, other), conversationId: gid, userIds: [x!] }, GL), forbidden);
      assert.deepEqual(await store.renameGroup({ ...req(owner!, other), conversationId: gid, name: 'x' }), forbidden);
      assert.deepEqual(await store.leaveGroup({ ...req(owner!, other), conversationId: gid }), forbidden);
      assert.deepEqual(await store.appendMessages([gm(owner!, gid, { tenantId: other })], LIMITS), [forbidden]);
      assert.equal(await store.membersIfMember(other, gid, owner!), undefined);
      assert.equal(await store.history(other, owner!, { conversationId: gid }, { limit: 10, groupHistory: 'all' }), undefined);
      assert.equal(await store.markRead(other, owner!, gid, 1), undefined);

      // A group that does not exist.
      assert.deepEqual(await store.addMembers({ ...req(owner!), conversationId: missing, userIds: [x!] }, GL), forbidden);
      assert.deepEqual(await store.removeMembers({ ...req(owner!), conversationId: missing, userIds: [a!] }), forbidden);
      assert.deepEqual(await store.leaveGroup({ ...req(owner!), conversationId: missing }), forbidden);
      assert.deepEqual(await store.renameGroup({ ...req(owner!), conversationId: missing, name: 'x' }), forbidden);
      assert.deepEqual(await store.setRole({ ...req(owner!), conversationId: missing, userId: a!, role: 'admin' }), forbidden);
      assert.deepEqual(await store.appendMessages([gm(owner!, missing)], LIMITS), [forbidden]);

      // A direct conversation is not a group.
      const direct = stored((await store.appendMessages([dm(owner!, a!)], LIMITS))[0]).conversationId;
      assert.deepEqual(await store.addMembers({ ...req(owner!), conversationId: direct, userIds: [x!] }, GL), forbidden);

      // too_many_members counts current members after the change, the creator included.
      const small: GroupLimits = { maxGroupMembers: 3, maxGroupsPerUser: 100 };
      const tooBig = await store.createGroup({ ...req(owner!), conversationId: randomUUID(), name: 'big', memberIds: [a!, x!, y!] }, small);
      assert.deepEqual(tooBig, { status: 'too_many_members' });
      const g3 = randomUUID();
      okEvent(await store.createGroup({ ...req(owner!), conversationId: g3, name: 'three', memberIds: [a!, x!] }, small));
      assert.deepEqual(await store.addMembers({ ...req(owner!), conversationId: g3, userIds: [y!] }, small), { status: 'too_many_members' });
      okEvent(await store.leaveGroup({ ...req(x!), conversationId: g3 }));
      okEvent(await store.addMembers({ ...req(owner!), conversationId: g3, userIds: [y!] }, small));

      // too_many_groups: current group memberships of the creator and of every added user; direct ones do not count.
      const [p, q, r] = users(3);
      const two: GroupLimits = { maxGroupMembers: 100, maxGroupsPerUser: 2 };
      await store.appendMessages([dm(p!, q!), dm(p!, r!)], LIMITS);
      const pg1 = randomUUID();
      okEvent(await store.createGroup({ ...req(p!), conversationId: pg1, name: 'p1', memberIds: [] }, two));
      okEvent(await store.createGroup({ ...req(p!), conversationId: randomUUID(), name: 'p2', memberIds: [q!] }, two));
      assert.deepEqual(
        await store.createGroup({ ...req(p!), conversationId: randomUUID(), name: 'p3', memberIds: [] }, two),
        { status: 'too_many_groups' },
      );
      okEvent(await store.createGroup({ ...req(r!), conversationId: randomUUID(), name: 'r1', memberIds: [q!] }, two));
      // q is in two groups now: adding q, or creating a group with q, is refused.
      assert.deepEqual(await store.addMembers({ ...req(p!), conversationId: pg1, userIds: [q!] }, two), { status: 'too_many_groups' });
      assert.deepEqual(
        await store.createGroup({ ...req(r!), conversationId: randomUUID(), name: 'r2', memberIds: [q!] }, two),
        { status: 'too_many_groups' },
      );
      // Leaving a group frees a slot.
      okEvent(await store.leaveGroup({ ...req(p!), conversationId: pg1 }));
      okEvent(await store.createGroup({ ...req(p!), conversationId: randomUUID(), name: 'p3', memberIds: [] }, two));
    });

    test('history: since_join vs all, a former member up to their removal, cursors, direct by peer', async () => {
      const [owner, a, late, stranger] = users(4);
      const gid = await createGroup(store, owner!, [a!]); // seq 1
      await store.appendMessages([gm(owner!, gid), gm(a!, gid)], LIMITS); // 2, 3
      okEvent(await store.addMembers({ ...req(owner!), conversationId: gid, userIds: [late!] }, GL)); // 4
      await store.appendMessages([gm(late!, gid)], LIMITS); // 5
      okEvent(await store.removeMembers({ ...req(owner!), conversationId: gid, userIds: [a!] })); // 6
      await store.appendMessages([gm(owner!, gid)], LIMITS); // 7

      assert.deepEqual(await historyIds(store, owner!, gid, 'since_join'), [7, 6, 5, 4, 3, 2, 1]);
      assert.deepEqual(await historyIds(store, late!, gid, 'since_join'), [7, 6, 5, 4], 'from the event that added them');
      assert.deepEqual(await historyIds(store, late!, gid, 'all'), [7, 6, 5, 4, 3, 2, 1]);
      assert.deepEqual(await historyIds(store, a!, gid, 'all'), [6, 5, 4, 3, 2, 1], 'nothing after the removal');
      assert.deepEqual(await historyIds(store, a!, gid, 'since_join'), [6, 5, 4, 3, 2, 1]);
      assert.equal(await historyIds(store, stranger!, gid), undefined);
      assert.equal(await historyIds(store, owner!, randomUUID()), undefined);

      // Events are decoded, with their kinds.
      const page = await store.history(T, late!, { conversationId: gid }, { limit: 2, groupHistory: 'since_join' });
      assert.equal(page?.conversationId, gid);
      assert.deepEqual(page?.events.map((e) => [e.seq, e.kind]), [[7, 'message'], [6, 'membership']]);
      const msg7 = page!.events[0] as StoredMessage;
      assert.equal(msg7.conversationKind, 'group');
      assert.equal(Object.hasOwn(msg7, 'recipientId'), false);

      // beforeSeq and beforeId cursors.
      const q = { limit: 2, groupHistory: 'all' as const };
      const before5 = await store.history(T, owner!, { conversationId: gid }, { ...q, beforeSeq: 5 });
      assert.deepEqual(before5?.events.map((e) => e.seq), [4, 3]);
      const before2 = await store.history(T, owner!, { conversationId: gid }, { ...q, beforeSeq: 2 });
      assert.deepEqual(before2?.events.map((e) => e.seq), [1]);
      const byId = await store.history(T, owner!, { conversationId: gid }, { ...q, beforeId: page!.events[1]!.id });
      assert.deepEqual(byId?.events.map((e) => e.seq), [5, 4]);
      // A cursor from another conversation yields an empty page, not an error.
      const foreign = stored((await store.appendMessages([dm(owner!, stranger!)], LIMITS))[0]);
      assert.deepEqual(await store.history(T, owner!, { conversationId: gid }, { ...q, beforeId: foreign.id }), {
        conversationId: gid,
        events: [],
      });
      // since_join keeps its floor with a cursor too.
      assert.deepEqual(
        (await store.history(T, late!, { conversationId: gid }, { limit: 10, beforeSeq: 6, groupHistory: 'since_join' }))?.events.map((e) => e.seq),
        [5, 4],
      );

      // Direct history by peer, from either side; no conversation yet → an empty page without id.
      const [x, y, z] = users(3);
      assert.deepEqual(await store.history(T, x!, { peerId: y! }, q), { events: [] });
      const dms = (await store.appendMessages([dm(x!, y!), dm(y!, x!), dm(x!, y!)], LIMITS)).map(stored);
      const convId = dms[0]!.conversationId;
      const fromY = await store.history(T, y!, { peerId: x! }, { limit: 10, groupHistory: 'since_join' });
      assert.deepEqual(fromY, { conversationId: convId, events: [...dms].reverse() });
      assert.deepEqual(await store.history(T, x!, { conversationId: convId }, { limit: 10, groupHistory: 'all' }), fromY);
      assert.equal(await store.history(T, z!, { conversationId: convId }, q), undefined);
      assert.deepEqual(await store.history(T, z!, { peerId: x! }, q), { events: [] });
    });

    test('membersIfMember', async () => {
      const [owner, a, b] = users(3);
      const gid = await createGroup(store, owner!, [a!, b!]);
      assert.deepEqual(sorted((await store.membersIfMember(T, gid, b!))!), sorted([owner!, a!, b!]));
      assert.equal(await store.membersIfMember(T, gid, randomUUID()), undefined);
      assert.equal(await store.membersIfMember(T, randomUUID(), owner!), undefined);
      assert.equal(await store.membersIfMember('tenant-other', gid, owner!), undefined);
      okEvent(await store.leaveGroup({ ...req(b!), conversationId: gid }));
      assert.equal(await store.membersIfMember(T, gid, b!), undefined);
      assert.deepEqual(sorted((await store.membersIfMember(T, gid, a!))!), sorted([owner!, a!]));
      const direct = stored((await store.appendMessages([dm(a!, b!)], LIMITS))[0]).conversationId;
      assert.deepEqual(sorted((await store.membersIfMember(T, direct, b!))!), sorted([a!, b!]));
      assert.equal(await store.membersIfMember(T, direct, owner!), undefined);
    });

    test('timeline paging: after, limit, firstPos and lastPos', async () => {
      const [alice, bob] = users(2);
      assert.deepEqual(await store.timeline(T, bob!, 0, 10), { entries: [], firstPos: 1, lastPos: 0 });
      const out = await store.appendMessages(Array.from({ length: 7 }, () => dm(alice!, bob!)), LIMITS);
      const page1 = await store.timeline(T, bob!, 0, 3);
      assert.deepEqual(page1.entries.map((e) => e.pos), [1, 2, 3]);
      assert.deepEqual(page1.entries.map((e) => e.event.id), out.slice(0, 3).map((o) => stored(o).id));
      assert.equal(page1.firstPos, 1);
      assert.equal(page1.lastPos, 7);
      assert.deepEqual((await store.timeline(T, bob!, 3, 3)).entries.map((e) => e.pos), [4, 5, 6]);
      assert.deepEqual((await store.timeline(T, bob!, 6, 3)).entries.map((e) => e.pos), [7]);
      assert.deepEqual((await store.timeline(T, bob!, 7, 3)).entries, []);
      assert.deepEqual((await store.timeline(T, bob!, 0, 0)).entries, []);
      assert.deepEqual(await store.timeline('tenant-other', bob!, 0, 10), { entries: [], firstPos: 1, lastPos: 0 });
    });

    test('syncState and ack: never backwards, clamped, device vs user positions, a new device resumes from the user', async () => {
      const [alice, bob] = users(2);
      assert.deepEqual(await store.syncState(T, bob!), { lastPos: 0, userAckedPos: 0 });
      assert.deepEqual(await store.syncState(T, bob!, 'phone'), { lastPos: 0, userAckedPos: 0 });
      assert.equal(await store.ack(T, bob!, undefined, 5), 0, 'clamped to an empty timeline');
      await store.appendMessages(Array.from({ length: 5 }, () => dm(alice!, bob!)), LIMITS);

      assert.equal(await store.ack(T, bob!, 'phone', 3), 3);
      assert.deepEqual(await store.syncState(T, bob!, 'phone'), { lastPos: 5, userAckedPos: 3, deviceAckedPos: 3 });
      assert.equal(await store.ack(T, bob!, 'phone', 2), 3, 'never backwards');
      assert.equal(await store.ack(T, bob!, 'laptop', 1), 1);
      assert.deepEqual(await store.syncState(T, bob!, 'laptop'), { lastPos: 5, userAckedPos: 3, deviceAckedPos: 1 });
      // A new device (or none named) starts from what no device acknowledged.
      assert.deepEqual(await store.syncState(T, bob!, 'tablet'), { lastPos: 5, userAckedPos: 3 });
      assert.deepEqual(await store.syncState(T, bob!), { lastPos: 5, userAckedPos: 3 });
      assert.equal(await store.ack(T, bob!, 'laptop', 99), 5, 'clamped to lastPos');
      assert.deepEqual(await store.syncState(T, bob!, 'phone'), { lastPos: 5, userAckedPos: 5, deviceAckedPos: 3 });
      assert.equal(await store.ack(T, bob!, undefined, 2), 5, 'the user position never goes back either');
      assert.equal(await store.ack(T, alice!, undefined, 4), 4);
      assert.deepEqual(await store.syncState(T, alice!, 'phone'), { lastPos: 5, userAckedPos: 4 });
      // Another tenant's same uuid is another user.
      assert.deepEqual(await store.syncState('tenant-other', bob!, 'phone'), { lastPos: 0, userAckedPos: 0 });
    });

    test('device rows are bounded per user: a new one past maxDevicesPerUser drops the least-advanced others', async () => {
      const bounded = await h.open({ maxDevicesPerUser: 3 });
      try {
        const [alice, bob] = users(2);
        await bounded.appendMessages(Array.from({ length: 10 }, () => dm(alice!, bob!)), LIMITS);
        const position = async (device: string): Promise<number | undefined> => (await bounded.syncState(T, bob!, device)).deviceAckedPos;
        assert.equal(await bounded.ack(T, bob!, 'a', 5), 5);
        assert.equal((await bounded.acknowledge(T, bob!, 'b', 7)).position, 7);
        assert.equal(await bounded.ack(T, bob!, 'c', 6), 6);
        assert.equal(await bounded.ack(T, bob!, 'a', 4), 5, 'an existing device never goes back, and is not a new row');
        assert.deepEqual([await position('a'), await position('b'), await position('c')], [5, 7, 6]);
        // A fourth device, behind all the others, stays (it is the one acking); 'a' (5) goes.
        assert.equal((await bounded.acknowledge(T, bob!, 'd', 2)).position, 2);
        assert.deepEqual([await position('a'), await position('b'), await position('c'), await position('d')], [undefined, 7, 6, 2]);
        // 'a' resumes as a new device: from what no device acknowledged.
        assert.deepEqual(await bounded.syncState(T, bob!, 'a'), { lastPos: 10, userAckedPos: 7 });
        // Acks of existing devices drop nothing; a new one drops the least advanced ('d', 2).
        assert.equal(await bounded.ack(T, bob!, 'd', 9), 9);
        assert.equal(await bounded.ack(T, bob!, 'a', 8), 8);
        assert.deepEqual([await position('a'), await position('b'), await position('c'), await position('d')], [8, 7, undefined, 9]);
        // Another user's devices are theirs.
        assert.equal(await bounded.ack(T, alice!, 'a', 1), 1);
        assert.equal(await position('a'), 8);
      } finally {
        await bounded.close();
      }
    });

    test('listConversations: order, cursor paging, names, peers, roles, counts, lastMessage, unread', async () => {
      const [me, bob, carol, dave] = users(4);
      const t0 = BASE_TS + 10_000_000; // later than anything else this run writes for these users
      const withBob = (await store.appendMessages([dm(bob!, me!, { timestamp: t0 + 1 }), dm(me!, bob!, { timestamp: t0 + 2 })], LIMITS)).map(stored);
      const gid = randomUUID();
      const created = okEvent(
        await store.createGroup(
          { tenantId: T, actorId: carol!, eventId: v7(t0 + 3), timestamp: t0 + 3, conversationId: gid, name: 'Plans', memberIds: [me!, dave!] },
          GL,
        ),
      );
      const inGroup = (await store.appendMessages([gm(carol!, gid, { timestamp: t0 + 4 }), gm(dave!, gid, { timestamp: t0 + 5 })], LIMITS)).map(stored);
      const withCarol = stored((await store.appendMessages([dm(carol!, me!, { timestamp: t0 + 6 })], LIMITS))[0]);
      // An older conversation with dave that I am no longer… (a group I left is not listed).
      const leftGroup = await createGroup(store, dave!, [me!]);
      okEvent(await store.leaveGroup({ ...req(me!), conversationId: leftGroup }));

      const all = await store.listConversations(T, me!, { limit: 10 });
      assert.equal(all.nextCursor, undefined);
      assert.deepEqual(all.conversations, [
        {
          conversationId: withCarol.conversationId,
          kind: 'direct',
          peerId: carol,
          role: 'member',
          memberCount: 2,
          lastSeq: 1,
          lastActivityAt: t0 + 6,
          lastMessage: withCarol,
          readSeq: 0,
          unreadCount: 1,
        },
        {
          conversationId: gid,
          kind: 'group',
          name: 'Plans',
          role: 'member',
          memberCount: 3,
          lastSeq: 3,
          lastActivityAt: t0 + 5,
          lastMessage: inGroup[1],
          readSeq: 0,
          unreadCount: 2,
        },
        {
          conversationId: withBob[0]!.conversationId,
          kind: 'direct',
          peerId: bob,
          role: 'member',
          memberCount: 2,
          lastSeq: 2,
          lastActivityAt: t0 + 2,
          lastMessage: withBob[1],
          readSeq: 0,
          unreadCount: 1,
        },
      ]);
      assert.equal(created.seq, 1);

      // Paging with the opaque cursor.
      const p1 = await store.listConversations(T, me!, { limit: 2 });
      assert.deepEqual(p1.conversations.map((c) => c.conversationId), [withCarol.conversationId, gid]);
      assert.equal(typeof p1.nextCursor, 'string');
      const p2 = await store.listConversations(T, me!, { limit: 2, before: p1.nextCursor! });
      assert.deepEqual(p2.conversations.map((c) => c.conversationId), [withBob[0]!.conversationId]);
      assert.equal(p2.nextCursor, undefined);

      // The owner's view; a group with no message yet has no lastMessage and its creation time.
      const carolList = await store.listConversations(T, carol!, { limit: 10 });
      const carolGroup = carolList.conversations.find((c) => c.conversationId === gid);
      assert.equal(carolGroup?.role, 'owner');
      assert.equal(carolGroup?.unreadCount, 1, 'only messages by others');
      const empty = await createGroup(store, dave!, []);
      const daveEmpty = (await store.listConversations(T, dave!, { limit: 10 })).conversations.find((c) => c.conversationId === empty);
      assert.equal(daveEmpty?.lastSeq, 1);
      assert.equal(daveEmpty?.memberCount, 1);
      assert.equal(Object.hasOwn(daveEmpty!, 'lastMessage'), false);
      assert.equal(daveEmpty?.unreadCount, 0);

      // Unread counts follow markRead; membership events are never unread; a late member counts from joining.
      assert.equal(await store.markRead(T, me!, gid, 2), 2);
      const afterRead = (await store.listConversations(T, me!, { limit: 10 })).conversations.find((c) => c.conversationId === gid);
      assert.equal(afterRead?.readSeq, 2);
      assert.equal(afterRead?.unreadCount, 1);
      const late = users(1)[0]!;
      okEvent(await store.addMembers({ ...req(carol!), conversationId: gid, userIds: [late] }, GL));
      await store.appendMessages([gm(carol!, gid)], LIMITS);
      const lateView = (await store.listConversations(T, late, { limit: 10 })).conversations;
      assert.equal(lateView.length, 1);
      assert.equal(lateView[0]!.unreadCount, 1);
      assert.equal(lateView[0]!.memberCount, 4);
      assert.deepEqual(await store.listConversations(T, randomUUID(), { limit: 10 }), { conversations: [] });
    });

    test('listConversations: a late member never sees a lastMessage from before joining, unless groupHistory is all', async () => {
      const [owner, member, late] = users(3);
      const gid = await createGroup(store, owner!, [member!]);
      const before = stored((await store.appendMessages([gm(member!, gid, { content: 'before you came' })], LIMITS))[0]);
      okEvent(await store.addMembers({ ...req(owner!), conversationId: gid, userIds: [late!] }, GL));
      const view = async (q: Partial<ConversationListQuery> = {}): Promise<ConversationSummary> =>
        (await store.listConversations(T, late!, { limit: 10, ...q })).conversations.find((c) => c.conversationId === gid)!;
      assert.equal(Object.hasOwn(await view(), 'lastMessage'), false, 'the default is since_join');
      assert.equal(Object.hasOwn(await view({ groupHistory: 'since_join' }), 'lastMessage'), false);
      assert.deepEqual((await view({ groupHistory: 'all' })).lastMessage, before);
      // Members from the start see it either way; after a new message, the late member sees that one.
      const memberView = (await store.listConversations(T, member!, { limit: 10 })).conversations.find((c) => c.conversationId === gid);
      assert.deepEqual(memberView?.lastMessage, before);
      const after = stored((await store.appendMessages([gm(owner!, gid, { content: 'welcome' })], LIMITS))[0]);
      assert.deepEqual((await view()).lastMessage, after);
    });

    test('markRead: members only, never backwards, never beyond the last seq', async () => {
      const [alice, bob, carol] = users(3);
      const conv = stored((await store.appendMessages([dm(alice!, bob!), dm(alice!, bob!), dm(alice!, bob!)], LIMITS))[0]).conversationId;
      assert.equal(await store.markRead(T, bob!, conv, 2), 2);
      assert.equal(await store.markRead(T, bob!, conv, 1), 2);
      assert.equal(await store.markRead(T, bob!, conv, 50), 3);
      assert.equal(await store.markRead(T, carol!, conv, 1), undefined);
      assert.equal(await store.markRead(T, bob!, randomUUID(), 1), undefined);
      const gid = await createGroup(store, alice!, [carol!]);
      okEvent(await store.leaveGroup({ ...req(carol!), conversationId: gid }));
      assert.equal(await store.markRead(T, carol!, gid, 1), undefined, 'a former member cannot mark read');
    });

    test('pruneOlderThan: old events and their timeline rows go, firstPos moves, counters stay', async () => {
      const [alice, bob] = users(2);
      const old = (ms: number): NewMessage => dm(alice!, bob!, { timestamp: ms });
      const out = await store.appendMessages([old(1_000_000), old(2_000_000), old(3_000_000)], LIMITS);
      const conv = stored(out[0]).conversationId;
      const recent = stored((await store.appendMessages([dm(bob!, alice!)], LIMITS))[0]);
      assert.equal(await store.pruneOlderThan(2_500_000), 2);
      assert.equal(await store.pruneOlderThan(2_500_000), 0);

      const tl = await store.timeline(T, bob!, 0, 10);
      assert.deepEqual(tl.entries.map((e) => e.pos), [3, 4]);
      assert.equal(tl.firstPos, 3);
      assert.equal(tl.lastPos, 4);
      assert.deepEqual(await historyIds(store, alice!, conv), [4, 3]);
      const next = stored((await store.appendMessages([dm(alice!, bob!)], LIMITS))[0]);
      assert.equal(next.seq, 5, 'seq never moves back');
      assert.equal(await lastPos(store, bob!), 5);

      // Everything pruned: firstPos is lastPos + 1, and positions still continue.
      assert.equal(await store.pruneOlderThan(3_000_001), 1);
      assert.equal(recent.seq, 4);
      const [carol] = users(1);
      const ancient = await store.appendMessages([dm(carol!, carol!, { timestamp: 5_000 })], LIMITS);
      stored(ancient[0]);
      assert.equal(await store.pruneOlderThan(6_000), 1);
      assert.deepEqual(await store.timeline(T, carol!, 0, 10), { entries: [], firstPos: 2, lastPos: 1 });
      assert.deepEqual(deliveriesOf((await store.appendMessages([dm(carol!, carol!)], LIMITS))[0]), [d(carol!, 2)]);
    });

    test('encryption at rest: raw rows hold no plaintext; reads decrypt; rotated keys stay readable; a missing key fails', async () => {
      const k1 = randomBytes(32);
      const k2 = randomBytes(32);
      const [alice, bob] = users(2);
      const v1 = await h.open({ cipher: new ContentCipher({ activeKeyId: 'k1', keys: { k1 } }) });
      const secret = dm(alice!, bob!, {
        content: 'the-launch-code-is-4217 https://secret.example.org/plan #operationfalcon',
        attachments: [{ type: 'file', url: 'https://files.example.org/plan.pdf', name: 'falcon-plan.pdf' }],
        mentions: [bob!],
        hashtags: ['operationfalcon'],
        links: [{ url: 'https://secret.example.org/plan', safe: true }],
        clientMsgId: 'enc-1',
      });
      const gid = randomUUID();
      let sealed: StoredMessage;
      let created: MembershipEvent;
      try {
        sealed = stored((await v1.appendMessages([secret], LIMITS))[0]);
        created = okEvent(
          await v1.createGroup({ ...req(alice!), conversationId: gid, name: 'Project Nightingale', memberIds: [bob!] }, GL),
        );
        okEvent(await v1.renameGroup({ ...req(alice!), conversationId: gid, name: 'Project Kestrel' }));
      } finally {
        await v1.close();
      }

      const row = await h.raw('events', secret.id);
      assert.ok(row !== undefined);
      assert.equal(row.key_id, 'k1');
      const userFields = JSON.stringify([row.content, row.attachments, row.mentions, row.hashtags, row.links]);
      for (const plaintext of ['launch-code', 'secret.example.org', 'operationfalcon', 'falcon-plan', 'files.example.org', bob!]) {
        assert.ok(!userFields.includes(plaintext), `raw event must not contain "${plaintext}"`);
      }
      const eventRow = await h.raw('events', created.id);
      assert.ok(eventRow !== undefined && !String(eventRow.content).includes('Nightingale'));
      const convRow = await h.raw('conversations', gid);
      assert.ok(convRow !== undefined);
      assert.ok(!JSON.stringify(convRow).includes('Kestrel') && !JSON.stringify(convRow).includes('Nightingale'));

      // Rotated: k2 seals new rows, k1 still opens old ones.
      const v2 = await h.open({ cipher: new ContentCipher({ activeKeyId: 'k2', keys: { k1, k2 } }) });
      try {
        const later = stored((await v2.appendMessages([dm(bob!, alice!, { content: 'sealed with k2' })], LIMITS))[0]);
        assert.equal((await h.raw('events', later.id))?.key_id, 'k2');
        const tl = await v2.timeline(T, bob!, 0, 10);
        assert.deepEqual(tl.entries.map((e) => e.event.id), [secret.id, created.id, tl.entries[2]!.event.id, later.id]);
        assert.deepEqual(tl.entries[0]!.event, sealed);
        assert.deepEqual(tl.entries[1]!.event, created);
        assert.equal((tl.entries[2]!.event as MembershipEvent).name, 'Project Kestrel');
        assert.deepEqual((await v2.appendMessages([dm(alice!, bob!, { clientMsgId: 'enc-1' })], LIMITS))[0], {
          status: 'duplicate',
          message: sealed,
        });
        const list = await v2.listConversations(T, bob!, { limit: 10 });
        assert.equal(list.conversations.find((c) => c.conversationId === gid)?.name, 'Project Kestrel');
        assert.equal(list.conversations.find((c) => c.kind === 'direct')?.lastMessage?.content, 'sealed with k2');
        const hist = await v2.history(T, alice!, { peerId: bob! }, { limit: 10, groupHistory: 'all' });
        assert.deepEqual(hist?.events.map((e) => e.id), [later.id, secret.id]);
      } finally {
        await v2.close();
      }

      // Without k1 (or without any cipher), reading is a clear UnknownKeyError, never ciphertext.
      const v3 = await h.open({ cipher: new ContentCipher({ activeKeyId: 'k2', keys: { k2 } }) });
      try {
        await assert.rejects(v3.timeline(T, bob!, 0, 10), (err: unknown) => err instanceof UnknownKeyError && err.keyId === 'k1');
        await assert.rejects(v3.history(T, alice!, { peerId: bob! }, { limit: 10, groupHistory: 'all' }), UnknownKeyError);
        // The group's name was sealed again under k2 when v2 opened (names never age out): the
        // list needs no k1; its last messages here were sealed with k2.
        const list = await v3.listConversations(T, alice!, { limit: 10 });
        assert.equal(list.conversations.find((c) => c.conversationId === gid)?.name, 'Project Kestrel');
      } finally {
        await v3.close();
      }
      await assert.rejects(store.timeline(T, alice!, 0, 10), UnknownKeyError);
    });

    test('concurrent writers (two nodes): positions contiguous, no duplicates, no deadlock', async () => {
      const other = await h.open();
      try {
        const [a, b, c] = users(3);
        const gid = await createGroup(store, a!, [b!, c!]);
        const rounds = 12;
        const batchFor = (i: number, node: string): NewMessage[] => [
          dm(a!, b!, { content: `${node}-${i}-ab` }),
          dm(b!, a!, { content: `${node}-${i}-ba` }),
          gm(c!, gid, { content: `${node}-${i}-g` }),
          dm(c!, a!, { content: `${node}-${i}-ca` }),
          dm(b!, c!, { content: `${node}-${i}-bc` }),
          // Both nodes send the same retried message: stored once.
          gm(a!, gid, { clientMsgId: `race-${i}` }),
        ];
        const run = async (s: Store, node: string): Promise<AppendOutcome[]> => {
          const outcomes: AppendOutcome[] = [];
          for (let i = 0; i < rounds; i++) outcomes.push(...(await s.appendMessages(batchFor(i, node), LIMITS)));
          return outcomes;
        };
        const [o1, o2] = await Promise.all([run(store, 'n1'), run(other, 'n2')]);
        const outcomes = [...o1, ...o2];
        const statuses = outcomes.map((o) => o.status);
        assert.equal(statuses.filter((s) => s === 'stored').length, rounds * 2 * 5 + rounds);
        assert.equal(statuses.filter((s) => s === 'duplicate').length, rounds);
        for (let i = 0; i < rounds; i++) {
          const pair = [o1[i * 6 + 5]!, o2[i * 6 + 5]!];
          const first = pair.find((o) => o.status === 'stored');
          const second = pair.find((o) => o.status === 'duplicate');
          assert.ok(first !== undefined && second !== undefined);
          assert.equal(second.message.id, first.message.id);
        }

        // Every user's timeline is 1..N with no gap and no repeated event, and matches the deliveries.
        const delivered = new Map<string, number[]>();
        for (const o of outcomes) {
          if (o.status !== 'stored') continue;
          for (const x of o.deliveries) delivered.set(x.userId, [...(delivered.get(x.userId) ?? []), x.pos]);
        }
        for (const u of [a!, b!, c!]) {
          const entries = await allEntries(store, u);
          assert.deepEqual(entries.map((e) => e.pos), Array.from({ length: entries.length }, (_, i) => i + 1));
          assert.equal(new Set(entries.map((e) => e.event.id)).size, entries.length);
          assert.deepEqual(sorted((delivered.get(u) ?? []).map(String)), sorted(entries.slice(1).map((e) => String(e.pos))));
          assert.deepEqual(await other.syncState(T, u), { lastPos: entries.length, userAckedPos: 0 });
        }
        // Every conversation's seqs are 1..N with no gap.
        const convs = new Set(outcomes.filter((o) => o.status === 'stored').map((o) => stored(o).conversationId));
        assert.equal(convs.size, 4);
        for (const conv of convs) {
          const member = conv === gid ? a! : stored(outcomes.find((o) => o.status === 'stored' && o.message.conversationId === conv)).senderId;
          const seqs = await historyIds(store, member, conv);
          assert.deepEqual(seqs, Array.from({ length: seqs!.length }, (_, i) => seqs!.length - i));
        }
      } finally {
        await other.close();
      }
    });

    test('group committer: submits of one turn are one appendMessages call; in-batch repeats', async () => {
      const [alice, bob] = users(2);
      const counted = spy(store);
      const committer = new GroupCommitter(counted.store, LIMITS);
      const messages = Array.from({ length: 25 }, () => dm(alice!, bob!));
      const outcomes = await Promise.all(messages.map((m) => committer.submit(m)));
      assert.equal(counted.calls.length, 1);
      assert.deepEqual(outcomes.map((o) => stored(o).id), messages.map((m) => m.id));
      assert.deepEqual(outcomes.map((o) => stored(o).seq), Array.from({ length: 25 }, (_, i) => i + 1));

      // Same key twice in one turn: one row, the second gets the first's message.
      const a = dm(alice!, bob!, { clientMsgId: 'gc-1' });
      const b = dm(alice!, bob!, { clientMsgId: 'gc-1', content: 'again' });
      const [oa, ob] = await Promise.all([committer.submit(a), committer.submit(b)]);
      assert.equal(counted.calls.length, 2);
      assert.equal(counted.calls[1]!.length, 1);
      assert.deepEqual(ob, { status: 'duplicate', message: stored(oa) });
      // A repeat of a key stored earlier: both get the duplicate.
      const [oc, od] = await Promise.all([committer.submit(dm(alice!, bob!, { clientMsgId: 'gc-1' })), committer.submit(dm(alice!, bob!, { clientMsgId: 'gc-1' }))]);
      assert.deepEqual([oc, od], [{ status: 'duplicate', message: stored(oa) }, { status: 'duplicate', message: stored(oa) }]);
      await committer.close();

      // A refused first: the repeat gets the same refusal.
      const full = new GroupCommitter(spy(store).store, { maxInboxSize: 1 });
      const [carol, dave] = users(2);
      const [r1, r2, r3] = await Promise.all([
        full.submit(dm(carol!, dave!)),
        full.submit(dm(carol!, dave!, { clientMsgId: 'gc-2' })),
        full.submit(dm(carol!, dave!, { clientMsgId: 'gc-2' })),
      ]);
      assert.equal(r1.status, 'stored');
      assert.deepEqual([r2, r3], [{ status: 'inbox_full' }, { status: 'inbox_full' }]);
      await full.close();
    });

    test('group committer: a failed transaction rejects every submit of its batch', async () => {
      const [alice, bob] = users(2);
      const boom = new Error('disk on fire');
      const failing = spy(store, boom);
      const committer = new GroupCommitter(failing.store, LIMITS);
      const results = await Promise.allSettled(Array.from({ length: 5 }, () => committer.submit(dm(alice!, bob!))));
      assert.equal(failing.calls.length, 1);
      assert.deepEqual(results.map((r) => r.status), Array(5).fill('rejected'));
      for (const r of results) assert.equal((r as PromiseRejectedResult).reason, boom);
      assert.equal(await lastPos(store, bob!), 0);
      await committer.close();
    });

    test('data survives close and reopen; a closed store rejects', async () => {
      const [alice, bob] = users(2);
      const first = await h.open();
      const m = stored((await first.appendMessages([dm(alice!, bob!, { clientMsgId: 'reopen' })], LIMITS))[0]);
      await first.ack(T, bob!, 'phone', 1);
      await first.close();
      await assert.rejects(first.ping());
      await assert.rejects(first.timeline(T, bob!, 0, 10));

      const second = await h.open();
      try {
        assert.deepEqual((await second.timeline(T, bob!, 0, 10)).entries, [{ pos: 1, event: m }]);
        assert.deepEqual(await second.syncState(T, bob!, 'phone'), { lastPos: 1, userAckedPos: 1, deviceAckedPos: 1 });
        assert.deepEqual((await second.appendMessages([dm(alice!, bob!, { clientMsgId: 'reopen' })], LIMITS))[0], {
          status: 'duplicate',
          message: m,
        });
      } finally {
        await second.close();
      }
    });
  });
}

storeContract('SQLite', () => sqliteHarness());
// Every few entries move from timeline_recent into timeline, and batches of 5+ go straight there:
// each contract read then spans both tables and both write paths. Retention runs in passes of 3
// events and slices of 2.
storeContract('SQLite, timeline moved every 3 entries, pruned in passes of 3 events, slices of 2', () => sqliteHarness({ timelineBatch: { recent: 3, direct: 5 }, pruneSlice: { timeline: 2, events: 2, pass: 3 } }));
storeContract('PostgreSQL', postgresHarness);

/**
 * An SQLite file (in a fresh temp dir) at schema `version` — the first `version` migrations, as a
 * build of that time ran them — holding one direct conversation of two messages, alice (user 1)
 * → bob (user 2) then bob → alice: alice acked both positions, bob one. The database is left open
 * for more rows.
 */
function oldSchemaFixture(version: number, firstClientMsgId: string | null) {
  const dir = mkdtempSync(join(tmpdir(), `rampart-store-v${version}-`));
  const file = join(dir, 'store.db');
  const [alice, bob] = users(2) as [string, string];
  const conversationId = randomUUID();
  const [ts1, ts2] = [nextTs(), nextTs()];
  const [id1, id2] = [v7(ts1), v7(ts2)];
  const db = new Database(file);
  db.exec('CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  for (const [i, sql] of SQLITE_MIGRATIONS.slice(0, version).entries()) {
    db.exec(sql);
    db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)').run(i + 1, BASE_TS);
  }
  const b = (u: string): Buffer => Buffer.from(u.replaceAll('-', ''), 'hex');
  db.prepare('INSERT INTO users (id, tenant_id, user_id, last_pos, acked_pos) VALUES (1, ?, ?, 2, 2), (2, ?, ?, 2, 1)').run(T, b(alice), T, b(bob));
  db.prepare(
    `INSERT INTO conversations (id, uuid, tenant_id, kind, direct_key, last_seq, last_at, closed, created_at)
     VALUES (1, ?, ?, 0, '1:2', 2, ?, 0, ?)`,
  ).run(b(conversationId), T, ts2, ts1);
  db.exec('INSERT INTO members (conv, user, role, joined_seq) VALUES (1, 1, 0, 1), (1, 2, 0, 1)');
  const event = db.prepare(
    `INSERT INTO events (conv, seq, id, kind, sender, content, key_id, reply_to, attachments, mentions, hashtags, links, ts, client_msg_id)
     VALUES (1, ?, ?, 0, ?, ?, NULL, NULL, NULL, '[]', '[]', '[]', ?, ?)`,
  );
  event.run(1, b(id1), 1, 'first', ts1, firstClientMsgId);
  event.run(2, b(id2), 2, 'second', ts2, null);
  db.exec('INSERT INTO timeline (user, pos, conv, seq) VALUES (1, 1, 1, 1), (1, 2, 1, 2), (2, 1, 1, 1), (2, 2, 1, 2)');
  return { dir, file, db, alice, bob, conversationId, ts1, ts2, id1, id2 };
}

describe('SqliteStore: a v2 database upgrades to v3 (events as a rowid table)', () => {
  test('rows, counters, dedupe keys and indexes survive; new writes continue seq and pos', async () => {
    // A v2 database as migration 2 left it, with one direct conversation of two messages.
    const { dir, file, db, alice, bob, conversationId, ts1, ts2, id1, id2 } = oldSchemaFixture(2, 'v2-1');
    try {
      db.close();

      const store = new SqliteStore(file);
      await store.init();
      try {
        const check = new Database(file, { readonly: true });
        try {
          assert.deepEqual(check.prepare('SELECT version FROM schema_version ORDER BY version').pluck().all(), SQLITE_VERSIONS);
          const sql = check.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'").pluck().get() as string;
          assert.doesNotMatch(sql, /WITHOUT ROWID/i);
          const indexes = check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name").pluck().all();
          assert.deepEqual(indexes, ['events_client_msg', 'events_conv_seq', 'events_edits', 'events_id', 'events_legacy_ts']);
        } finally {
          check.close();
        }
        const expected = (id: string, seq: number, from: string, to: string, content: string, timestamp: number): StoredMessage => ({
          kind: 'message',
          id,
          tenantId: T,
          conversationId,
          conversationKind: 'direct',
          seq,
          senderId: from,
          recipientId: to,
          content,
          mentions: [],
          hashtags: [],
          links: [],
          timestamp,
        });
        const m1 = { ...expected(id1, 1, alice!, bob!, 'first', ts1), clientMsgId: 'v2-1' };
        const m2 = expected(id2, 2, bob!, alice!, 'second', ts2);
        assert.deepEqual((await store.timeline(T, bob!, 0, 10)).entries, [{ pos: 1, event: m1 }, { pos: 2, event: m2 }]);
        assert.deepEqual(await store.syncState(T, bob!), { lastPos: 2, userAckedPos: 1 });
        const page = await store.history(T, alice!, { peerId: bob! }, { limit: 10, groupHistory: 'all', beforeId: id2 });
        assert.deepEqual(page, { conversationId, events: [m1] });
        // The dedupe key survived; new messages (by peer and by id) continue seq and pos.
        const out = await store.appendMessages([dm(alice!, bob!, { clientMsgId: 'v2-1' }), dm(bob!, alice!), gm(alice!, conversationId)], LIMITS);
        assert.deepEqual(out[0], { status: 'duplicate', message: m1 });
        assert.deepEqual([stored(out[1]).seq, stored(out[2]).seq], [3, 4]);
        assert.deepEqual(deliveriesOf(out[2]), sortDeliveries([d(alice!, 4), d(bob!, 4)]));
        assert.deepEqual((await store.history(T, bob!, { conversationId }, { limit: 10, groupHistory: 'all' }))?.events.map((e) => e.seq), [4, 3, 2, 1]);
        assert.equal(await store.pruneOlderThan(ts1 + 1), 1);
        assert.equal((await store.timeline(T, alice!, 0, 10)).firstPos, 2);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SqliteStore: a v4 database upgrades to v5 (recent timeline entries kept apart)', () => {
  test('timelines, positions and acks survive; new entries continue pos across both tables', async () => {
    // A database as schema 4 left it: one direct conversation of two messages, bob acked one.
    const { dir, file, db, alice, bob, conversationId, ts2, id1, id2 } = oldSchemaFixture(4, null);
    try {
      db.exec('UPDATE members SET delivered_seq = CASE user WHEN 1 THEN 2 ELSE 1 END');
      db.prepare("INSERT INTO devices (user, device_id, acked_pos) VALUES (2, 'phone', 1)").run();
      db.close();

      const store = new SqliteStore(file, { timelineBatch: { recent: 4, direct: 6 } });
      await store.init();
      try {
        const check = new Database(file, { readonly: true });
        try {
          assert.deepEqual(check.prepare('SELECT version FROM schema_version ORDER BY version').pluck().all(), SQLITE_VERSIONS);
          assert.equal(check.prepare('SELECT count(*) FROM timeline').pluck().get(), 4);
        } finally {
          check.close();
        }
        const before = await store.timeline(T, bob!, 0, 10);
        assert.deepEqual(before.entries.map((e) => [e.pos, e.event.id]), [[1, id1], [2, id2]]);
        assert.deepEqual(await store.syncState(T, bob!, 'phone'), { lastPos: 2, userAckedPos: 1, deviceAckedPos: 1 });
        // Three single messages (2 entries each): the second brings timeline_recent to 4 and moves
        // them; then a batch of 3 messages (6 entries ≥ direct 6) moves the third's and goes
        // straight into timeline; the last message stays in timeline_recent.
        for (let i = 0; i < 3; i++) await store.appendMessages([dm(alice!, bob!)], LIMITS);
        await store.appendMessages([dm(bob!, alice!), dm(alice!, bob!), dm(bob!, alice!)], LIMITS);
        await store.appendMessages([dm(alice!, bob!)], LIMITS);
        const after = await store.timeline(T, bob!, 0, 100);
        assert.deepEqual(after.entries.map((e) => e.pos), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert.deepEqual(after.entries.slice(0, 2).map((e) => e.event.id), [id1, id2]);
        assert.deepEqual([after.firstPos, after.lastPos], [1, 9]);
        // Paging across the two tables, from every starting point.
        for (let from = 0; from <= 9; from++) {
          assert.deepEqual((await store.timeline(T, bob!, from, 3)).entries.map((e) => e.pos), [from + 1, from + 2, from + 3].filter((p) => p <= 9));
        }
        // An ack across both tables moves the delivered position to the last seq it covers.
        const acked = await store.acknowledge(T, bob!, 'phone', 9);
        assert.deepEqual(acked.delivered, [{ conversationId, delivered: 9 }]);
        const check2 = new Database(file, { readonly: true });
        try {
          const settled = check2.prepare('SELECT count(*) FROM timeline').pluck().get() as number;
          const recent = check2.prepare('SELECT count(*) FROM timeline_recent').pluck().get() as number;
          assert.equal(settled + recent, 18);
          assert.ok(settled > 4 && recent > 0, `both tables in use (settled ${settled}, recent ${recent})`);
        } finally {
          check2.close();
        }
        // Retention prunes from both tables.
        assert.equal(await store.pruneOlderThan(ts2 + 1), 2);
        assert.equal((await store.timeline(T, alice!, 0, 10)).firstPos, 3);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SqliteStore: a v5 database upgrades to v6 (dedupe key indexed client id first)', () => {
  test('dedupe keys written before the upgrade still answer duplicates; the index still refuses a second key of one sender', async () => {
    const { dir, file, db, alice, bob, ts1, id1 } = oldSchemaFixture(5, 'v5-1');
    try {
      db.close();
      const store = new SqliteStore(file);
      await store.init();
      try {
        const check = new Database(file);
        try {
          assert.deepEqual(check.prepare('SELECT version FROM schema_version ORDER BY version').pluck().all(), SQLITE_VERSIONS);
          const indexes = check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name").pluck().all();
          assert.deepEqual(indexes, ['events_client_msg', 'events_conv_seq', 'events_edits', 'events_id', 'events_legacy_ts']);
          // The plan of the dedupe probe uses the new index (no scan of events).
          const plan = check.prepare("EXPLAIN QUERY PLAN SELECT 1 FROM events WHERE sender = 1 AND client_msg_id = 'v5-1'").all() as { detail: string }[];
          assert.match(plan.map((p) => p.detail).join(' '), /USING (COVERING )?INDEX events_client_msg/);
        } finally {
          check.close();
        }
        // Before the upgrade alice sent 'v5-1': a retry is still a duplicate; bob may use the same key.
        const out = await store.appendMessages([dm(alice, bob, { clientMsgId: 'v5-1' }), dm(bob, alice, { clientMsgId: 'v5-1' }), dm(alice, bob, { clientMsgId: 'v6-1' }), dm(alice, bob, { clientMsgId: 'v6-1' })], LIMITS);
        assert.deepEqual(out.map((o) => o.status), ['duplicate', 'stored', 'stored', 'duplicate']);
        assert.equal((out[0] as { message: StoredMessage }).message.id, id1);
        assert.equal((out[0] as { message: StoredMessage }).message.timestamp, ts1);
        assert.equal(stored(out[1]).seq, 3);
        assert.equal(stored(out[2]).seq, 4);
        // Uniqueness is the database's too, not only the adapter's probe.
        const raw = new Database(file);
        try {
          assert.throws(
            () => raw.prepare("INSERT INTO events (conv, seq, id, kind, sender, content, mentions, hashtags, links, ts, client_msg_id) VALUES (1, 99, x'00', 0, 1, 'x', '[]', '[]', '[]', 1, 'v6-1')").run(),
            /UNIQUE constraint failed/,
          );
        } finally {
          raw.close();
        }
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SqliteStore: a v6 database upgrades to v7 (who wrote in each conversation)', () => {
  test('members with a stored message count as having written, so do all members of a conversation whose first events were pruned', async () => {
    // Schema 6: alice and bob wrote to each other (conversation 1); carol wrote to alice, who never answered (conversation 2).
    const { dir, file, db, alice, bob } = oldSchemaFixture(6, null);
    const carol = randomUUID();
    const dave = randomUUID();
    const oneSided = randomUUID();
    try {
      const b = (u: string): Buffer => Buffer.from(u.replaceAll('-', ''), 'hex');
      db.prepare('INSERT INTO users (id, tenant_id, user_id, last_pos, acked_pos) VALUES (3, ?, ?, 1, 0)').run(T, b(carol));
      db.prepare("INSERT INTO conversations (id, uuid, tenant_id, kind, direct_key, last_seq, last_at, closed, created_at) VALUES (2, ?, ?, 0, '1:3', 1, 1, 0, 1)").run(b(oneSided), T);
      db.exec('INSERT INTO members (conv, user, role, joined_seq) VALUES (2, 1, 0, 1), (2, 3, 0, 1)');
      db.prepare(
        `INSERT INTO events (conv, seq, id, kind, sender, content, key_id, reply_to, attachments, mentions, hashtags, links, ts, client_msg_id)
         VALUES (2, 1, ?, 0, 3, 'hi', NULL, NULL, NULL, '[]', '[]', '[]', 1, NULL)`,
      ).run(b(v7(nextTs())));
      db.exec('UPDATE users SET last_pos = 3 WHERE id = 1; INSERT INTO timeline (user, pos, conv, seq) VALUES (1, 3, 2, 1), (3, 1, 2, 1)');
      // Conversation 3: alice and dave, its first four events pruned by retention (only dave's fifth is left).
      db.prepare('INSERT INTO users (id, tenant_id, user_id, last_pos, acked_pos) VALUES (4, ?, ?, 0, 0)').run(T, b(dave));
      db.prepare("INSERT INTO conversations (id, uuid, tenant_id, kind, direct_key, last_seq, last_at, closed, created_at) VALUES (3, ?, ?, 0, '1:4', 5, 1, 0, 1)").run(b(randomUUID()), T);
      db.exec('INSERT INTO members (conv, user, role, joined_seq) VALUES (3, 1, 0, 1), (3, 4, 0, 1)');
      db.prepare(
        `INSERT INTO events (conv, seq, id, kind, sender, content, key_id, reply_to, attachments, mentions, hashtags, links, ts, client_msg_id)
         VALUES (3, 5, ?, 0, 4, 'later', NULL, NULL, NULL, '[]', '[]', '[]', 1, NULL)`,
      ).run(b(v7(nextTs())));
      db.close();
      const store = new SqliteStore(file);
      await store.init();
      try {
        // Who wrote the pruned events cannot be told: both go on sharing, as before the upgrade.
        assert.deepEqual([...(await store.contactsOf(T, alice))].sort(), [bob, dave].sort(), 'alice never wrote to carol');
        assert.deepEqual(await store.contactsOf(T, carol), [alice]);
        assert.deepEqual((await store.audienceOf(T, oneSided, carol))?.sharing, [carol]);
        // Alice answers: she shares through it from now on.
        await store.appendMessages([dm(alice, carol)], LIMITS);
        assert.deepEqual([...(await store.audienceOf(T, oneSided, carol))!.sharing].sort(), [alice, carol].sort());
        assert.deepEqual([...(await store.contactsOf(T, alice))].sort(), [bob, carol, dave].sort());
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Runs `fn` on a read-only connection to the SQLite file, then closes it. */
function readFile(file: string, fn: (db: InstanceType<typeof Database>) => void): void {
  const db = new Database(file, { readonly: true });
  try {
    fn(db);
  } finally {
    db.close();
  }
}

describe('SqliteStore: a v7 database upgrades to v8 (earlier membership periods)', () => {
  test('rows survive; a member removed before the upgrade and re-added after it keeps that earlier membership', async () => {
    // Schema 7: the fixture's direct conversation, and a group (conversation 2) alice owns, from which bob was removed at seq 3.
    const { dir, file, db, alice, bob, conversationId } = oldSchemaFixture(7, null);
    const group = randomUUID();
    try {
      const b = (u: string): Buffer => Buffer.from(u.replaceAll('-', ''), 'hex');
      db.prepare("INSERT INTO conversations (id, uuid, tenant_id, kind, name, last_seq, last_at, closed, created_at) VALUES (2, ?, ?, 1, 'g', 3, 1, 0, 1)").run(b(group), T);
      db.exec('INSERT INTO members (conv, user, role, joined_seq, left_seq, wrote) VALUES (2, 1, 2, 1, NULL, 1), (2, 2, 0, 1, 3, 0)');
      db.close();
      const store = new SqliteStore(file);
      await store.init();
      try {
        readFile(file, (check) => {
          assert.deepEqual(check.prepare('SELECT version FROM schema_version ORDER BY version').pluck().all(), SQLITE_VERSIONS);
          assert.deepEqual(check.prepare('SELECT count(*) FROM member_periods').pluck().get(), 0, 'nothing to backfill');
        });
        // The fixture's messages and positions are all there.
        const history = await store.history(T, alice, { conversationId }, { limit: 10, groupHistory: 'since_join' });
        assert.deepEqual(history!.events.map((e) => (e.kind === 'message' ? e.content : e.kind)), ['second', 'first']);
        assert.deepEqual((await store.timeline(T, bob, 0, 10)).entries.map((e) => e.pos), [1, 2]);
        // Bob is added back: the membership that ended at seq 3 is kept.
        okEvent(await store.addMembers({ ...req(alice), conversationId: group, userIds: [bob] }, GL));
        readFile(file, (again) => {
          assert.deepEqual(again.prepare('SELECT conv, user, joined_seq, left_seq FROM member_periods').all(), [{ conv: 2, user: 2, joined_seq: 1, left_seq: 3 }]);
        });
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SqliteStore: who has written, with two processes on one file', () => {
  test('a member who wrote through another connection is seen sharing at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-store-writers-'));
    const file = join(dir, 'store.db');
    const [one, two] = [new SqliteStore(file), new SqliteStore(file)];
    try {
      await one.init();
      await two.init();
      const [a, b] = users(2) as [string, string];
      const [first] = await one.appendMessages([dm(a, b)], LIMITS);
      const conv = stored(first).conversationId;
      assert.deepEqual((await one.audienceOf(T, conv, a))?.sharing, [a]); // read, and remembered
      await two.appendMessages([dm(b, a)], LIMITS);
      assert.deepEqual([...(await one.audienceOf(T, conv, a))!.sharing].sort(), [a, b].sort());
    } finally {
      await one.close();
      await two.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SqliteStore: the member lists it keeps', () => {
  test('follow membership written by another connection to the same file, and by its own writes, at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-store-members-'));
    const file = join(dir, 'store.db');
    const [a, b] = [new SqliteStore(file), new SqliteStore(file)];
    await a.init();
    await b.init();
    try {
      const [owner, x, y] = users(3) as [string, string, string];
      const conversationId = await createGroup(a, owner, [x]);
      // Cached by a receipt-style read and by a message batch of connection A.
      assert.deepEqual(sorted((await a.membersIfMember(T, conversationId, owner))!), sorted([owner, x]));
      assert.deepEqual(deliveriesOf((await a.appendMessages([gm(owner, conversationId)], LIMITS))[0]).map((d) => d.userId).sort(), sorted([owner, x]));
      // Connection B (another process, say) changes the membership: A sees it on its next read and batch.
      okEvent(await b.addMembers({ ...req(owner), conversationId, userIds: [y] }, GL));
      okEvent(await b.removeMembers({ ...req(owner), conversationId, userIds: [x] }));
      assert.deepEqual(sorted((await a.membersIfMember(T, conversationId, owner))!), sorted([owner, y]));
      assert.equal(await a.membersIfMember(T, conversationId, x), undefined);
      assert.deepEqual(deliveriesOf((await a.appendMessages([gm(owner, conversationId)], LIMITS))[0]).map((d) => d.userId).sort(), sorted([owner, y]));
      // A's own membership write drops what it kept.
      okEvent(await a.removeMembers({ ...req(owner), conversationId, userIds: [y] }));
      assert.deepEqual(await a.membersIfMember(T, conversationId, owner), [owner]);
      assert.deepEqual(deliveriesOf((await a.appendMessages([gm(owner, conversationId)], LIMITS))[0]).map((d) => d.userId), [owner]);
    } finally {
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SqliteStore: rows written many to a statement', () => {
  test('a batch of 40 direct messages (80 entries: a statement of 64 rows and one of 16) reads back in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-store-many-'));
    const store = new SqliteStore(join(dir, 'store.db'));
    await store.init();
    try {
      const [alice, bob] = users(2) as [string, string];
      const pairs = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? dm(alice, bob) : dm(bob, alice)));
      const out = await store.appendMessages(pairs, LIMITS);
      const ids = out.map((o) => stored(o).id);
      for (const user of [alice, bob]) {
        const page = await store.timeline(T, user, 0, 100);
        assert.deepEqual(page.entries.map((e) => e.pos), Array.from({ length: 40 }, (_, i) => i + 1));
        assert.deepEqual(page.entries.map((e) => e.event.id), ids);
        assert.deepEqual(out.map((o) => deliveriesOf(o).find((d) => d.userId === user)!.pos), Array.from({ length: 40 }, (_, i) => i + 1));
      }
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('counters of a batch over 150 users and 75 conversations (UPDATE statements of 64, 64 and 22 rows; 64 and 11) survive a reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-store-counters-'));
    const file = join(dir, 'store.db');
    const everyone = users(150);
    const batch = (): NewMessage[] => Array.from({ length: 75 }, (_, i) => dm(everyone[2 * i]!, everyone[2 * i + 1]!));
    let store = new SqliteStore(file);
    await store.init();
    try {
      const first = await store.appendMessages(batch(), LIMITS);
      await store.appendMessages(batch(), LIMITS);
      await store.close();
      // A new store reads every counter back from the database (nothing cached).
      store = new SqliteStore(file);
      await store.init();
      const third = await store.appendMessages(batch(), LIMITS);
      for (let i = 0; i < 75; i++) {
        assert.equal(stored(third[i]!).conversationId, stored(first[i]!).conversationId);
        assert.equal(stored(third[i]!).seq, 3, `conversation ${i}: seq continues`);
        for (const user of [everyone[2 * i]!, everyone[2 * i + 1]!]) {
          assert.equal(deliveriesOf(third[i]!).find((d) => d.userId === user)!.pos, 3, `user ${user}: pos continues`);
          const page = await store.timeline(T, user, 0, 10);
          assert.deepEqual(page.entries.map((e) => e.pos), [1, 2, 3]);
        }
      }
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SqliteStore: retention in slices', () => {
  test('a prune over many passes and slices lets the event loop run between them and removes exactly what is old', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-store-prune-'));
    const store = new SqliteStore(join(dir, 'store.db'), { pruneSlice: { timeline: 3, events: 4, pass: 5 }, timelineBatch: { recent: 5, direct: 50 } });
    await store.init();
    try {
      const people = users(4);
      // 12 old messages around the ring of 4 users, then 4 new ones: 24 old timeline entries.
      const ring = (i: number, extra: Partial<NewMessage> = {}): NewMessage => dm(people[i % 4]!, people[(i + 1) % 4]!, extra);
      for (let i = 0; i < 12; i++) await store.appendMessages([ring(i, { timestamp: 1_000_000 + i })], LIMITS);
      for (let i = 0; i < 4; i++) await store.appendMessages([ring(i)], LIMITS);

      let turns = 0;
      let pruning = true;
      const count = (): void => {
        turns++;
        if (pruning) setImmediate(count);
      };
      setImmediate(count);
      const pruned = await store.pruneOlderThan(2_000_000);
      pruning = false;
      assert.equal(pruned, 12);
      // 3 passes (5 + 5 + 2 events), each with at least 2 timeline slices and 1 events slice.
      assert.ok(turns >= 9, `the event loop turned ${turns} times during the prune`);
      for (const user of people) {
        // Each user sent 3 and received 3 old messages (positions 1-6), then 2 new (7, 8).
        const page = await store.timeline(T, user, 0, 100);
        assert.deepEqual(page.entries.map((e) => e.pos), [7, 8], `user ${user}`);
        assert.equal(page.firstPos, 7);
      }
      assert.equal(await store.pruneOlderThan(2_000_000), 0);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('slice sizes must be positive integers', () => {
    for (const bad of [{ events: 0 }, { timeline: -1 }, { pass: 1.5 }, { events: Number.NaN }]) {
      assert.throws(() => new SqliteStore(':memory:', { pruneSlice: bad }), /pruneSlice\.\w+ must be a positive integer/);
    }
  });
});

describe('SqliteStore: a write that fails after moving recent timeline entries', () => {
  test('the rollback puts them back and the next write moves them again: timelines stay in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-store-rollback-'));
    const file = join(dir, 'store.db');
    const store = new SqliteStore(file, { timelineBatch: { recent: 100, direct: 5 } });
    await store.init();
    const side = new Database(file);
    try {
      const [alice, bob, carol] = users(3) as [string, string, string];
      const first = stored((await store.appendMessages([dm(alice, bob)], LIMITS))[0]);
      // Any timeline row of carol's fails: the batch below moves alice's and bob's recent entries
      // into timeline, then fails on carol's first entry and rolls back.
      const carolBytes = Buffer.from(carol.replaceAll('-', ''), 'hex');
      side.prepare(
        `CREATE TRIGGER fail_carol BEFORE INSERT ON timeline
         WHEN NEW.user = (SELECT id FROM users WHERE user_id = x'${carolBytes.toString('hex')}')
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END`,
      ).run();
      await assert.rejects(store.appendMessages([dm(alice, carol), dm(alice, carol), dm(alice, carol)], LIMITS), /injected failure/);
      // The retry-sized batch that follows goes straight into timeline too: alice's position 1
      // must be moved out of timeline_recent first, or her timeline would read 2, 3, 4, 1.
      const later = (await store.appendMessages([dm(alice, bob), dm(alice, bob), dm(alice, bob)], LIMITS)).map(stored);
      const page = await store.timeline(T, alice, 0, 10);
      assert.deepEqual(page.entries.map((e) => e.pos), [1, 2, 3, 4]);
      assert.deepEqual(page.entries.map((e) => e.event.id), [first.id, ...later.map((m) => m.id)]);
      assert.equal(page.firstPos, 1);
      assert.equal(side.prepare('SELECT count(*) FROM timeline_recent').pluck().get(), 0);
    } finally {
      side.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('PostgresStore: nodes initialising at once', () => {
  test('two nodes initialising a fresh schema at the same time both succeed, migrating once', async () => {
    const admin = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
    await admin.connect();
    const fresh = `rampart_init_${randomBytes(6).toString('hex')}`;
    const nodes = Array.from({ length: 3 }, () => new PostgresStore(PG_URL, { schema: fresh, pool: { max: 1 } }));
    try {
      await Promise.all(nodes.map((node) => node.init()));
      const { rows } = await admin.query(`SELECT version FROM "${fresh}".schema_version ORDER BY version`);
      assert.deepEqual(rows, PG_MIGRATIONS.map((_, i) => ({ version: i + 1 })));
      await nodes[0]!.ping();
    } finally {
      await Promise.all(nodes.map((node) => node.close()));
      await admin.query(`DROP SCHEMA IF EXISTS "${fresh}" CASCADE`);
      await admin.end();
    }
  });
});

describe('openStore', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rampart-open-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('sqlite:PATH creates the parent directory and an initialised store', async () => {
    const file = join(dir, 'nested', 'deeper', 'rampart.db');
    const store = await openStore(`sqlite:${file}`);
    try {
      assert.ok(existsSync(file));
      await store.ping();
      const [alice, bob] = users(2);
      const m = stored((await store.appendMessages([dm(alice!, bob!)], LIMITS))[0]);
      assert.deepEqual((await store.timeline(T, bob!, 0, 1)).entries, [{ pos: 1, event: m }]);
    } finally {
      await store.close();
    }
  });

  test('a postgres:// URL opens an initialised PostgreSQL store', async () => {
    const schema = `rampart_open_${randomBytes(6).toString('hex')}`;
    const store = await openStore(PG_URL, { postgres: { schema, pool: { max: 1 } } });
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      await store.ping();
      assert.deepEqual(await store.syncState(T, randomUUID()), { lastPos: 0, userAckedPos: 0 });
    } finally {
      await store.close();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    }
  });

  test('anything else is an error naming the storage key, without echoing credentials', async () => {
    await assert.rejects(openStore('mysql://root:hunter2@db/chat'), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, /^storage:/);
      assert.match(err.message, /"mysql:"/);
      assert.ok(!err.message.includes('hunter2'));
      return true;
    });
    await assert.rejects(openStore('./data/rampart.db'), /^Error: storage:/);
    await assert.rejects(openStore('sqlite:'), /^Error: storage:/);
  });
});
