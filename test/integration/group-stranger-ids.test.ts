/**
 * `remove_members` and `set_role` naming users who were never in the group change nothing and
 * store nothing: no `users` row is made for such an id (PostgreSQL resolved, and so inserted,
 * every named id — an admin could add thousands of rows a minute), on both stores.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { Database } from '../../src/store/sqlite-driver.js';
import { messageId } from '../../src/chat/message-id.js';
import type { Store } from '../../src/store/store.js';
import { PG_URL } from '../helpers/harness.js';

const T = 'default';
const LIMITS = { maxGroupMembers: 10, maxGroupsPerUser: 10 };

interface Backend {
  name: string;
  store: () => Promise<Store>;
  users: () => Promise<number>;
  teardown: () => Promise<void>;
}

function sqlite(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-stranger-ids-'));
  const file = join(dir, 'db.sqlite');
  let store: SqliteStore | undefined;
  return {
    name: 'sqlite',
    store: async () => {
      store = new SqliteStore(file);
      await store.init();
      return store;
    },
    users: async () => {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      try {
        return (db.prepare('SELECT count(*) AS n FROM users').get() as { n: number }).n;
      } finally {
        db.close();
      }
    },
    teardown: async () => {
      await store?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgres(): Backend {
  const schema = `rampart_stranger_ids_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
  let store: PostgresStore | undefined;
  return {
    name: 'postgres',
    store: async () => {
      store = new PostgresStore(PG_URL, { schema, pool: { max: 2 } });
      await store.init();
      return store;
    },
    users: async () => Number((await admin.query(`SELECT count(*) AS n FROM "${schema}".users`)).rows[0].n),
    teardown: async () => {
      await store?.close();
      try {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await admin.end();
      }
    },
  };
}

const backends = [sqlite(), postgres()];
after(async () => {
  for (const b of backends) await b.teardown();
});

for (const backend of backends) {
  describe(`ids of users never in the group (${backend.name})`, () => {
    test('remove_members and set_role naming strangers: unchanged / forbidden, and no users row for them', async () => {
      const s = await backend.store();
      const [owner, member] = [randomUUID(), randomUUID()];
      const conversationId = randomUUID();
      let t = Date.now();
      const ev = (): { eventId: string; timestamp: number } => ({ eventId: messageId(++t), timestamp: t });
      assert.equal((await s.createGroup({ tenantId: T, actorId: owner, ...ev(), conversationId, name: 'g', memberIds: [member] }, LIMITS)).status, 'ok');
      const before = await backend.users();
      const strangers = Array.from({ length: 50 }, () => randomUUID());
      assert.equal((await s.removeMembers({ tenantId: T, actorId: owner, ...ev(), conversationId, userIds: strangers })).status, 'unchanged');
      assert.equal((await s.setRole({ tenantId: T, actorId: owner, ...ev(), conversationId, userId: randomUUID(), role: 'admin' })).status, 'forbidden');
      assert.equal(await backend.users(), before, 'no row for an id that never was a member');
      // A member named beside strangers is still found, and removed.
      const removed = await s.removeMembers({ tenantId: T, actorId: owner, ...ev(), conversationId, userIds: [member, ...strangers.slice(0, 3)] });
      assert.equal(removed.status, 'ok');
      assert.deepEqual(removed.status === 'ok' ? removed.event.userIds : [], [member]);
    });
  });
}
