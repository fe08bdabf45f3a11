/**
 * A group name that cannot be opened never stops a store from starting. docs/operations.md
 * ("Encryption at rest"): a key removed too early makes its rows unreadable, and wrong bytes under
 * a known id fail the same way (a decryption error) — put the key right and nothing is lost; a
 * group name in that state is repaired by renaming the group. At start-up each store seals every
 * group name again under the active key; that pass skipped only names whose key was missing
 * (UnknownKeyError) and rethrew a DecryptionError (wrong bytes under the old id, or one damaged
 * name) from init(), so no node could start after a rotation with a mistyped old key. And a
 * rename compared with the old name through the same decryption, so the documented repair threw.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ContentCipher } from '../../src/store/content-cipher.js';
import { messageId } from '../../src/chat/message-id.js';
import { Database } from '../../src/store/sqlite-driver.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import type { Store } from '../../src/store/store.js';
import { PG_URL } from '../helpers/harness.js';

const T = 'default';
const LIMITS = { maxGroupMembers: 10, maxGroupsPerUser: 10 };
const K1 = randomBytes(32);
const K2 = randomBytes(32);
const onlyK1 = new ContentCipher({ activeKeyId: 'k1', keys: { k1: K1 } });
const rotated = new ContentCipher({ activeKeyId: 'k2', keys: { k1: K1, k2: K2 } });
/** The rotation with the old key's bytes mistyped. */
const mistyped = new ContentCipher({ activeKeyId: 'k2', keys: { k1: randomBytes(32), k2: K2 } });

interface Backend {
  name: string;
  open(cipher: ContentCipher): Promise<Store>;
  /** key_id of the conversation `uuid`. */
  keyId(uuid: string): Promise<string | null>;
  /** Damage the stored (sealed) name of the conversation `uuid`: one flipped bit of its ciphertext. */
  damageName(uuid: string): Promise<void>;
  teardown(): Promise<void>;
}

/** One bit of a sealed value (base64 of iv || ciphertext || tag) flipped inside the ciphertext. */
function flipped(sealed: string): string {
  const raw = Buffer.from(sealed, 'base64');
  raw[13]! ^= 1;
  return raw.toString('base64');
}

