/**
 * Upgrade in place from storage v1 (schema_version 1: `messages` + `inbox_counts`) to v2, for
 * SQLite and PostgreSQL. Each backend gets a database built with the exact v1 schema (migration 1
 * copied verbatim below as a fixture) and v1 rows written as the v1 adapters wrote them — several
 * tenants, pairs and a note to self, acked and unacked messages with interleaved acks, a
 * clientMsgId, rows sealed with two content keys — then the v2 adapter opens it and must keep every
 * message, number each pair's messages in v1 order, and lay out every timeline so the v1 unacked
 * inbox is exactly what a device that names no position replays.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { Database } from '../../src/store/sqlite-driver.js';
import pg from 'pg';
import { ContentCipher, UnknownKeyError } from '../../src/store/content-cipher.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { Attachment, Link, NewMessage, Store, StoredMessage } from '../../src/store/store.js';

const PG_URL = process.env.RAMPART_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const LIMITS = { maxInboxSize: 1000 };

// ---------------------------------------------------------------------------------------------
// Fixture: the v1 schema, verbatim from migration 1 of the v1 adapters (commit c517142).

const V1_SQLITE_SCHEMA = `CREATE TABLE messages (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     tenant_id TEXT NOT NULL,
     sender_id TEXT NOT NULL,
     recipient_id TEXT NOT NULL,
     conv TEXT NOT NULL,
     content TEXT NOT NULL,
     key_id TEXT,
     reply_to TEXT,
     attachments TEXT,
     mentions TEXT NOT NULL,
     hashtags TEXT NOT NULL,
     links TEXT NOT NULL,
     timestamp INTEGER NOT NULL,
     client_msg_id TEXT,
     acked_at INTEGER
   );
   CREATE UNIQUE INDEX messages_dedupe ON messages (tenant_id, sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
   CREATE INDEX messages_pending ON messages (tenant_id, recipient_id, seq) WHERE acked_at IS NULL;
   CREATE INDEX messages_conv ON messages (tenant_id, conv, seq);
   CREATE INDEX messages_timestamp ON messages (timestamp);
   CREATE TABLE inbox_counts (
     tenant_id TEXT NOT NULL,
     recipient_id TEXT NOT NULL,
     unacked INTEGER NOT NULL,
     PRIMARY KEY (tenant_id, recipient_id)
   ) WITHOUT ROWID;`;

const V1_POSTGRES_SCHEMA = (t: (table: string) => string): string => `
    CREATE TABLE ${t('messages')} (
      seq BIGSERIAL NOT NULL,
      id TEXT PRIMARY KEY,
      tenant_id TEXT NOT NULL,
      sender_id TEXT NOT NULL,
      recipient_id TEXT NOT NULL,
      conv TEXT NOT NULL,
      content TEXT NOT NULL,
      key_id TEXT,
      reply_to TEXT,
      attachments TEXT,
      mentions TEXT NOT NULL,
      hashtags TEXT NOT NULL,
      links TEXT NOT NULL,
      timestamp BIGINT NOT NULL,
      client_msg_id TEXT,
      acked_at BIGINT
    );
    CREATE UNIQUE INDEX messages_dedupe ON ${t('messages')} (tenant_id, sender_id, client_msg_id)
      WHERE client_msg_id IS NOT NULL;
    CREATE INDEX messages_pending ON ${t('messages')} (tenant_id, recipient_id, seq) WHERE acked_at IS NULL;
    CREATE INDEX messages_conv ON ${t('messages')} (tenant_id, conv, seq);
    CREATE INDEX messages_timestamp ON ${t('messages')} (timestamp);
    CREATE TABLE ${t('inbox_counts')} (
      tenant_id TEXT NOT NULL,
      recipient_id TEXT NOT NULL,
      unacked BIGINT NOT NULL,
      PRIMARY KEY (tenant_id, recipient_id)
    );`;

// ---------------------------------------------------------------------------------------------
// Fixture: v1 rows (deterministic).

/** mulberry32: a small seeded generator, so the fixture is the same on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = seeded(20240901);
const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join('');
const uuid4 = (): string => `${hex(8)}-${hex(4)}-4${hex(3)}-${'89ab'[Math.floor(rand() * 4)]}${hex(3)}-${hex(12)}`;
/** A UUIDv7 of time `ms`, as the v1 server minted message ids from ac4f47e on. */
const uuid7 = (ms: number): string => {
  const ts = ms.toString(16).padStart(12, '0');
  return `${ts.slice(0, 8)}-${ts.slice(8, 12)}-7${hex(3)}-${'89ab'[Math.floor(rand() * 4)]}${hex(3)}-${hex(12)}`;
};

