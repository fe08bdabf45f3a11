/**
 * One contract for every Store adapter, run against SQLite (temp file) and PostgreSQL (a fresh
 * schema in the shared `test` database). PostgreSQL being unreachable is a failure, not a skip.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { ContentCipher, UnknownKeyError } from '../../src/store/content-cipher.js';
import { GroupCommitter } from '../../src/store/group-commit.js';
import { openStore } from '../../src/store/open-store.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { InsertOptions, InsertOutcome, Store, StoredMessage } from '../../src/store/store.js';

const PG_URL = process.env.RAMPART_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const T = 'default';
const LIMITS: InsertOptions = { maxInboxSize: 1000 };

interface Harness {
  setup(): Promise<void>;
  /** A new, initialised Store over the same database as every other one this harness opened. */
  open(options?: { cipher?: ContentCipher }): Promise<Store>;
  /** The messages table as stored, bypassing the adapter. */
  rawMessages(): Promise<Record<string, unknown>[]>;
  teardown(): Promise<void>;
}

function sqliteHarness(): Harness {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-store-'));
  const file = join(dir, 'store.db');
  return {
    async setup() {},
    async open(options = {}) {
      const store = new SqliteStore(file, options);
      await store.init();
      return store;
    },
    async rawMessages() {
      const db = new Database(file, { readonly: true });
      try {
        return db.prepare('SELECT * FROM messages').all() as Record<string, unknown>[];
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
      const store = new PostgresStore(PG_URL, { ...options, schema, pool: { max: 4, connectionTimeoutMillis: 5000 } });
      try {
        await store.init();
      } catch (err) {
        await store.close();
        throw err;
      }
      return store;
    },
    async rawMessages() {
      return (await admin.query(`SELECT * FROM "${schema}".messages`)).rows as Record<string, unknown>[];
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

let counter = 0;
const BASE_TS = Date.now();

function msg(from: string, to: string, extra: Partial<StoredMessage> = {}): StoredMessage {
  counter++;
  return {
    id: randomUUID(),
    tenantId: T,
    senderId: from,
    recipientId: to,
    content: `message ${counter}`,
    mentions: [],
    hashtags: [],
    links: [],
    timestamp: BASE_TS + counter,
    ...extra,
  };
}

const users = (n: number): string[] => Array.from({ length: n }, () => randomUUID());
const ids = (messages: readonly StoredMessage[]): string[] => messages.map((m) => m.id);
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function stored(outcome: InsertOutcome | undefined): StoredMessage {
  assert.ok(outcome !== undefined && outcome.status !== 'inbox_full', `expected a message, got ${JSON.stringify(outcome)}`);
  return outcome.message;
}

/** Wraps a store and counts insertMessages calls (the group committer's transactions). */
function spy(store: Store, fail?: Error): { store: Pick<Store, 'insertMessages'>; calls: StoredMessage[][] } {
  const calls: StoredMessage[][] = [];
  return {
    calls,
    store: {
      async insertMessages(batch, options) {
        calls.push([...batch]);
        if (fail !== undefined) throw fail;
        return store.insertMessages(batch, options);
      },
    },
  };
}

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
    });

    test('stores a batch and returns pending messages oldest first, up to the limit', async () => {
      const [alice, bob] = users(2);
      const first = [msg(alice!, bob!), msg(alice!, bob!), msg(alice!, bob!)];
      const second = [msg(alice!, bob!), msg(alice!, bob!)];
      const outcomes = await store.insertMessages(first, LIMITS);
      assert.deepEqual(outcomes, first.map((message) => ({ status: 'stored', message })));
      await store.insertMessages(second, LIMITS);
      const pending = await store.pendingFor(T, bob!, 100);
      assert.deepEqual(pending, [...first, ...second]);
      assert.deepEqual(ids(await store.pendingFor(T, bob!, 2)), ids(first.slice(0, 2)));
      assert.deepEqual(await store.pendingFor(T, alice!, 100), []);
      assert.deepEqual(await store.insertMessages([], LIMITS), []);
    });

    test('ack touches only messages addressed to the acking user', async () => {
      const [alice, bob, mallory] = users(3);
      const toBob = [msg(alice!, bob!), msg(alice!, bob!), msg(alice!, bob!)];
      const toMallory = msg(alice!, mallory!);
      await store.insertMessages([...toBob, toMallory], LIMITS);

      // Mallory acks Bob's messages (and Bob acks Mallory's): nothing changes.
      assert.equal(await store.ack(T, mallory!, ids(toBob)), 0);
      assert.equal(await store.ack(T, bob!, [toMallory.id]), 0);
      assert.equal(await store.ack(T, alice!, ids(toBob)), 0); // the sender cannot ack either
      assert.deepEqual(ids(await store.pendingFor(T, bob!, 10)), ids(toBob));
      assert.deepEqual(ids(await store.pendingFor(T, mallory!, 10)), [toMallory.id]);

      assert.equal(await store.ack(T, bob!, [toBob[0]!.id, toBob[2]!.id, randomUUID()]), 2);
      assert.deepEqual(ids(await store.pendingFor(T, bob!, 10)), [toBob[1]!.id]);
      assert.equal(await store.ack(T, bob!, [toBob[0]!.id]), 0, 'acking twice counts once');
      assert.equal(await store.ack(T, bob!, []), 0);
    });

    test('dedupes (senderId, clientMsgId) across batches and within one batch', async () => {
      const [alice, bob, carol] = users(3);
      const original = msg(alice!, bob!, { clientMsgId: 'c-1' });
      assert.equal((await store.insertMessages([original], LIMITS))[0]!.status, 'stored');

      const retry = msg(alice!, bob!, { clientMsgId: 'c-1', content: 'retry' });
      const [again] = await store.insertMessages([retry], LIMITS);
      assert.equal(again!.status, 'duplicate');
      assert.deepEqual(stored(again), original);

      // Within one batch: the second gets the first one's message.
      const a = msg(alice!, bob!, { clientMsgId: 'c-2' });
      const b = msg(alice!, bob!, { clientMsgId: 'c-2', content: 'same key' });
      const otherSender = msg(carol!, bob!, { clientMsgId: 'c-2' });
      const outcomes = await store.insertMessages([a, b, otherSender], LIMITS);
      assert.deepEqual(outcomes.map((o) => o.status), ['stored', 'duplicate', 'stored']);
      assert.equal(stored(outcomes[1]).id, a.id);
      assert.deepEqual(ids(await store.pendingFor(T, bob!, 10)), [original.id, a.id, otherSender.id]);
    });

    test('refuses with inbox_full once the unacked inbox reaches maxInboxSize', async () => {
      const [alice, bob, carol] = users(3);
      const limits = { maxInboxSize: 3 };
      const batch = [
        msg(alice!, bob!, { clientMsgId: 'f-1' }),
        msg(alice!, bob!),
        msg(alice!, carol!),
        msg(alice!, bob!),
        msg(alice!, bob!),
      ];
      const outcomes = await store.insertMessages(batch, limits);
      assert.deepEqual(outcomes.map((o) => o.status), ['stored', 'stored', 'stored', 'stored', 'inbox_full']);
      assert.deepEqual((await store.insertMessages([msg(alice!, bob!)], limits)).map((o) => o.status), ['inbox_full']);
      // A retry of a stored message is still answered as a duplicate when the inbox is full.
      assert.equal((await store.insertMessages([msg(alice!, bob!, { clientMsgId: 'f-1' })], limits))[0]!.status, 'duplicate');
      // Acking frees room again.
      assert.equal(await store.ack(T, bob!, [batch[0]!.id]), 1);
      const after = await store.insertMessages([msg(alice!, bob!), msg(alice!, bob!)], limits);
      assert.deepEqual(after.map((o) => o.status), ['stored', 'inbox_full']);
      assert.equal((await store.pendingFor(T, bob!, 10)).length, 3);
    });

    test('history: newest first, both directions, limit and before cursor', async () => {
      const [alice, bob] = users(2);
      const conversation: StoredMessage[] = [];
      for (let i = 0; i < 7; i++) conversation.push(i % 2 === 0 ? msg(alice!, bob!) : msg(bob!, alice!));
      await store.insertMessages(conversation.slice(0, 4), LIMITS);
      await store.insertMessages(conversation.slice(4), LIMITS);
      const newestFirst = ids(conversation).reverse();

      assert.deepEqual(await store.history(T, alice!, bob!, { limit: 100 }), [...conversation].reverse());
      assert.deepEqual(ids(await store.history(T, bob!, alice!, { limit: 100 })), newestFirst);
      const page1 = await store.history(T, alice!, bob!, { limit: 3 });
      assert.deepEqual(ids(page1), newestFirst.slice(0, 3));
      const page2 = await store.history(T, alice!, bob!, { limit: 3, before: page1.at(-1)!.id });
      assert.deepEqual(ids(page2), newestFirst.slice(3, 6));
      const page3 = await store.history(T, bob!, alice!, { limit: 3, before: page2.at(-1)!.id });
      assert.deepEqual(ids(page3), newestFirst.slice(6));
      assert.deepEqual(await store.history(T, alice!, bob!, { limit: 3, before: page3[0]!.id }), []);
      assert.deepEqual(await store.history(T, alice!, bob!, { limit: 3, before: randomUUID() }), []);
      assert.deepEqual(await store.history(T, alice!, bob!, { limit: 0 }), []);
      assert.deepEqual(await store.history(T, alice!, bob!, { limit: -1 }), []);
      // Acked or not makes no difference to history.
      await store.ack(T, bob!, ids(conversation));
      assert.equal((await store.history(T, alice!, bob!, { limit: 100 })).length, 7);
    });

    test('history never returns a conversation the caller is not part of', async () => {
      const [alice, bob, carol, dave] = users(4);
      const ab = [msg(alice!, bob!), msg(bob!, alice!)];
      const ac = [msg(alice!, carol!), msg(carol!, alice!)];
      const cb = [msg(carol!, bob!)];
      const cd = [msg(carol!, dave!)];
      const self = [msg(alice!, alice!)];
      await store.insertMessages([...ab, ...ac, ...cb, ...cd, ...self], LIMITS);

      assert.deepEqual(ids(await store.history(T, alice!, bob!, { limit: 100 })), ids(ab).reverse());
      assert.deepEqual(ids(await store.history(T, alice!, carol!, { limit: 100 })), ids(ac).reverse());
      assert.deepEqual(ids(await store.history(T, alice!, alice!, { limit: 100 })), ids(self));
      assert.deepEqual(await store.history(T, alice!, dave!, { limit: 100 }), []);
      // Dave asks about the Carol↔Dave conversation using a cursor from Alice↔Bob: nothing leaks.
      assert.deepEqual(await store.history(T, dave!, carol!, { limit: 100, before: ab[1]!.id }), []);
      assert.deepEqual(await store.history(T, alice!, bob!, { limit: 100, before: cd[0]!.id }), []);
      assert.deepEqual(await store.history(T, carol!, bob!, { limit: 100, before: ab[1]!.id }), []);
    });

    test('tenants are isolated: reads, acks, dedupe and inbox bounds', async () => {
      const [alice, bob] = users(2);
      const inA = msg(alice!, bob!, { tenantId: 'tenant-a', clientMsgId: 'same' });
      const inB = msg(alice!, bob!, { tenantId: 'tenant-b', clientMsgId: 'same' });
      const limits = { maxInboxSize: 1 };
      const outcomes = await store.insertMessages([inA, inB], limits);
      assert.deepEqual(outcomes.map((o) => o.status), ['stored', 'stored'], 'same ids in another tenant are other users');

      assert.deepEqual(ids(await store.pendingFor('tenant-a', bob!, 10)), [inA.id]);
      assert.deepEqual(ids(await store.pendingFor('tenant-b', bob!, 10)), [inB.id]);
      assert.deepEqual(await store.pendingFor(T, bob!, 10), []);
      assert.deepEqual(ids(await store.history('tenant-a', bob!, alice!, { limit: 10 })), [inA.id]);
      assert.deepEqual(await store.history('tenant-b', bob!, alice!, { limit: 10, before: inA.id }), []);
      assert.equal(await store.ack('tenant-b', bob!, [inA.id]), 0);
      assert.deepEqual(ids(await store.pendingFor('tenant-a', bob!, 10)), [inA.id]);

      const retryB = await store.insertMessages([msg(alice!, bob!, { tenantId: 'tenant-b', clientMsgId: 'same' })], limits);
      assert.equal(stored(retryB[0]).id, inB.id);
      assert.equal((await store.insertMessages([msg(alice!, bob!, { tenantId: 'tenant-a' })], limits))[0]!.status, 'inbox_full');
      assert.equal((await store.insertMessages([msg(alice!, bob!, { tenantId: 'tenant-c' })], limits))[0]!.status, 'stored');
    });

    test('two writers at once (two nodes): a retried message is stored once and the inbox bound holds', async () => {
      const other = await h.open();
      try {
        const [alice, bob] = users(2);
        const limits = { maxInboxSize: 4 };
        const a = [msg(alice!, bob!, { clientMsgId: 'race' }), msg(alice!, bob!), msg(alice!, bob!), msg(alice!, bob!)];
        const b = [msg(alice!, bob!, { clientMsgId: 'race' }), msg(alice!, bob!), msg(alice!, bob!), msg(alice!, bob!)];
        const [oa, ob] = await Promise.all([store.insertMessages(a, limits), other.insertMessages(b, limits)]);
        const statuses = [...oa, ...ob].map((o) => o.status).sort();
        assert.deepEqual(statuses, ['duplicate', 'inbox_full', 'inbox_full', 'inbox_full', 'stored', 'stored', 'stored', 'stored']);
        const race = [oa[0]!, ob[0]!].sort((x, y) => x.status.localeCompare(y.status));
        assert.deepEqual(race.map((o) => o.status), ['duplicate', 'stored']);
        assert.equal(stored(race[0]).id, stored(race[1]).id);

        // The counter matches the table: ack everything, then exactly maxInboxSize fit again.
        const pending = await store.pendingFor(T, bob!, 10);
        assert.equal(pending.length, 4);
        assert.equal(await other.ack(T, bob!, ids(pending)), 4);
        const refill = await store.insertMessages(Array.from({ length: 5 }, () => msg(alice!, bob!)), limits);
        assert.deepEqual(refill.map((o) => o.status), ['stored', 'stored', 'stored', 'stored', 'inbox_full']);
      } finally {
        await other.close();
      }
    });

    test('two writers at once: one clientMsgId sent to two recipients is stored once', async () => {
      const other = await h.open();
      try {
        const [alice, bob, carol] = users(3);
        const x = msg(alice!, bob!, { clientMsgId: 'race-2' });
        const y = msg(alice!, carol!, { clientMsgId: 'race-2' });
        const [[ox], [oy]] = await Promise.all([store.insertMessages([x], LIMITS), other.insertMessages([y], LIMITS)]);
        assert.deepEqual([ox!.status, oy!.status].sort(), ['duplicate', 'stored']);
        assert.equal(stored(ox).id, stored(oy).id);
        const total = (await store.pendingFor(T, bob!, 10)).length + (await store.pendingFor(T, carol!, 10)).length;
        assert.equal(total, 1);
      } finally {
        await other.close();
      }
    });

    test('round-trips replyTo, attachments, mentions, hashtags, links and clientMsgId', async () => {
      const [alice, bob] = users(2);
      const full = msg(alice!, bob!, {
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
      const bare = msg(alice!, bob!);
      const empty = msg(alice!, bob!, { attachments: [] });
      await store.insertMessages([full, bare, empty], LIMITS);

      const [gotFull, gotBare, gotEmpty] = await store.pendingFor(T, bob!, 10);
      assert.deepEqual(gotFull, full);
      assert.deepEqual(gotBare, bare);
      assert.deepEqual(gotEmpty, empty);
      for (const key of ['replyTo', 'attachments', 'clientMsgId']) {
        assert.equal(Object.hasOwn(gotBare!, key), false, `${key} must be absent, not undefined`);
      }
      assert.equal(typeof gotFull!.timestamp, 'number');
      assert.deepEqual((await store.history(T, alice!, bob!, { limit: 1, before: empty.id }))[0], bare);
    });

    test('a value PostgreSQL text cannot hold (U+0000) does not fail the rest of the batch', async () => {
      const [alice, bob] = users(2);
      const odd = msg(alice!, bob!, { content: 'nul\u0000byte', clientMsgId: 'nul\u0000id' });
      const normal = msg(alice!, bob!);
      const outcomes = await store.insertMessages([odd, normal], LIMITS);
      assert.deepEqual(outcomes.map((o) => o.status), ['stored', 'stored']);
      assert.deepEqual(ids(await store.pendingFor(T, bob!, 10)), [odd.id, normal.id]);
      const retry = await store.insertMessages([msg(alice!, bob!, { clientMsgId: 'nul\u0000id' })], LIMITS);
      assert.equal(stored(retry[0]).id, odd.id);
    });

    test('pruneOlderThan deletes old messages, acked or not, and frees inbox room', async () => {
      const [alice, bob] = users(2);
      const limits = { maxInboxSize: 2 };
      const ancient = [msg(alice!, bob!, { timestamp: 1_000 }), msg(alice!, bob!, { timestamp: 2_000 })];
      const oldAcked = msg(bob!, alice!, { timestamp: 1_500 });
      const recent = msg(alice!, bob!, { timestamp: 3_000 });
      await store.insertMessages([...ancient, oldAcked], limits);
      await store.ack(T, alice!, [oldAcked.id]);
      assert.equal((await store.insertMessages([recent], limits))[0]!.status, 'inbox_full');

      assert.equal(await store.pruneOlderThan(2_500), 3);
      assert.deepEqual(await store.pendingFor(T, bob!, 10), []);
      assert.deepEqual(await store.history(T, alice!, bob!, { limit: 10 }), []);
      assert.equal((await store.insertMessages([recent], limits))[0]!.status, 'stored');
      assert.equal(await store.pruneOlderThan(2_500), 0);
      assert.deepEqual(ids(await store.pendingFor(T, bob!, 10)), [recent.id]);
      assert.equal(await store.pruneOlderThan(3_001), 1);
    });

    test('encryption at rest: the table holds no plaintext; reads decrypt', async () => {
      const k1 = randomBytes(32);
      const encrypted = await h.open({ cipher: new ContentCipher({ activeKeyId: 'k1', keys: { k1 } }) });
      try {
        const [alice, bob] = users(2);
        const secret = msg(alice!, bob!, {
          content: 'the-launch-code-is-4217 https://secret.example.org/plan #operationfalcon',
          attachments: [{ type: 'file', url: 'https://files.example.org/plan.pdf', name: 'falcon-plan.pdf' }],
          mentions: [bob!],
          hashtags: ['operationfalcon'],
          links: [{ url: 'https://secret.example.org/plan', safe: true }],
        });
        await encrypted.insertMessages([secret], LIMITS);
        const row = (await h.rawMessages()).find((r) => r.id === secret.id);
        assert.ok(row !== undefined);
        assert.equal(row.key_id, 'k1');
        const raw = JSON.stringify(row);
        for (const plaintext of ['launch-code', 'secret.example.org', 'operationfalcon', 'falcon-plan', 'files.example.org', bob!]) {
          const inUserFields = JSON.stringify([row.content, row.attachments, row.mentions, row.hashtags, row.links]);
          assert.ok(!inUserFields.includes(plaintext), `raw row must not contain "${plaintext}"`);
        }
        assert.ok(!raw.includes('launch-code'));
        assert.deepEqual(await encrypted.pendingFor(T, bob!, 10), [secret]);
        assert.deepEqual(await encrypted.history(T, alice!, bob!, { limit: 10 }), [secret]);
      } finally {
        await encrypted.close();
      }
    });

    test('encryption: rotated-out keys stay readable; an unknown key id is a clear error', async () => {
      const k1 = randomBytes(32);
      const k2 = randomBytes(32);
      const [alice, bob] = users(2);
      const before = msg(alice!, bob!, { content: 'sealed with k1', clientMsgId: 'rot-1' });
      const afterRotation = msg(alice!, bob!, { content: 'sealed with k2' });
      const plain = msg(alice!, bob!, { content: 'written without a cipher' });

      const v1 = await h.open({ cipher: new ContentCipher({ activeKeyId: 'k1', keys: { k1 } }) });
      await v1.insertMessages([before], LIMITS);
      await v1.close();
      await store.insertMessages([plain], LIMITS);

      const v2 = await h.open({ cipher: new ContentCipher({ activeKeyId: 'k2', keys: { k1, k2 } }) });
      try {
        await v2.insertMessages([afterRotation], LIMITS);
        assert.deepEqual(await v2.pendingFor(T, bob!, 10), [before, plain, afterRotation]);
        const dup = await v2.insertMessages([msg(alice!, bob!, { clientMsgId: 'rot-1' })], LIMITS);
        assert.deepEqual(stored(dup[0]), before, 'a duplicate found under an old key is decrypted too');
      } finally {
        await v2.close();
      }
      const keyIds = new Map((await h.rawMessages()).map((r) => [r.id, r.key_id]));
      assert.equal(keyIds.get(before.id), 'k1');
      assert.equal(keyIds.get(afterRotation.id), 'k2');
      assert.equal(keyIds.get(plain.id), null);

      const v3 = await h.open({ cipher: new ContentCipher({ activeKeyId: 'k2', keys: { k2 } }) });
      try {
        await assert.rejects(
          v3.pendingFor(T, bob!, 10),
          (err: unknown) => err instanceof UnknownKeyError && err.keyId === 'k1' && /keyring/.test(err.message),
        );
      } finally {
        await v3.close();
      }
      // A store without any cipher refuses sealed rows instead of returning ciphertext.
      await assert.rejects(store.pendingFor(T, bob!, 10), UnknownKeyError);
      await assert.rejects(store.history(T, alice!, bob!, { limit: 1 }), UnknownKeyError);
    });

    test('group committer: submits of one turn are one insertMessages call', async () => {
      const [alice, bob] = users(2);
      const counted = spy(store);
      const committer = new GroupCommitter(counted.store, LIMITS);
      const messages = Array.from({ length: 25 }, () => msg(alice!, bob!));
      const outcomes = await Promise.all(messages.map((m) => committer.submit(m)));
      assert.equal(counted.calls.length, 1);
      assert.deepEqual(outcomes, messages.map((message) => ({ status: 'stored', message })));
      assert.deepEqual(ids(await store.pendingFor(T, bob!, 100)), ids(messages));

      // Same (senderId, clientMsgId) twice in one turn: one row, the second gets the first's message.
      const a = msg(alice!, bob!, { clientMsgId: 'gc-1' });
      const b = msg(alice!, bob!, { clientMsgId: 'gc-1', content: 'again' });
      const [oa, ob] = await Promise.all([committer.submit(a), committer.submit(b)]);
      assert.equal(counted.calls.length, 2);
      assert.equal(counted.calls[1]!.length, 1);
      assert.equal(oa!.status, 'stored');
      assert.equal(ob!.status, 'duplicate');
      assert.equal(stored(ob).id, a.id);
      await committer.close();
    });

    test('group committer: a failed transaction rejects every submit of its batch', async () => {
      const [alice, bob] = users(2);
      const boom = new Error('disk on fire');
      const failing = spy(store, boom);
      const committer = new GroupCommitter(failing.store, LIMITS);
      const results = await Promise.allSettled(Array.from({ length: 5 }, () => committer.submit(msg(alice!, bob!))));
      assert.equal(failing.calls.length, 1);
      assert.deepEqual(results.map((r) => r.status), Array(5).fill('rejected'));
      for (const r of results) assert.equal((r as PromiseRejectedResult).reason, boom);
      assert.deepEqual(await store.pendingFor(T, bob!, 10), []);
      await committer.close();
    });

    test('data survives close and reopen', async () => {
      const [alice, bob] = users(2);
      const first = await h.open();
      const m = msg(alice!, bob!, { clientMsgId: 'reopen' });
      await first.insertMessages([m], LIMITS);
      await first.close();
      await assert.rejects(first.ping());
      await assert.rejects(first.pendingFor(T, bob!, 10));

      const second = await h.open();
      try {
        assert.deepEqual(await second.pendingFor(T, bob!, 10), [m]);
        assert.equal((await second.insertMessages([msg(alice!, bob!, { clientMsgId: 'reopen' })], LIMITS))[0]!.status, 'duplicate');
      } finally {
        await second.close();
      }
    });
  });
}

storeContract('SQLite', sqliteHarness);
storeContract('PostgreSQL', postgresHarness);

describe('PostgresStore: races between nodes', () => {
  const schema = `rampart_race_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
  let store: PostgresStore;

  before(async () => {
    await admin.connect();
    store = new PostgresStore(PG_URL, { schema, pool: { max: 2, application_name: schema } });
    await store.init();
  });

  after(async () => {
    await store?.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await admin.end();
  });

  test('two nodes initialising a fresh schema at the same time both succeed, migrating once', async () => {
    const fresh = `rampart_init_${randomBytes(6).toString('hex')}`;
    const nodes = Array.from({ length: 3 }, () => new PostgresStore(PG_URL, { schema: fresh, pool: { max: 1 } }));
    try {
      await Promise.all(nodes.map((node) => node.init()));
      const { rows } = await admin.query(`SELECT version FROM "${fresh}".schema_version`);
      assert.deepEqual(rows, [{ version: 1 }]);
      await nodes[0]!.ping();
    } finally {
      await Promise.all(nodes.map((node) => node.close()));
      await admin.query(`DROP SCHEMA IF EXISTS "${fresh}" CASCADE`);
    }
  });

  test('the row another node committed first is returned, also for in-batch repeats of the lost row', async () => {
    const [alice, bob] = users(2);
    const winnerId = randomUUID();
    // Another node's transaction holds the dedupe key, uncommitted: invisible to the lookup, so
    // our INSERT waits on the unique index and then skips the row (ON CONFLICT DO NOTHING).
    await admin.query('BEGIN');
    await admin.query(
      `INSERT INTO "${schema}".messages (id, tenant_id, sender_id, recipient_id, conv, content, mentions, hashtags, links, timestamp, client_msg_id)
       VALUES ($1, $2, $3, $4, 'x', 'from the other node', '[]', '[]', '[]', $5, 'k')`,
      [winnerId, T, alice, bob, BASE_TS],
    );
    const first = msg(alice!, bob!, { clientMsgId: 'k' });
    const repeat = msg(alice!, bob!, { clientMsgId: 'k' });
    const other = msg(alice!, bob!);
    const inserting = store.insertMessages([first, repeat, other], LIMITS);
    // Wait (by polling the server, not the clock) until our INSERT is blocked on that key.
    for (let i = 0; ; i++) {
      const { rows } = await admin.query(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
        [schema],
      );
      if (rows.length > 0) break;
      assert.ok(i < 10_000, 'the INSERT never blocked on the dedupe key');
    }
    await admin.query('COMMIT');
    const outcomes = await inserting;
    assert.deepEqual(outcomes.map((o) => o.status), ['duplicate', 'duplicate', 'stored']);
    assert.equal(stored(outcomes[0]).id, winnerId);
    assert.equal(stored(outcomes[1]).id, winnerId);
    assert.equal(stored(outcomes[0]).content, 'from the other node');
    assert.deepEqual(ids(await store.pendingFor(T, bob!, 10)), [winnerId, other.id]);
  });
});

describe('GroupCommitter pipelining', () => {
  /** A store whose transactions finish only when the test says so. */
  function manualStore() {
    const calls: { batch: StoredMessage[]; finish: () => void; fail: (err: Error) => void }[] = [];
    const store: Pick<Store, 'insertMessages'> = {
      insertMessages(batch) {
        return new Promise<InsertOutcome[]>((resolve, reject) => {
          calls.push({
            batch: [...batch],
            finish: () => resolve(batch.map((message) => ({ status: 'stored', message }))),
            fail: reject,
          });
        });
      },
    };
    return { store, calls };
  }
  const [alice, bob] = users(2);

  test('one transaction in flight; what arrives meanwhile goes next as one batch', async () => {
    const { store, calls } = manualStore();
    const committer = new GroupCommitter(store, LIMITS);
    const first = [committer.submit(msg(alice!, bob!)), committer.submit(msg(alice!, bob!))];
    await nextTurn();
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.batch.length, 2);

    const second = [committer.submit(msg(alice!, bob!))];
    await nextTurn();
    second.push(committer.submit(msg(alice!, bob!)));
    await nextTurn();
    second.push(committer.submit(msg(alice!, bob!)));
    await nextTurn();
    assert.equal(calls.length, 1, 'waits while a transaction is in flight');
    assert.equal(committer.queued, 3);

    calls[0]!.finish();
    await Promise.all(first);
    await nextTurn();
    assert.equal(calls.length, 2);
    assert.equal(calls[1]!.batch.length, 3, 'everything that waited goes as one batch');
    calls[1]!.finish();
    assert.deepEqual((await Promise.all(second)).map((o) => o.status), ['stored', 'stored', 'stored']);
    await committer.close();
  });

  test('a failure rejects only its own batch; the next batch still commits', async () => {
    const { store, calls } = manualStore();
    const committer = new GroupCommitter(store, LIMITS);
    const doomed = committer.submit(msg(alice!, bob!));
    await nextTurn();
    const fine = committer.submit(msg(alice!, bob!));
    calls[0]!.fail(new Error('connection reset'));
    await assert.rejects(doomed, /connection reset/);
    await nextTurn();
    calls[1]!.finish();
    assert.equal((await fine).status, 'stored');
    await committer.close();
  });

  test('splits a long queue at maxBatchSize', async () => {
    const { store, calls } = manualStore();
    const committer = new GroupCommitter(store, { ...LIMITS, maxBatchSize: 2 });
    const all = Array.from({ length: 5 }, () => committer.submit(msg(alice!, bob!)));
    await nextTurn();
    for (let i = 0; i < 3; i++) {
      assert.equal(calls.length, i + 1);
      calls[i]!.finish();
      await Promise.all(all.slice(2 * i, 2 * i + 2)); // this batch settled, so the next is scheduled
      await nextTurn();
    }
    assert.deepEqual(calls.map((c) => c.batch.length), [2, 2, 1]);
    assert.equal((await Promise.all(all)).length, 5);
    await committer.close();
  });

  test('close() commits what is pending and refuses new submits', async () => {
    const { store, calls } = manualStore();
    const committer = new GroupCommitter(store, LIMITS);
    const pending = committer.submit(msg(alice!, bob!));
    const closing = committer.close();
    await assert.rejects(committer.submit(msg(alice!, bob!)), /closed/);
    assert.equal(calls.length, 1, 'close flushes without waiting for the next turn');
    calls[0]!.finish();
    await closing;
    assert.equal((await pending).status, 'stored');
  });

  test('a store answering with the wrong number of outcomes rejects the batch', async () => {
    const committer = new GroupCommitter({ insertMessages: async () => [] }, LIMITS);
    await assert.rejects(committer.submit(msg(alice!, bob!)), /outcomes/);
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
      const m = msg(alice!, bob!);
      await store.insertMessages([m], LIMITS);
      assert.deepEqual(await store.pendingFor(T, bob!, 1), [m]);
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
      assert.deepEqual(await store.pendingFor(T, randomUUID(), 1), []);
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
