/**
 * SQLite 11 / PostgreSQL 9 set members.wrote as the running code would: a message since (re)joining
 * marks, an edit does not. Run again on rows the running code wrote (the schema version set back),
 * it changes nothing — here for a member re-added who only edited an earlier message since, whom a
 * first text of the migration (counting edits) marked.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Database } from '../../src/store/sqlite-driver.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { messageId } from '../../src/chat/message-id.js';
import type { Store, StoredMessage } from '../../src/store/store.js';
import { PG_URL } from '../helpers/harness.js';

const T = 'default';
const OPTS = { maxInboxSize: 1000 };
const LIMITS = { maxGroupMembers: 10, maxGroupsPerUser: 10 };
let clock = Date.now();
const now = (): number => ++clock;

/** A store that can be opened again after its last migration was set back, to run it once more. */
interface B { name: string; open(): Promise<Store>; rerun(): Promise<void>; teardown(): Promise<void> }

function sqlite(): B {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-wrote-'));
  const file = join(dir, 'db.sqlite');
  return {
    name: 'sqlite',
    async open() { const s = new SqliteStore(file, {}); await s.init(); return s; },
    async rerun() { const db = new Database(file); db.exec('DELETE FROM schema_version WHERE version >= 11;'); db.close(); },
    async teardown() { rmSync(dir, { recursive: true, force: true }); },
  };
}
function postgres(): B {
  const schema = `wrote_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
  return {
    name: 'postgres',
    async open() { const s = new PostgresStore(PG_URL, { schema, pool: { max: 2 } }); await s.init(); return s; },
    async rerun() { await admin.query(`DELETE FROM "${schema}".schema_version WHERE version >= 9`); },
    async teardown() { await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`); await admin.end(); },
  };
}

for (const make of [sqlite, postgres]) {
  const backend = make();
  after(() => backend.teardown());
  test(`${backend.name}: the new migration agrees with the running code for a re-added member who only edited since`, async () => {
    const [owner, bob] = [randomUUID(), randomUUID()];
    const gid = randomUUID();
    const change = (actor: string) => { const ts = now(); return { tenantId: T, actorId: actor, eventId: messageId(ts), timestamp: ts, conversationId: gid }; };
    let store = await backend.open();
    assert.equal((await store.createGroup({ ...change(owner), name: 'g', memberIds: [bob] }, LIMITS)).status, 'ok');
    const ts = now();
    const [out] = await store.appendMessages([{ id: messageId(ts), tenantId: T, senderId: bob, to: { conversationId: gid }, timestamp: ts, content: 'bob', mentions: [], hashtags: [], links: [] }], OPTS);
    const m = (out as { message: StoredMessage }).message;
    assert.equal((await store.removeMembers({ ...change(owner), userIds: [bob] })).status, 'ok');
    assert.equal((await store.addMembers({ ...change(owner), userIds: [bob] }, LIMITS)).status, 'ok');
    const te = now();
    const edited = await store.editMessage({ tenantId: T, actorId: bob, eventId: messageId(te), messageId: m.id, timestamp: te, body: { content: 'edited after re-add', mentions: [], hashtags: [], links: [] } }, { ...OPTS, editWindowMs: 60_000 });
    assert.equal(edited.status, 'ok');
    const sharingNow = (await store.audienceOf(T, gid, owner))!.sharing;
    await store.close();
    await backend.rerun(); // a database at the version before: the new migration runs on the same rows
    store = await backend.open();
    try {
      assert.deepEqual((await store.audienceOf(T, gid, owner))!.sharing, sharingNow, 'the upgrade marks no one the running code did not');
    } finally {
      await store.close();
    }
  });
}