const KEY_OLD = randomBytes(32);
const KEY_NEW = randomBytes(32);
const cipherOld = new ContentCipher({ activeKeyId: 'k-old', keys: { 'k-old': KEY_OLD } });
const cipherNew = new ContentCipher({ activeKeyId: 'k-new', keys: { 'k-new': KEY_NEW } });
/** The keyring after rotation: seals with k-new, still opens k-old. */
const keyring = new ContentCipher({ activeKeyId: 'k-new', keys: { 'k-old': KEY_OLD, 'k-new': KEY_NEW } });

interface V1Message {
  id: string;
  tenantId: string;
  senderId: string;
  recipientId: string;
  content: string;
  mentions: string[];
  hashtags: string[];
  links: Link[];
  attachments?: Attachment[];
  replyTo?: string;
  timestamp: number;
  clientMsgId?: string;
  /** The content key that sealed the row (none: plaintext). */
  sealedWith?: ContentCipher;
  ackedAt: number | null;
}

const ACME = 'acme';
const GLOBEX = 'globex';
const [ann, bob, cat, dan, eve] = [uuid4(), uuid4(), uuid4(), uuid4(), uuid4()] as [string, string, string, string, string];
/** Pairs that talk in v1, as [tenant, a, b]; ann also exists in globex (another user there). */
const PAIRS: [string, string, string][] = [
  [ACME, ann, bob],
  [ACME, ann, cat],
  [ACME, bob, cat],
  [ACME, ann, ann], // note to self
  [ACME, cat, dan],
  [GLOBEX, ann, eve],
];
const BASE_TS = Date.UTC(2024, 8, 1, 12, 0, 0);
/**
 * v1 servers before ac4f47e minted message ids with randomUUID() (UUIDv4): the first messages
 * here have such ids, in no order of time. One old one sorts high, one young one sorts below every
 * UUIDv7 of its time (retention must go by their time, not their id).
 */
const V4_IDS = 30;
const V4_OLD_HIGH = 3;
const V4_YOUNG_LOW = 25;
/** Retention's cut in the upgraded fixture: messages 0…19 (and the skewed last one) are older. */
const RETENTION_CUT = BASE_TS + 20_000;

function buildV1Messages(): V1Message[] {
  const out: V1Message[] = [];
  for (let i = 0; i < 72; i++) {
    const [tenantId, a, b] = PAIRS[i < PAIRS.length ? i : Math.floor(rand() * PAIRS.length)]!;
    const forward = rand() < 0.5;
    const timestamp = BASE_TS + i * 1000 + Math.floor(rand() * 500);
    const m: V1Message = {
      id: i < V4_IDS ? uuid4() : uuid7(timestamp),
      tenantId,
      senderId: forward ? a : b,
      recipientId: forward ? b : a,
      content: `v1 message ${i} ${hex(6)}`,
      mentions: i % 5 === 0 ? [`@user${i}`] : [],
      hashtags: i % 4 === 0 ? [`#tag${i}`, '#v1'] : [],
      links: i % 6 === 0 ? [{ url: `https://example.org/${i}`, safe: true }] : [],
      timestamp,
      ackedAt: null,
    };
    if (i % 7 === 3) m.attachments = [{ type: 'image', url: `https://cdn.example.org/${i}.png`, name: `pic${i}.png` }];
    if (i === 11) m.attachments = []; // present but empty: stays present
    if (i % 9 === 8) m.replyTo = out[Math.floor(rand() * out.length)]!.id;
    if (i === V4_OLD_HIGH) m.id = `ff${m.id.slice(2)}`;
    if (i === V4_YOUNG_LOW) m.id = `00${m.id.slice(2)}`;
    if (i === 5 || i === 40) m.clientMsgId = `client-${i}`;
    if (i % 3 === 0) m.sealedWith = i < 36 ? cipherOld : cipherNew;
    // Interleaved acks: any message may have been acked, in any order of the inbox.
    if (rand() < 0.45) m.ackedAt = timestamp + 5000;
    out.push(m);
  }
  // A v1 node with a slow clock: the last message stored carries a time older than the earlier
  // ones of its pair. A conversation's lastActivityAt is its newest time (it never moves back),
  // not the time of its last message by v1 order.
  const skewed = out[out.length - 1]!;
  skewed.timestamp = BASE_TS - 60_000;
  skewed.id = uuid7(skewed.timestamp);
  if (skewed.ackedAt !== null) skewed.ackedAt = skewed.timestamp + 5000;
  // A message exactly like one the v1 pipeline stored with every field at once.
  return out;
}

