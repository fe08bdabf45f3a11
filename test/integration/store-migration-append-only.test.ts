/**
 * Migrations are append-only, and this file holds them to it. SQLite schema 7 and PostgreSQL
 * version 5 (members.wrote) were changed after they first shipped (4506a83 → dc8ebba): a database
 * that ran the first text (direct conversations only) never ran the later one, and a group member
 * who had written kept wrote = 0 (their presence and receipts never reached the group until they
 * wrote again). SQLite 11 / PostgreSQL 9 mark them. Every shipped entry's text is pinned by its
 * hash below, so an edit in place fails here: append a new entry instead.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database } from '../../src/store/sqlite-driver.js';
import { SqliteStore, SQLITE_MIGRATIONS } from '../../src/store/sqlite-store.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { MIGRATIONS as PG_MIGRATIONS } from '../../src/store/pg-migrations.js';
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';

const PG_URL = process.env.RAMPART_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** PostgreSQL version 5 as shipped in 4506a83 (git show 4506a83:src/store/pg-migrations.ts). */
const SHIPPED_PG_5 = (t: (s: string) => string): string => `
    ALTER TABLE ${t('members')} ADD COLUMN wrote BOOLEAN NOT NULL DEFAULT false;
    UPDATE ${t('members')} m SET wrote = true
      FROM ${t('conversations')} c
      WHERE c.id = m.conv AND c.kind = 0 -- direct
        AND EXISTS (SELECT 1 FROM ${t('events')} e WHERE e.conv = m.conv AND e.sender = m."user");`;

/** Schema 7 as shipped in 4506a83 (git show 4506a83:src/store/sqlite-store.ts). */
const SHIPPED_7 = `ALTER TABLE members ADD COLUMN wrote INTEGER NOT NULL DEFAULT 0;
   UPDATE members SET wrote = 1
     WHERE conv IN (SELECT id FROM conversations WHERE kind = 0) -- direct
       AND EXISTS (SELECT 1 FROM events e WHERE e.conv = members.conv AND e.sender = members.user);`;

