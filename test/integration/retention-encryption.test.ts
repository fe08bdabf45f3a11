/**
 * Retention and encryption at rest on both stores (Store level): pruning removes every copy of old
 * content, encryption seals every user-written field in the raw tables, key rotation keeps old rows
 * readable, a missing key fails clearly and loses nothing; an edit committed while a prune pass
 * runs goes with its pruned message (SQLite prunes in slices).
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { ContentCipher, UnknownKeyError } from '../../src/store/content-cipher.js';
import { messageId } from '../../src/chat/message-id.js';
import type { NewMessage, Store, StoredMessage } from '../../src/store/store.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database } from '../../src/store/sqlite-driver.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { storeBackends, type StoreBackend } from '../helpers/store-backends.js';
import { prng, printedSeed } from '../helpers/seed.js';
import { DeviceStream } from '../../src/sync/device-stream.js';
import type { PacedOutlet } from '../../src/sync/paced-send.js';

const T = 'default';
const OPTS = { maxInboxSize: 1000 };
let clock = Date.now();
const now = (): number => ++clock;
const LIMITS = { maxGroupMembers: 10, maxGroupsPerUser: 10 };

function hexId(v: unknown): string {
  if (typeof v === 'string') return v.replaceAll('-', '').toLowerCase();
  return Buffer.from(v as Uint8Array).toString('hex');
}

/** key_id of every event (by id) and of every conversation (by uuid), ids as hex. */
async function keysOf(b: StoreBackend): Promise<{ events: Map<string, string | null>; convs: Map<string, string | null> }> {
  const events = new Map<string, string | null>();
  for (const r of await b.rows<{ id: unknown; key_id: string | null }>((t) => `SELECT id, key_id FROM ${t('events')}`)) events.set(hexId(r.id), r.key_id);
  const convs = new Map<string, string | null>();
  for (const r of await b.rows<{ uuid: unknown; key_id: string | null }>((t) => `SELECT uuid, key_id FROM ${t('conversations')}`)) convs.set(hexId(r.uuid), r.key_id);
  return { events, convs };
}

function message(from: string, to: NewMessage['to'], content = `m ${randomUUID()}`, ts = now()): NewMessage {
  return { id: messageId(ts), tenantId: T, senderId: from, to, timestamp: ts, content, mentions: [], hashtags: [], links: [] };
}

async function send(store: Store, m: NewMessage): Promise<StoredMessage> {
  const [out] = await store.appendMessages([m], OPTS);
  assert.equal(out?.status, 'stored');
  return (out as { message: StoredMessage }).message;
}

const K1 = randomBytes(32);
const K2 = randomBytes(32);

const backends = storeBackends('retention-encryption');
after(async () => {
  for (const b of backends) await b.teardown();
});