const V1 = buildV1Messages();

const EMPTY = '[]';
/** The v1 message codec's column values (sealed fields: AAD `${id}/field`, '[]' left as is). */
function v1Columns(m: V1Message): Record<string, string | number | null> {
  const json = (v: readonly unknown[]): string => (v.length === 0 ? EMPTY : JSON.stringify(v));
  let content = m.content;
  let attachments = m.attachments === undefined ? null : json(m.attachments);
  let mentions = json(m.mentions);
  let hashtags = json(m.hashtags);
  let links = json(m.links);
  const c = m.sealedWith;
  if (c !== undefined) {
    content = c.seal(content, `${m.id}/content`);
    if (attachments !== null && attachments !== EMPTY) attachments = c.seal(attachments, `${m.id}/attachments`);
    if (mentions !== EMPTY) mentions = c.seal(mentions, `${m.id}/mentions`);
    if (hashtags !== EMPTY) hashtags = c.seal(hashtags, `${m.id}/hashtags`);
    if (links !== EMPTY) links = c.seal(links, `${m.id}/links`);
  }
  const conv = m.senderId < m.recipientId ? `${m.senderId} ${m.recipientId}` : `${m.recipientId} ${m.senderId}`;
  return {
    id: m.id,
    tenant_id: m.tenantId,
    sender_id: m.senderId,
    recipient_id: m.recipientId,
    conv,
    content,
    key_id: c === undefined ? null : c.activeKeyId,
    reply_to: m.replyTo ?? null,
    attachments,
    mentions,
    hashtags,
    links,
    timestamp: m.timestamp,
    client_msg_id: m.clientMsgId ?? null,
    acked_at: m.ackedAt,
  };
}

const V1_COLUMNS = Object.keys(v1Columns(V1[0]!));

/** v1's inbox_counts: unacked messages per (tenant, recipient). */
function v1InboxCounts(): [string, string, number][] {
  const counts = new Map<string, [string, string, number]>();
  for (const m of V1) {
    if (m.ackedAt !== null) continue;
    const k = `${m.tenantId}/${m.recipientId}`;
    const entry = counts.get(k) ?? [m.tenantId, m.recipientId, 0];
    entry[2]++;
    counts.set(k, entry);
  }
  return [...counts.values()];
}

// ---------------------------------------------------------------------------------------------
// What v2 must show (derived from the v1 rows alone).

const pairKey = (tenant: string, a: string, b: string): string => `${tenant}/${a < b ? `${a}/${b}` : `${b}/${a}`}`;

/** Each pair's messages in v1 (insertion = seq) order. */
function expectedConversations(): Map<string, V1Message[]> {
  const convs = new Map<string, V1Message[]>();
  for (const m of V1) {
    const k = pairKey(m.tenantId, m.senderId, m.recipientId);
    convs.set(k, [...(convs.get(k) ?? []), m]);
  }
  return convs;
}

interface ExpectedTimeline {
  /** Event ids in pos order. */
  ids: string[];
  /** Length of the "sent or acked" part: the user's acknowledged position. */
  ackedPos: number;
  /** The v1 unacked inbox, oldest first (v1 pendingFor). */
  inbox: string[];
}

function expectedTimelines(): Map<string, ExpectedTimeline> {
  const users = new Map<string, { early: string[]; late: string[] }>();
  const of = (tenant: string, user: string) => {
    const k = `${tenant}/${user}`;
    let u = users.get(k);
    if (u === undefined) users.set(k, (u = { early: [], late: [] }));
    return u;
  };
  for (const m of V1) {
    const unackedForRecipient = m.ackedAt === null;
    if (m.senderId !== m.recipientId) of(m.tenantId, m.senderId).early.push(m.id);
    (unackedForRecipient ? of(m.tenantId, m.recipientId).late : of(m.tenantId, m.recipientId).early).push(m.id);
  }
  const out = new Map<string, ExpectedTimeline>();
  for (const [k, u] of users) out.set(k, { ids: [...u.early, ...u.late], ackedPos: u.early.length, inbox: u.late });
  return out;
}

