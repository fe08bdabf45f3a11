/**
 * Encryption keys on both stores: wrong key bytes under the same id fail reads with
 * DecryptionError and the rows open again with the right key; a resend whose first copy is sealed
 * with a key since removed is answered as a duplicate (its body left out) and the other messages
 * of its batch are stored — before, the whole batch failed for every sender in it.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { ContentCipher, DecryptionError } from '../../src/store/content-cipher.js';
import { messageId } from '../../src/chat/message-id.js';
import type { NewMessage, Store } from '../../src/store/store.js';
import { PG_URL } from '../helpers/harness.js';

const T = 'default';
const OPTS = { maxInboxSize: 1000 };
const K1 = randomBytes(32);
const K2 = randomBytes(32);

interface B { name: string; open(c: ContentCipher): Promise<Store>; teardown(): Promise<void> }
function sqlite(): B {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-review-keys-'));
  return {
    name: 'sqlite',
    async open(cipher) {
      const s = new SqliteStore(join(dir, 'db.sqlite'), { cipher });
      await s.init();
      return s;
    },
    async teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
function postgres(): B {
  const schema = `rampart_review_keys_${randomBytes(5).toString('hex')}`;
  return {
    name: 'postgres',
    async open(cipher) {
      const s = new PostgresStore(PG_URL, { schema, pool: { max: 3 }, cipher });
      await s.init();
      return s;
    },
    async teardown() {
      const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    },
  };
}
const bs = [sqlite(), postgres()];
after(async () => {
  for (const b of bs) await b.teardown();
});

function message(from: string, to: NewMessage['to'], content: string, clientMsgId?: string): NewMessage {
  const ts = Date.now();
  const m: NewMessage = { id: messageId(ts), tenantId: T, senderId: from, to, timestamp: ts, content, mentions: [], hashtags: [], links: [] };
  if (clientMsgId !== undefined) m.clientMsgId = clientMsgId;
  return m;
}

for (const b of bs) {
  describe(`encryption keys (${b.name})`, () => {
    test('wrong key bytes under the same id: DecryptionError, and the rows open again with the right key', async () => {
      const [a, c] = [randomUUID(), randomUUID()];
      let s = await b.open(new ContentCipher({ activeKeyId: 'k1', keys: { k1: K1 } }));
      await s.appendMessages([message(a, { peerId: c }, 'WK')], OPTS);
      await s.close();
      s = await b.open(new ContentCipher({ activeKeyId: 'k1', keys: { k1: K2 } }));
      try {
        await assert.rejects(() => s.history(T, a, { peerId: c }, { limit: 5, groupHistory: 'since_join' }), (e: unknown) => e instanceof DecryptionError);
      } finally {
        await s.close();
      }
      s = await b.open(new ContentCipher({ activeKeyId: 'k1', keys: { k1: K1 } }));
      try {
        const h = await s.history(T, a, { peerId: c }, { limit: 5, groupHistory: 'since_join' });
        assert.equal((h!.events[0] as { content: string }).content, 'WK');
      } finally {
        await s.close();
      }
    });

    test('a resend whose first copy is sealed with a removed key does not refuse the other messages of its batch', async () => {
      const [a, c, d] = [randomUUID(), randomUUID(), randomUUID()];
      let s = await b.open(new ContentCipher({ activeKeyId: 'k1', keys: { k1: K1 } }));
      await s.appendMessages([message(a, { peerId: c }, 'first', 'cm-1')], OPTS);
      await s.close();
      s = await b.open(new ContentCipher({ activeKeyId: 'k2', keys: { k2: K2 } }));
      try {
        let outcome: unknown;
        try {
          outcome = await s.appendMessages([message(a, { peerId: c }, 'first', 'cm-1'), message(d, { peerId: c }, 'innocent')], OPTS);
        } catch (err) {
          outcome = err;
        }
        const statuses = Array.isArray(outcome) ? outcome.map((o: { status: string }) => o.status) : String(outcome);
        assert.ok(Array.isArray(statuses) && statuses[1] === 'stored', `the other sender's message: ${JSON.stringify(statuses)}`);
        assert.equal(statuses[0], 'duplicate', 'the resend is answered with the first copy');
        assert.equal((outcome as { message: { clientMsgId?: string } }[])[0]!.message.clientMsgId, 'cm-1');
      } finally {
        await s.close();
      }
    });
  });
}