for (const backend of backends) {
  describe(`retention and encryption at rest (${backend.name})`, () => {
    test('key rotation: old rows stay readable, new rows, edits of old messages and renames are sealed with the new key', async () => {
      const [a, b] = [randomUUID(), randomUUID()];
      const gid = randomUUID();
      let old: StoredMessage;
      {
        const store = await backend.open(new ContentCipher({ activeKeyId: 'k1', keys: { k1: K1 } }));
        try {
          const ts0 = now();
          assert.equal((await store.createGroup({ tenantId: T, actorId: a, eventId: messageId(ts0), timestamp: ts0, conversationId: gid, name: 'ROTNAME1', memberIds: [b] }, LIMITS)).status, 'ok');
          const m = message(a, { conversationId: gid }, 'ROTOLD');
          m.attachments = [{ type: 'file', url: 'https://x.example/ROTATT', name: 'ROTATTNAME' }];
          old = await send(store, m);
        } finally {
          await store.close();
        }
      }
      const store = await backend.open(new ContentCipher({ activeKeyId: 'k2', keys: { k1: K1, k2: K2 } }));
      try {
        const h = await store.history(T, b, { conversationId: gid }, { limit: 10, groupHistory: 'since_join' });
        assert.ok(h!.events.some((e) => e.kind === 'message' && e.content === 'ROTOLD'), 'old row readable after rotation');
        const fresh = await send(store, message(b, { conversationId: gid }, 'ROTNEW'));
        const ts1 = now();
        const editId = messageId(ts1);
        const edit = await store.editMessage(
          { tenantId: T, actorId: a, eventId: editId, messageId: old!.id, timestamp: ts1, body: { content: 'ROTEDITED', mentions: [], hashtags: [], links: [] } },
          { ...OPTS, editWindowMs: 600_000 },
        );
        assert.equal(edit.status, 'ok');
        const ts2 = now();
        const renameId = messageId(ts2);
        assert.equal((await store.renameGroup({ tenantId: T, actorId: a, eventId: renameId, timestamp: ts2, conversationId: gid, name: 'ROTNAME2' })).status, 'ok');
        const keys = await keysOf(backend);
        assert.equal(keys.events.get(hexId(fresh.id)), 'k2', 'new message sealed with k2');
        assert.equal(keys.events.get(hexId(old!.id)), 'k2', 'edited old message resealed with k2');
        assert.equal(keys.events.get(hexId(editId)), 'k2', 'edit event sealed with k2');
        assert.equal(keys.events.get(hexId(renameId)), 'k2', 'rename event sealed with k2');
        assert.equal(keys.convs.get(hexId(gid)), 'k2', 'renamed group name sealed with k2');
        const list = await store.listConversations(T, a, { limit: 10 });
        assert.equal(list.conversations[0]!.name, 'ROTNAME2');
        const h2 = await store.history(T, b, { conversationId: gid }, { limit: 10, groupHistory: 'since_join' });
        const oldNow = h2!.events.find((e) => e.id === old!.id) as StoredMessage;
        assert.equal(oldNow.content, 'ROTEDITED');
        assert.deepEqual(oldNow.attachments, [{ type: 'file', url: 'https://x.example/ROTATT', name: 'ROTATTNAME' }]);
        const dump = await backend.dump();
        assert.deepEqual(['ROTNAME1', 'ROTNAME2', 'ROTOLD', 'ROTNEW', 'ROTEDITED', 'ROTATT'].filter((w) => dump.includes(w)), []);
      } finally {
        await store.close();
      }
      // A keyring without k1: the old rows fail clearly (UnknownKeyError), and nothing is lost.
      const missing = await backend.open(new ContentCipher({ activeKeyId: 'k2', keys: { k2: K2 } }));
      try {
        const ts3 = now();
        // a message sealed under k1 only: the created event still is
        await assert.rejects(() => missing.history(T, b, { conversationId: gid }, { limit: 10, groupHistory: 'since_join' }), (err: unknown) => err instanceof UnknownKeyError);
        void ts3;
      } finally {
        await missing.close();
      }
      const back = await backend.open(new ContentCipher({ activeKeyId: 'k2', keys: { k1: K1, k2: K2 } }));
      try {
        const h = await back.history(T, b, { conversationId: gid }, { limit: 10, groupHistory: 'since_join' });
        assert.ok(h!.events.length >= 4);
      } finally {
        await back.close();
      }
    });

    test('retention: a group whose events were all pruned keeps no old content and lists/pages sanely', async (tc) => {
      const rnd = prng(printedSeed(tc));
      const store = await backend.open();
      try {
        const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
        const gid = randomUUID();
        const t0 = Date.now() - 3_600_000 - rnd.int(1000);
        let t = t0;
        const ev = (): { eventId: string; timestamp: number } => {
          t += 1;
          return { eventId: messageId(t), timestamp: t };
        };
        assert.equal((await store.createGroup({ tenantId: T, actorId: a, ...ev(), conversationId: gid, name: 'PRNAMEOLD', memberIds: [b] }, LIMITS)).status, 'ok');
        assert.equal((await store.renameGroup({ tenantId: T, actorId: a, ...ev(), conversationId: gid, name: 'PRNAMEMID' })).status, 'ok');
        assert.equal((await store.addMembers({ tenantId: T, actorId: a, ...ev(), conversationId: gid, userIds: [c] }, LIMITS)).status, 'ok');
        const m1 = await send(store, message(a, { conversationId: gid }, 'PRMSG1', ++t));
        const m2 = await send(store, message(b, { conversationId: gid }, 'PRMSG2', ++t));
        const e1 = ev();
        assert.equal((await store.editMessage({ tenantId: T, actorId: a, ...e1, messageId: m1.id, body: { content: 'PREDIT1', mentions: [], hashtags: [], links: [] } }, { ...OPTS, editWindowMs: 600_000 })).status, 'ok');
        const d = ev();
        assert.equal((await store.deleteMessage({ tenantId: T, actorId: b, ...d, messageId: m2.id }, OPTS)).status, 'ok');
        const before = await store.syncState(T, c);
        assert.ok(before.lastPos >= 2);
        const n = await store.pruneOlderThan(t + 1);
        assert.ok(n >= 7, `pruned ${n}`);
        const dump = await backend.dump();
        // The current name is state, not an event: the old name and every body are gone.
        assert.deepEqual(['PRNAMEOLD', 'PRMSG1', 'PRMSG2', 'PREDIT1'].filter((w) => dump.includes(w)), []);
        const list = await store.listConversations(T, c, { limit: 10 });
        const g = list.conversations.find((x) => x.conversationId === gid)!;
        assert.equal(g.name, 'PRNAMEMID');
        assert.equal(g.lastMessage, undefined);
        assert.equal(g.unreadCount, 0);
        const h = await store.history(T, c, { conversationId: gid }, { limit: 10, groupHistory: 'all' });
        assert.deepEqual(h!.events, []);
        const page = await store.timeline(T, c, 0, 100);
        assert.deepEqual(page.entries, []);
        assert.equal(page.firstPos, page.lastPos + 1);
        // A new message continues after the pruned seqs.
        const m3 = await send(store, message(c, { conversationId: gid }, 'after', now()));
        assert.ok(m3.seq > 7);
        const list2 = await store.listConversations(T, a, { limit: 10 });
        const g2 = list2.conversations.find((x) => x.conversationId === gid)!;
        assert.equal(g2.lastMessage?.id, m3.id);
        assert.equal(g2.unreadCount, 1);
      } finally {
        await store.close();
      }
    });

    test('retention: a device whose resume point was pruned gets timeline_pruned and continues', async (tc) => {
      const rnd = prng(printedSeed(tc));
      const store = await backend.open();
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const t = Date.now() - 7_200_000 - rnd.int(1000);
        await send(store, message(a, { peerId: b }, 'x1', t)); // b pos1
        await send(store, message(a, { peerId: b }, 'x2', t + 1)); // pos2
        await store.acknowledge(T, b, 'phone', 1);
        await send(store, message(a, { peerId: b }, 'x3', t + 2)); // pos3
        await send(store, message(a, { peerId: b }, 'x4', now())); // pos4 (kept)
        assert.equal(await store.pruneOlderThan(t + 10), 3);
        const state = await store.syncState(T, b, 'phone');
        const sent: string[] = [];
        const outlet: PacedOutlet = { isOpen: true, send: (f) => void sent.push(f), bufferedBytes: () => 0, waitForDrain: () => Promise.resolve() };
        const stream = new DeviceStream(outlet, (after, limit) => store.timeline(T, b, after, limit), {
          pageSize: 2,
          drainBelow: 1 << 20,
          maxHeldBytes: 1 << 20,
          readAttempts: 1,
          retryMs: 10,
          maxRetryMs: 10,
          onOverflow: () => {},
          onReadFailed: (err) => assert.fail(String(err)),
          onGiveUp: () => {},
        });
        try {
          await stream.start(state.deviceAckedPos ?? state.userAckedPos, state.lastPos);
          const summary = sent.map((f) => {
            const x = JSON.parse(f) as { type: string; pos?: number; after?: number; firstPos?: number };
            return x.type === 'timeline_pruned' ? `pruned(${x.after}->${x.firstPos})` : `${x.type}@${x.pos}`;
          });
          assert.deepEqual(summary, ['pruned(1->4)', 'chat_message@4']);
        } finally {
          stream.close();
        }
      } finally {
        await store.close();
      }
    });
  });
}