/** The v2 shape of a v1 message (its conversation id is whatever the upgrade gave the pair). */
function expectedMessage(m: V1Message, conversationId: string, seq: number): StoredMessage {
  const e: StoredMessage = {
    kind: 'message',
    id: m.id,
    tenantId: m.tenantId,
    conversationId,
    conversationKind: 'direct',
    seq,
    senderId: m.senderId,
    recipientId: m.recipientId,
    timestamp: m.timestamp,
    content: m.content,
    mentions: m.mentions,
    hashtags: m.hashtags,
    links: m.links,
  };
  if (m.attachments !== undefined) e.attachments = m.attachments;
  if (m.replyTo !== undefined) e.replyTo = m.replyTo;
  if (m.clientMsgId !== undefined) e.clientMsgId = m.clientMsgId;
  return e;
}

// ---------------------------------------------------------------------------------------------
// Backends

interface Backend {
  /** Write the v1 database (schema_version 1, v1 tables and rows). */
  writeV1(): Promise<void>;
  open(cipher?: ContentCipher): Promise<Store>;
  tables(): Promise<string[]>;
  versions(): Promise<number[]>;
  /** content and key_id of one event row as stored. */
  rawEvent(id: string): Promise<{ content: string; key_id: string | null } | undefined>;
  teardown(): Promise<void>;
}