function sqliteBackend(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-wrongkey-'));
  const file = join(dir, 'db.sqlite');
  const withDb = <R>(work: (db: InstanceType<typeof Database>) => R): R => {
    const db = new Database(file);
    try {
      return work(db);
    } finally {
      db.close();
    }
  };
  const byUuid = "uuid = unhex(replace(?, '-', ''))";
  return {
    name: 'sqlite',
    async open(cipher) {
      const store = new SqliteStore(file, { cipher });
      await store.init();
      return store;
    },
    async keyId(uuid) {
      return withDb((db) => (db.prepare(`SELECT key_id FROM conversations WHERE ${byUuid}`).get(uuid) as { key_id: string | null }).key_id);
    },
    async damageName(uuid) {
      withDb((db) => {
        const { name } = db.prepare(`SELECT name FROM conversations WHERE ${byUuid}`).get(uuid) as { name: string };
        db.prepare(`UPDATE conversations SET name = ? WHERE ${byUuid}`).run(flipped(name), uuid);
      });
    },
    async teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresBackend(): Backend {
  const schema = `rampart_wrongkey_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
  const conversations = `"${schema}".conversations`;
  return {
    name: 'postgres',
    async open(cipher) {
      const store = new PostgresStore(PG_URL, { schema, pool: { max: 2 }, cipher });
      try {
        await store.init();
      } catch (err) {
        await store.close();
        throw err;
      }
      return store;
    },
    async keyId(uuid) {
      return (await admin.query<{ key_id: string | null }>(`SELECT key_id FROM ${conversations} WHERE uuid = $1`, [uuid])).rows[0]!.key_id;
    },
    async damageName(uuid) {
      const { rows } = await admin.query<{ name: string }>(`SELECT name FROM ${conversations} WHERE uuid = $1`, [uuid]);
      await admin.query(`UPDATE ${conversations} SET name = $1 WHERE uuid = $2`, [flipped(rows[0]!.name), uuid]);
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

const backends = [sqliteBackend(), postgresBackend()];
after(async () => {
  for (const b of backends) await b.teardown();
});

/** The store opened with `cipher`, or the test fails with why it would not start. */
async function starts(backend: Backend, cipher: ContentCipher): Promise<Store> {
  try {
    return await backend.open(cipher);
  } catch (err) {
    assert.fail(`the store refused to start: ${(err as Error).name}: ${(err as Error).message}`);
  }
}

for (const backend of backends) {
  describe(`a group name that cannot be opened does not stop the store (${backend.name})`, () => {
    let t = Date.now();
    const ev = (): { eventId: string; timestamp: number } => ({ eventId: messageId(++t), timestamp: t });

    /** A group of `alice` and `bob` named `name`, made by a store sealing with k1 only. */
    async function groupUnderK1(name: string): Promise<{ alice: string; bob: string; gid: string }> {
      const [alice, bob, gid] = [randomUUID(), randomUUID(), randomUUID()];
      const s = await backend.open(onlyK1);
      try {
        assert.equal((await s.createGroup({ tenantId: T, actorId: alice, ...ev(), conversationId: gid, name, memberIds: [bob] }, LIMITS)).status, 'ok');
      } finally {
        await s.close();
      }
      return { alice, bob, gid };
    }

    test('wrong bytes under the old key id: the store starts, the name fails to read and is kept; the right key reads it again', async () => {
      const { bob, gid } = await groupUnderK1('Project Nightingale');
      const wrong = await starts(backend, mistyped);
      try {
        await assert.rejects(wrong.listConversations(T, bob, { limit: 10 }), { name: 'DecryptionError' });
      } finally {
        await wrong.close();
      }
      assert.equal(await backend.keyId(gid), 'k1', 'left as it was: nothing could open it');
      // The key put right: nothing was lost, and the name is sealed under the active key now.
      const right = await starts(backend, rotated);
      try {
        const list = await right.listConversations(T, bob, { limit: 10 });
        assert.equal(list.conversations.find((c) => c.conversationId === gid)?.name, 'Project Nightingale');
      } finally {
        await right.close();
      }
      assert.equal(await backend.keyId(gid), 'k2');
    });

    test('wrong bytes under the old key id: renaming the group repairs its name', async () => {
      const { alice, bob, gid } = await groupUnderK1('Heron');
      const s = await starts(backend, mistyped);
      try {
        assert.equal((await s.renameGroup({ tenantId: T, actorId: alice, ...ev(), conversationId: gid, name: 'Egret' })).status, 'ok');
        const list = await s.listConversations(T, bob, { limit: 10 });
        assert.equal(list.conversations.find((c) => c.conversationId === gid)?.name, 'Egret');
      } finally {
        await s.close();
      }
      assert.equal(await backend.keyId(gid), 'k2');
    });

    test('one damaged name under the old key: the store starts and seals the others again; a rename repairs the damaged one', async () => {
      const damaged = await groupUnderK1('Osprey');
      const intact = await groupUnderK1('Plover');
      await backend.damageName(damaged.gid);
      const s = await starts(backend, rotated);
      try {
        assert.equal(await backend.keyId(intact.gid), 'k2', 'the intact name was sealed again under the active key');
        assert.equal(await backend.keyId(damaged.gid), 'k1', 'the damaged one was left as it was');
        assert.equal((await s.listConversations(T, intact.bob, { limit: 10 })).conversations[0]?.name, 'Plover');
        await assert.rejects(s.listConversations(T, damaged.bob, { limit: 10 }), { name: 'DecryptionError' });
        assert.equal((await s.renameGroup({ tenantId: T, actorId: damaged.alice, ...ev(), conversationId: damaged.gid, name: 'Osprey II' })).status, 'ok');
        assert.equal((await s.listConversations(T, damaged.bob, { limit: 10 })).conversations[0]?.name, 'Osprey II');
      } finally {
        await s.close();
      }
    });
  });
}