describe('retention (SQLite)', () => {
  test('an edit committed while a prune pass runs does not outlive its pruned message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-review-race-'));
    const file = join(dir, 'db.sqlite');
    const store = new SqliteStore(file, { pruneSlice: { timeline: 1, events: 1, pass: 10 } });
    await store.init();
    try {
      const [a, b] = [randomUUID(), randomUUID()];
      const t0 = Date.now() - 50_000;
      const m = await send(store, message(a, { peerId: b }, 'RACEORIG', t0));
      // Retention shorter than the edit window (chat.editWindowMs has no upper bound).
      const p = store.pruneOlderThan(t0 + 10);
      const te = Date.now();
      const edit = await store.editMessage(
        { tenantId: T, actorId: a, eventId: messageId(te), messageId: m.id, timestamp: te, body: { content: 'RACEEDITED', mentions: [], hashtags: [], links: [] } },
        { ...OPTS, editWindowMs: 3_600_000 },
      );
      assert.equal(edit.status, 'ok');
      await p;
      const db = new Database(file, { readonly: true, fileMustExist: true });
      try {
        const rows = db.prepare('SELECT kind, content FROM events').all() as { kind: number; content: string }[];
        assert.deepEqual(rows, [], 'the pruned message left its edit (with the edited text) behind');
      } finally {
        db.close();
      }
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