const dir = mkdtempSync(join(tmpdir(), 'rampart-mig-wrote-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A schema-6 database with one group: ann created it (seq 1, membership), bob wrote (seq 2). */
function schema6(file: string): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  for (let v = 0; v < 6; v++) {
    db.exec(SQLITE_MIGRATIONS[v]!);
    db.prepare('INSERT INTO schema_version VALUES (?, ?)').run(v + 1, Date.now());
  }
  const now = Date.now();
  db.prepare("INSERT INTO users (id, tenant_id, user_id, last_pos, acked_pos) VALUES (1, 'default', randomblob(16), 2, 2), (2, 'default', randomblob(16), 2, 2)").run();
  db.prepare("INSERT INTO conversations (id, uuid, tenant_id, kind, name, last_seq, last_at, closed, created_at) VALUES (1, randomblob(16), 'default', 1, 'Ops', 2, ?, 0, ?)").run(now, now);
  db.prepare('INSERT INTO members (conv, user, role, joined_seq) VALUES (1, 1, 2, 1), (1, 2, 0, 1)').run();
  db.prepare(
    `INSERT INTO events (conv, seq, id, kind, sender, content, mentions, hashtags, links, ts)
     VALUES (1, 1, randomblob(16), 1, 1, '{}', '[]', '[]', '[]', ?), (1, 2, randomblob(16), 0, 2, 'hi', '[]', '[]', '[]', ?)`,
  ).run(now, now);
  db.prepare('INSERT INTO timeline (user, pos, conv, seq) VALUES (1, 1, 1, 1), (1, 2, 1, 2), (2, 1, 1, 1), (2, 2, 1, 2)').run();
  db.close();
}

function bobWrote(file: string): number {
  const db = new Database(file);
  try {
    return (db.prepare('SELECT wrote FROM members WHERE conv = 1 AND user = 2').get() as { wrote: number }).wrote;
  } finally {
    db.close();
  }
}

test('SQLite: a database that ran schema 7 as first shipped ends with the same members.wrote as one upgraded today', async () => {
  const today = join(dir, 'today.db');
  schema6(today);
  const s1 = new SqliteStore(today);
  await s1.init();
  await s1.close();
  assert.equal(bobWrote(today), 1, 'control: upgraded from schema 6 today, bob (who wrote in the group) is marked');

  const shipped = join(dir, 'shipped.db');
  schema6(shipped);
  const db = new Database(shipped);
  db.exec(SHIPPED_7);
  db.prepare('INSERT INTO schema_version VALUES (7, ?)').run(Date.now());
  db.close();
  const s2 = new SqliteStore(shipped);
  await s2.init();
  await s2.close();
  assert.equal(bobWrote(shipped), 1, 'after the shipped schema 7 then the current build, bob should be marked too');
});

test('PostgreSQL: a database that ran version 5 as first shipped ends like one upgraded today', async () => {
  const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
  const results: boolean[] = [];
  try {
    for (const shipped of [false, true]) {
      const schema = `mig_wrote_${randomBytes(5).toString('hex')}`;
      const t = (x: string) => `"${schema}".${x}`;
      try {
        await admin.query(`CREATE SCHEMA "${schema}"`);
        await admin.query(`CREATE TABLE ${t('schema_version')} (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
        for (let v = 0; v < 4; v++) {
          await admin.query(PG_MIGRATIONS[v]!(t));
          await admin.query(`INSERT INTO ${t('schema_version')} (version) VALUES ($1)`, [v + 1]);
        }
        const now = Date.now();
        await admin.query(`INSERT INTO ${t('users')} (id, tenant_id, user_id, last_pos, acked_pos) VALUES (1, 'default', gen_random_uuid(), 2, 2), (2, 'default', gen_random_uuid(), 2, 2)`);
        await admin.query(`INSERT INTO ${t('conversations')} (id, uuid, tenant_id, kind, name, last_seq, last_at, closed, created_at) VALUES (1, gen_random_uuid(), 'default', 1, 'Ops', 2, $1, false, $1)`, [now]);
        await admin.query(`INSERT INTO ${t('members')} (conv, "user", role, joined_seq) VALUES (1, 1, 2, 1), (1, 2, 0, 1)`);
        await admin.query(`INSERT INTO ${t('events')} (conv, seq, id, kind, sender, content, mentions, hashtags, links, ts) VALUES (1, 1, gen_random_uuid(), 1, 1, '{}', '[]', '[]', '[]', $1), (1, 2, gen_random_uuid(), 0, 2, 'hi', '[]', '[]', '[]', $1)`, [now]);
        await admin.query(`INSERT INTO ${t('timeline')} ("user", pos, conv, seq) VALUES (1, 1, 1, 1), (1, 2, 1, 2), (2, 1, 1, 1), (2, 2, 1, 2)`);
        if (shipped) {
          await admin.query(SHIPPED_PG_5(t));
          await admin.query(`INSERT INTO ${t('schema_version')} (version) VALUES (5)`);
        }
        const store = new PostgresStore(PG_URL, { schema, pool: { max: 1 } });
        try {
          await store.init();
        } finally {
          await store.close();
        }
        const { rows } = await admin.query<{ wrote: boolean }>(`SELECT wrote FROM ${t('members')} WHERE conv = 1 AND "user" = 2`);
        results.push(rows[0]!.wrote);
      } finally {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      }
    }
  } finally {
    await admin.end();
  }
  assert.equal(results[0], true, 'control: upgraded from version 4 today, bob is marked');
  assert.equal(results[1], true, 'after the shipped version 5 then the current build, bob should be marked too');
});

/** sha256 (16 hex) of each shipped entry's text, in order; PostgreSQL's with table names as <name>. */
const SHIPPED = {
  sqlite: ['a667b2349c4974ec', '87bba517b398b01d', 'e25ae3fb1cccad0a', 'e07afc1ec8ba2227', '242ef6e8bd3724c8', 'c8505c7dfb50a6e7', 'c3e4aa9ad689e589', 'd1094356839b8405', '07efcd6348760c72', '0758ffd4ace5cdd9', 'dea7bb48271c4979', 'a2d513313df557c2'],
  postgres: ['335948943f9793c9', '814031d7b796bad5', 'cc339b15ac03c5eb', 'cbbe3554e94c4375', 'e68237d611a79f0d', '2f8b179a212df370', '818eead609d832e5', '55331c91a9517a25', 'ac369572e5a53854', '462792ed555d39ce'],
};

test('no shipped migration is edited: each entry\'s text is the one it shipped with (new entries are appended, and added here)', () => {
  const hash = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, 16);
  assert.deepEqual(SQLITE_MIGRATIONS.slice(0, SHIPPED.sqlite.length).map(hash), SHIPPED.sqlite, 'SQLite');
  assert.deepEqual(PG_MIGRATIONS.slice(0, SHIPPED.postgres.length).map((m) => hash(m((t) => `<${t}>`))), SHIPPED.postgres, 'PostgreSQL');
});