function sqliteBackend(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-migration-'));
  const file = join(dir, 'v1.db');
  const withDb = <T>(work: (db: BetterSqlite3.Database) => T): T => {
    const db = new Database(file);
    try {
      return work(db);
    } finally {
      db.close();
    }
  };
  return {
    async writeV1() {
      withDb((db) => {
        db.pragma('journal_mode = WAL');
        db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
        db.transaction(() => {
          db.exec(V1_SQLITE_SCHEMA);
          db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (1, ?)').run(BASE_TS);
          const insert = db.prepare(
            `INSERT INTO messages (${V1_COLUMNS.join(', ')}) VALUES (${V1_COLUMNS.map((c) => `@${c}`).join(', ')})`,
          );
          for (const m of V1) insert.run(v1Columns(m));
          const count = db.prepare('INSERT INTO inbox_counts (tenant_id, recipient_id, unacked) VALUES (?, ?, ?)');
          for (const row of v1InboxCounts()) count.run(...row);
        })();
      });
    },
    async open(cipher) {
      const store = new SqliteStore(file, cipher === undefined ? {} : { cipher });
      await store.init();
      return store;
    },
    async tables() {
      return withDb((db) =>
        (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name),
      );
    },
    async versions() {
      return withDb((db) => (db.prepare('SELECT version FROM schema_version ORDER BY version').all() as { version: number }[]).map((r) => r.version));
    },
    async rawEvent(id) {
      return withDb(
        (db) =>
          db.prepare("SELECT content, key_id FROM events WHERE id = unhex(replace(?, '-', ''))").get(id) as
            | { content: string; key_id: string | null }
            | undefined,
      );
    },
    async teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresBackend(): Backend {
  const schema = `rampart_mig_${randomBytes(6).toString('hex')}`;
  const t = (table: string) => `"${schema}".${table}`;
  const admin = new pg.Pool({ connectionString: PG_URL, max: 1, connectionTimeoutMillis: 5000 });
  return {
    async writeV1() {
      const client = await admin.connect();
      try {
        await client.query('BEGIN');
        await client.query(`CREATE SCHEMA "${schema}"`);
        await client.query(
          `CREATE TABLE ${t('schema_version')} (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
        );
        await client.query(V1_POSTGRES_SCHEMA(t));
        await client.query(`INSERT INTO ${t('schema_version')} (version) VALUES (1)`);
        for (const m of V1) {
          const row = v1Columns(m);
          await client.query(
            `INSERT INTO ${t('messages')} (${V1_COLUMNS.join(', ')}) VALUES (${V1_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})`,
            V1_COLUMNS.map((c) => row[c]),
          );
        }
        for (const row of v1InboxCounts()) {
          await client.query(`INSERT INTO ${t('inbox_counts')} (tenant_id, recipient_id, unacked) VALUES ($1, $2, $3)`, row);
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      } finally {
        client.release();
      }
    },
    async open(cipher) {
      const store = new PostgresStore(PG_URL, { schema, pool: { max: 2 }, ...(cipher === undefined ? {} : { cipher }) });
      try {
        await store.init();
      } catch (err) {
        await store.close();
        throw err;
      }
      return store;
    },
    async tables() {
      const { rows } = await admin.query<{ table_name: string }>(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
        [schema],
      );
      return rows.map((r) => r.table_name);
    },
    async versions() {
      const { rows } = await admin.query<{ version: number }>(`SELECT version FROM ${t('schema_version')} ORDER BY version`);
      return rows.map((r) => r.version);
    },
    async rawEvent(id) {
      const { rows } = await admin.query<{ content: string; key_id: string | null }>(
        `SELECT content, key_id FROM ${t('events')} WHERE id = $1`,
        [id],
      );
      return rows[0];
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

/** Every migration applied after the upgrade (SQLite's 3 rebuilds `events` as a rowid table). */
const CURRENT_VERSIONS: Record<string, number[]> = { SQLite: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], PostgreSQL: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] };

function migrationSuite(name: string, makeBackend: () => Backend): void {
  describe(`v1 → v2 migration: ${name}`, () => {
    let backend: Backend;
    let store: Store;
    const conversations = expectedConversations();
    const timelines = expectedTimelines();
    /** pair key → the conversation id the upgrade gave it. */
    const conversationIds = new Map<string, string>();

    before(async () => {
      backend = makeBackend();
      await backend.writeV1();
      assert.deepEqual(await backend.versions(), [1]);
      store = await backend.open(keyring);
    });

    after(async () => {
      await store?.close();
      await backend?.teardown();
    });

    test('the fixture covers what the upgrade must handle', () => {
      assert.ok(V1.some((m) => m.sealedWith === cipherOld) && V1.some((m) => m.sealedWith === cipherNew));
      assert.ok(V1.some((m) => m.sealedWith === undefined));
      assert.ok(V1.some((m) => m.senderId === m.recipientId && m.ackedAt === null), 'an unacked note to self');
      assert.ok(V1.some((m) => m.senderId === m.recipientId && m.ackedAt !== null), 'an acked note to self');
      // Interleaved: some user's inbox has an acked message after an unacked one.
      assert.ok(
        [...timelines.values()].some((tl) => tl.inbox.length > 0 && tl.ackedPos > 0),
        'a user with acked and unacked messages',
      );
      const interleaved = V1.some((m, i) =>
        m.ackedAt !== null && V1.slice(0, i).some((p) => p.ackedAt === null && p.tenantId === m.tenantId && p.recipientId === m.recipientId),
      );
      assert.ok(interleaved, 'an acked message after an unacked one in the same inbox');      // v1 ids of both kinds, and UUIDv4 ids on both sides of retention's cut in every order.
      const v4 = V1.filter((m) => m.id[14] === '4');
      assert.ok(v4.length === V4_IDS && V1.some((m) => m.id[14] === '7'));
      const bound = uuid7Floor(RETENTION_CUT);
      assert.ok(v4.some((m) => m.timestamp < RETENTION_CUT && m.id > bound), 'an old v4 id that sorts above the cut');
      assert.ok(v4.some((m) => m.timestamp >= RETENTION_CUT && m.id < bound), 'a young v4 id that sorts below the cut');
    });

    test('the v1 tables are gone, the v2 tables exist, every schema version applied', async () => {
      const tables = await backend.tables();
      assert.ok(!tables.includes('messages'), `messages still exists: ${tables.join(', ')}`);
      assert.ok(!tables.includes('inbox_counts'), `inbox_counts still exists: ${tables.join(', ')}`);
      for (const table of ['users', 'conversations', 'members', 'events', 'timeline', 'devices']) {
        assert.ok(tables.includes(table), `${table} is missing: ${tables.join(', ')}`);
      }
      assert.deepEqual(await backend.versions(), CURRENT_VERSIONS[name]);
    });

    test('history per pair: every message kept, in v1 order, seq 1..n, from both sides', async () => {
      for (const [k, messages] of conversations) {
        const { tenantId, senderId: a, recipientId: b } = messages[0]!;
        const fromA = await store.history(tenantId, a, { peerId: b }, { limit: 1000, groupHistory: 'since_join' });
        const fromB = await store.history(tenantId, b, { peerId: a }, { limit: 1000, groupHistory: 'since_join' });
        assert.ok(fromA?.conversationId !== undefined, `no conversation for ${k}`);
        assert.equal(fromB?.conversationId, fromA.conversationId);
        conversationIds.set(k, fromA.conversationId);
        const expected = messages.map((m, i) => expectedMessage(m, fromA.conversationId!, i + 1)).reverse();
        assert.deepEqual(fromA.events, expected, `history of ${k}`);
        assert.deepEqual(fromB.events, expected);
      }
      assert.equal(new Set(conversationIds.values()).size, conversations.size, 'one conversation per pair');
      // The same uuid in another tenant is another user: no conversation between acme's ann and globex's eve.
      assert.deepEqual(await store.history(ACME, ann, { peerId: eve }, { limit: 10, groupHistory: 'all' }), { events: [] });
    });

    test('history cursors over migrated rows: beforeSeq and the v1 message-id cursor', async () => {
      const messages = conversations.get(pairKey(ACME, ann, bob))!;
      assert.ok(messages.length >= 6);
      const page = await store.history(ACME, ann, { peerId: bob }, { limit: 2, beforeSeq: 5, groupHistory: 'since_join' });
      assert.deepEqual(page?.events.map((e) => e.id), [messages[3]!.id, messages[2]!.id]);
      const byId = await store.history(ACME, bob, { peerId: ann }, { limit: 3, beforeId: messages[4]!.id, groupHistory: 'since_join' });
      assert.deepEqual(byId?.events.map((e) => [e.id, e.seq]), [
        [messages[3]!.id, 4],
        [messages[2]!.id, 3],
        [messages[1]!.id, 2],
      ]);
    });

    test('timelines: sent-or-acked first, then the v1 unacked inbox; positions 1..n', async () => {
      for (const [k, expected] of timelines) {
        const [tenantId, userId] = k.split('/') as [string, string];
        const state = await store.syncState(tenantId, userId);
        assert.deepEqual(state, { lastPos: expected.ids.length, userAckedPos: expected.ackedPos }, `syncState of ${k}`);
        const page = await store.timeline(tenantId, userId, 0, 1000);
        assert.equal(page.firstPos, 1);
        assert.equal(page.lastPos, expected.ids.length);
        assert.deepEqual(page.entries.map((e) => e.pos), expected.ids.map((_, i) => i + 1), `positions of ${k}`);
        assert.deepEqual(page.entries.map((e) => e.event.id), expected.ids, `order of ${k}`);
        for (const { event } of page.entries) {
          assert.equal(event.kind, 'message');
          if (event.kind !== 'message') continue;
          const v1 = V1.find((m) => m.id === event.id)!;
          const conv = conversations.get(pairKey(v1.tenantId, v1.senderId, v1.recipientId))!;
          assert.deepEqual(event, expectedMessage(v1, event.conversationId, conv.indexOf(v1) + 1));
        }
      }
    });

    test('a device that names no position replays exactly the v1 unacked inbox, oldest first', async () => {
      let replayedSomething = false;
      for (const [k, expected] of timelines) {
        const [tenantId, userId] = k.split('/') as [string, string];
        // v1's pendingFor: addressed to the user, not acked, in seq order.
        const v1Inbox = V1.filter((m) => m.tenantId === tenantId && m.recipientId === userId && m.ackedAt === null).map((m) => m.id);
        assert.deepEqual(expected.inbox, v1Inbox);
        const { userAckedPos, deviceAckedPos } = await store.syncState(tenantId, userId, 'new-laptop');
        assert.equal(deviceAckedPos, undefined);
        const replay = await store.timeline(tenantId, userId, userAckedPos, 1000);
        assert.deepEqual(replay.entries.map((e) => e.event.id), v1Inbox, `replay of ${k}`);
        if (v1Inbox.length > 0) replayedSomething = true;
      }
      assert.ok(replayedSomething);
    });

    test('conversation list after the upgrade: one per pair, last message, last seq, activity', async () => {
      const page = await store.listConversations(ACME, ann, { limit: 100 });
      const mine = [...conversations].filter(([k]) => k.startsWith(`${ACME}/`) && k.includes(ann));
      assert.equal(page.conversations.length, mine.length);
      for (const [k, messages] of mine) {
        const summary = page.conversations.find((c) => c.conversationId === conversationIds.get(k));
        assert.ok(summary !== undefined, `missing ${k}`);
        const last = messages[messages.length - 1]!;
        assert.equal(summary.kind, 'direct');
        assert.equal(summary.lastSeq, messages.length);
        assert.equal(summary.lastActivityAt, Math.max(...messages.map((m) => m.timestamp)), 'the newest time, whatever the v1 order');
        assert.equal(summary.memberCount, last.senderId === last.recipientId ? 1 : 2);
        assert.deepEqual(summary.lastMessage, expectedMessage(last, summary.conversationId, messages.length));
      }
      const activity = page.conversations.map((c) => c.lastActivityAt);
      assert.deepEqual(activity, [...activity].sort((x, y) => y - x));
    });

    test('sealed rows stay sealed at rest with their key id, and need their key', async () => {
      for (const m of V1.filter((x) => x.sealedWith !== undefined)) {
        const raw = await backend.rawEvent(m.id);
        assert.ok(raw !== undefined, `event ${m.id} missing`);
        assert.equal(raw.key_id, m.sealedWith!.activeKeyId);
        assert.notEqual(raw.content, m.content);
        assert.ok(!raw.content.includes('v1 message'));
      }
      const plain = V1.find((x) => x.sealedWith === undefined)!;
      assert.deepEqual(await backend.rawEvent(plain.id), { content: plain.content, key_id: null });
      // Without the keyring, a timeline holding a sealed row fails loudly instead of showing ciphertext.
      const sealedRecipient = V1.find((x) => x.sealedWith !== undefined)!;
      const keyless = await backend.open();
      try {
        await assert.rejects(keyless.timeline(sealedRecipient.tenantId, sealedRecipient.recipientId, 0, 1000), UnknownKeyError);
      } finally {
        await keyless.close();
      }
    });

    test('a new message after the upgrade continues seq and pos; a new pair starts at seq 1', async () => {
      const messages = conversations.get(pairKey(ACME, ann, bob))!;
      const annBefore = await store.syncState(ACME, ann);
      const bobBefore = await store.syncState(ACME, bob);
      const danBefore = await store.syncState(ACME, dan);
      const ts = BASE_TS + 10_000_000;
      const next: NewMessage = { id: uuid7(ts), tenantId: ACME, senderId: ann, to: { peerId: bob }, timestamp: ts, content: 'after the upgrade', mentions: [], hashtags: [], links: [] };
      const fresh: NewMessage = { ...next, id: uuid7(ts + 1), timestamp: ts + 1, senderId: bob, to: { peerId: dan }, content: 'new pair' };
      const [stored, created] = await store.appendMessages([next, fresh], LIMITS);
      assert.equal(stored?.status, 'stored');
      assert.equal(created?.status, 'stored');
      if (stored?.status !== 'stored' || created?.status !== 'stored') return;
      assert.equal(stored.message.conversationId, conversationIds.get(pairKey(ACME, ann, bob)));
      assert.equal(stored.message.seq, messages.length + 1);
      assert.deepEqual(
        [...stored.deliveries].sort((x, y) => x.userId.localeCompare(y.userId)),
        [
          { userId: ann, pos: annBefore.lastPos + 1 },
          { userId: bob, pos: bobBefore.lastPos + 1 },
        ].sort((x, y) => x.userId.localeCompare(y.userId)),
      );
      assert.equal(created.message.seq, 1);
      assert.ok(![...conversationIds.values()].includes(created.message.conversationId));
      assert.deepEqual(
        [...created.deliveries].sort((x, y) => x.userId.localeCompare(y.userId)),
        [
          { userId: bob, pos: bobBefore.lastPos + 2 },
          { userId: dan, pos: danBefore.lastPos + 1 },
        ].sort((x, y) => x.userId.localeCompare(y.userId)),
      );
      const bobTail = await store.timeline(ACME, bob, bobBefore.lastPos, 10);
      assert.deepEqual(bobTail.entries.map((e) => [e.pos, e.event.id]), [
        [bobBefore.lastPos + 1, next.id],
        [bobBefore.lastPos + 2, fresh.id],
      ]);
      // The v1 acknowledged position is untouched, and an ack moves on from it.
      assert.equal((await store.syncState(ACME, bob)).userAckedPos, bobBefore.userAckedPos);
      assert.equal(await store.ack(ACME, bob, 'phone', bobBefore.lastPos + 2), bobBefore.lastPos + 2);
      const history = await store.history(ACME, bob, { peerId: ann }, { limit: 2, groupHistory: 'since_join' });
      assert.deepEqual(history?.events.map((e) => e.seq), [messages.length + 1, messages.length]);
    });

    test('dedupe of a v1 clientMsgId still answers the v1 message', async () => {
      const old = V1.find((m) => m.clientMsgId !== undefined)!;
      const conv = conversations.get(pairKey(old.tenantId, old.senderId, old.recipientId))!;
      const ts = BASE_TS + 20_000_000;
      const retry: NewMessage = {
        id: uuid7(ts),
        tenantId: old.tenantId,
        senderId: old.senderId,
        to: { peerId: old.recipientId },
        timestamp: ts,
        content: 'a retry after the upgrade',
        mentions: [],
        hashtags: [],
        links: [],
        clientMsgId: old.clientMsgId!,
      };
      const [outcome] = await store.appendMessages([retry], LIMITS);
      assert.deepEqual(outcome, {
        status: 'duplicate',
        message: expectedMessage(old, conversationIds.get(pairKey(old.tenantId, old.senderId, old.recipientId))!, conv.indexOf(old) + 1),
      });
      // The key is per (tenant, sender): the same uuid in another tenant stores it.
      const other = old.tenantId === ACME ? GLOBEX : ACME;
      const [elsewhere] = await store.appendMessages([{ ...retry, id: uuid7(ts + 1), timestamp: ts + 1, tenantId: other, to: { peerId: old.senderId } }], LIMITS);
      assert.equal(elsewhere?.status, 'stored');
    });

    test('init() again, and a second store on the same database, change nothing', async () => {
      const before = await store.syncState(ACME, bob);
      const page = await store.timeline(ACME, bob, 0, 1000);
      await store.init();
      const second = await backend.open(keyring);
      try {
        await second.init();
        assert.deepEqual(await backend.versions(), CURRENT_VERSIONS[name]);
        assert.deepEqual(await second.syncState(ACME, bob), before);
        assert.deepEqual(await second.timeline(ACME, bob, 0, 1000), page);
        assert.deepEqual(await store.timeline(ACME, bob, 0, 1000), page);
      } finally {
        await second.close();
      }
    });
    // Last: it deletes what the tests above read.
    test('retention after the upgrade prunes v1 messages by their time, whatever their id (v4 ids too), with their edits', async () => {
      const oldV4 = V1[V4_OLD_HIGH]!;
      const youngV4 = V1[V4_YOUNG_LOW]!;
      const editedAt = BASE_TS + 30_000_000;
      const edit = (m: V1Message, i: number) =>
        store.editMessage(
          { tenantId: m.tenantId, actorId: m.senderId, eventId: uuid7(editedAt + i), messageId: m.id, timestamp: editedAt + i, body: { content: `edited ${i}`, mentions: [], hashtags: [], links: [] } },
          { maxInboxSize: 1000, editWindowMs: 2 * 30_000_000 },
        );
      // Edits made after the upgrade (UUIDv7, younger than the cut): one of an old v4 message goes with it.
      assert.equal((await edit(oldV4, 1)).status, 'ok');
      assert.equal((await edit(youngV4, 2)).status, 'ok');
      const before = V1.filter((m) => m.timestamp < RETENTION_CUT);
      assert.ok(before.length > 0 && before.length < V1.length);
      const pruned = await store.pruneOlderThan(RETENTION_CUT);
      assert.equal(pruned, before.length + 1, 'every v1 message older than the cut, and the edit of one');
      for (const [k, messages] of conversations) {
        const { tenantId, senderId: a, recipientId: b } = messages[0]!;
        const page = await store.history(tenantId, a, { peerId: b }, { limit: 1000, groupHistory: 'since_join' });
        const left = page!.events.filter((e) => e.kind === 'message' && V1.some((m) => m.id === e.id)).map((e) => e.id).sort();
        const expected = messages.filter((m) => m.timestamp >= RETENTION_CUT).map((m) => m.id).sort();
        assert.deepEqual(left, expected, `v1 messages left in ${k}`);
      }
      const young = await store.history(youngV4.tenantId, youngV4.senderId, { peerId: youngV4.recipientId }, { limit: 1000, groupHistory: 'since_join' });
      const kept = young!.events.find((e) => e.id === youngV4.id);
      assert.ok(kept?.kind === 'message' && kept.content === 'edited 2', 'the young v4 message is kept, with its edit');
      // Nothing more is due: a second prune deletes nothing.
      assert.equal(await store.pruneOlderThan(RETENTION_CUT), 0);
    });
  });
}

/** The smallest UUIDv7 of time `ms`: retention prunes every UUIDv7 id below it. */
function uuid7Floor(ms: number): string {
  const ts = ms.toString(16).padStart(12, '0');
  return `${ts.slice(0, 8)}-${ts.slice(8, 12)}-0000-0000-000000000000`;
}

migrationSuite('SQLite', sqliteBackend);
migrationSuite('PostgreSQL', postgresBackend);
