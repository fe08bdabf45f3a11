/**
 * The message lifecycle on both stores, at the Store level: history with both cursors, sealing of
 * every user-written field, lastActivityAt never moving back, deletes reaching full backlogs, and
 * SQLite and PostgreSQL answering alike (list order, retention), retention taking a message's edits
 * with it and a replay reporting a pruned tail of the timeline.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { ContentCipher } from '../../src/store/content-cipher.js';
import { messageId } from '../../src/chat/message-id.js';
import type { NewMessage, Store, StoredMessage } from '../../src/store/store.js';
import { storeBackends } from '../helpers/store-backends.js';
import { DeviceStream } from '../../src/sync/device-stream.js';
import type { PacedOutlet } from '../../src/sync/paced-send.js';

const T = 'default';
const OPTS = { maxInboxSize: 1000 };
let clock = Date.now();
const now = (): number => ++clock;
const LIMITS = { maxGroupMembers: 10, maxGroupsPerUser: 10 };

function message(from: string, to: NewMessage['to'], content = `m ${randomUUID()}`, ts = now()): NewMessage {
  return { id: messageId(ts), tenantId: T, senderId: from, to, timestamp: ts, content, mentions: [], hashtags: [], links: [] };
}

async function send(store: Store, m: NewMessage): Promise<StoredMessage> {
  const [out] = await store.appendMessages([m], OPTS);
  assert.equal(out?.status, 'stored');
  return (out as { message: StoredMessage }).message;
}

const backends = storeBackends('lifecycle');
after(async () => {
  for (const b of backends) await b.teardown();
});

for (const backend of backends) {
  describe(`message lifecycle (${backend.name})`, () => {
    test('history with both `before` (id) and `beforeSeq` returns a full page of the seqs below both', async () => {
      const store = await backend.open();
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const sent: StoredMessage[] = [];
        for (let i = 0; i < 20; i++) sent.push(await send(store, message(a, { peerId: b }, `n${i + 1}`)));
        const cursor = sent[19]!; // seq 20
        const page = await store.history(T, a, { peerId: b }, { beforeId: cursor.id, beforeSeq: 6, limit: 3, groupHistory: 'since_join' });
        assert.deepEqual(
          page!.events.map((e) => e.seq),
          [5, 4, 3],
          'events with seq < 6 (and < the cursor), newest first, limit 3',
        );
      } finally {
        await store.close();
      }
    });

    test('every user-written field is sealed at rest (messages, attachments, entities, edits, group names)', async () => {
      const cipher = new ContentCipher({ activeKeyId: 'k1', keys: { k1: randomBytes(32) } });
      const store = await backend.open(cipher);
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const gid = randomUUID();
        const ts0 = now();
        assert.equal((await store.createGroup({ tenantId: T, actorId: a, eventId: messageId(ts0), timestamp: ts0, conversationId: gid, name: 'PLAINGROUPNAME', memberIds: [b] }, LIMITS)).status, 'ok');
        const ts1 = now();
        assert.equal((await store.renameGroup({ tenantId: T, actorId: a, eventId: messageId(ts1), timestamp: ts1, conversationId: gid, name: 'PLAINRENAMED' })).status, 'ok');
        const m = message(a, { conversationId: gid }, 'PLAINCONTENT');
        m.mentions = ['PLAINMENTION'];
        m.hashtags = ['PLAINHASHTAG'];
        m.links = [{ url: 'https://plainlink.example/PLAINLINK', safe: true }];
        m.attachments = [{ type: 'file', url: 'https://x.example/PLAINATTURL', name: 'PLAINATTNAME' }];
        const stored = await send(store, m);
        const ts2 = now();
        const edit = await store.editMessage(
          { tenantId: T, actorId: a, eventId: messageId(ts2), messageId: stored.id, timestamp: ts2, body: { content: 'PLAINEDITED', mentions: ['PLAINEDMENTION'], hashtags: [], links: [] } },
          { ...OPTS, editWindowMs: 60_000 },
        );
        assert.equal(edit.status, 'ok');
        await send(store, message(b, { peerId: a }, 'PLAINDIRECT'));
        const dump = await backend.dump();
        const leaked = ['PLAINGROUPNAME', 'PLAINRENAMED', 'PLAINCONTENT', 'PLAINMENTION', 'PLAINHASHTAG', 'PLAINLINK', 'PLAINATTURL', 'PLAINATTNAME', 'PLAINEDITED', 'PLAINEDMENTION', 'PLAINDIRECT'].filter((w) =>
          dump.includes(w),
        );
        assert.deepEqual(leaked, [], 'no plaintext in any row');
      } finally {
        await store.close();
      }
    });

    test('lastActivityAt never moves backwards (an edit then a message with an earlier timestamp)', async () => {
      const store = await backend.open();
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const m1 = await send(store, message(a, { peerId: b }, 'first'));
        // A message takes its timestamp when its frame is handled and waits for the group commit; an
        // edit handled meanwhile writes at once with a later timestamp.
        const tsMsg = now();
        const tsEdit = now();
        const edit = await store.editMessage(
          { tenantId: T, actorId: a, eventId: messageId(tsEdit), messageId: m1.id, timestamp: tsEdit, body: { content: 'edited', mentions: [], hashtags: [], links: [] } },
          { ...OPTS, editWindowMs: 60_000 },
        );
        assert.equal(edit.status, 'ok');
        const before = (await store.listConversations(T, a, { limit: 10 })).conversations[0]!.lastActivityAt;
        await send(store, message(b, { peerId: a }, 'late commit', tsMsg));
        const afterIt = (await store.listConversations(T, a, { limit: 10 })).conversations[0]!.lastActivityAt;
        assert.ok(afterIt >= before, `lastActivityAt went from ${before} back to ${afterIt}`);
      } finally {
        await store.close();
      }
    });

    test('a delete reaches every member\'s timeline, also one whose backlog is at chat.maxInboxSize (protocol §6a Delete)', async () => {
      const store = await backend.open();
      try {
        const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
        const gid = randomUUID();
        const ts0 = now();
        assert.equal((await store.createGroup({ tenantId: T, actorId: a, eventId: messageId(ts0), timestamp: ts0, conversationId: gid, name: 'g', memberIds: [b, c] }, LIMITS)).status, 'ok');
        const small = { maxInboxSize: 3 };
        const [out] = await store.appendMessages([message(a, { conversationId: gid }, 'SECRET to be deleted')], small);
        assert.equal(out!.status, 'stored');
        const m = (out as { message: StoredMessage }).message;
        // b's phone received and acknowledged it (it shows the content), then went offline.
        const bPos = (await store.syncState(T, b)).lastPos;
        await store.acknowledge(T, b, 'phone', bPos);
        for (let i = 0; i < 3; i++) await store.appendMessages([message(a, { conversationId: gid }, `chatter ${i}`)], small);
        const ts = now();
        const del = await store.deleteMessage({ tenantId: T, actorId: a, eventId: messageId(ts), messageId: m.id, timestamp: ts }, small);
        assert.equal(del.status, 'ok');
        const reached = del.status === 'ok' ? del.deliveries.map((d) => d.userId).sort() : [];
        // b's phone resumes after its acknowledged position: does it ever learn of the deletion?
        const replay = await store.timeline(T, b, bPos, 100);
        const kinds = replay.entries.map((e) => e.event.kind);
        assert.ok(kinds.includes('delete'), `b's replay after pos ${bPos} has no delete event: ${kinds}; delete reached ${reached.length} of 3 members`);
      } finally {
        await store.close();
      }
    });

    test('retention: a pruned message takes its younger edits with it (no edited text left in a timeline or a row)', async () => {
      const store = await backend.open();
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const t0 = Date.now() - 600_000; // older than every other test's messages
        const m = await send(store, message(a, { peerId: b }, 'original', t0));
        const tEdit = t0 + 1000;
        const edited = await store.editMessage(
          { tenantId: T, actorId: a, eventId: messageId(tEdit), messageId: m.id, timestamp: tEdit, body: { content: 'ZQXPRUNEDEDITZQX', mentions: [], hashtags: [], links: [] } },
          { ...OPTS, editWindowMs: 60_000 },
        );
        assert.equal(edited.status, 'ok');
        // The bound falls between the message and its edit: both go (2 events).
        assert.equal(await store.pruneOlderThan(t0 + 500), 2);
        for (const user of [a, b]) {
          const page = await store.timeline(T, user, 0, 100);
          assert.deepEqual(page.entries.map((e) => e.event.kind), [], `${user === a ? 'sender' : 'recipient'}'s timeline still holds entries of the pruned message`);
        }
        assert.equal((await backend.dump()).indexOf('ZQXPRUNEDEDITZQX'), -1, 'the edited text is still stored');
      } finally {
        await store.close();
      }
    });

    test('retention: a replay whose last entries were pruned says timeline_pruned up to lastPos (DeviceStream over the store)', async () => {
      const store = await backend.open();
      try {
        const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
        const t = Date.now() - 300_000;
        const m0 = await send(store, message(a, { peerId: b }, 'm0', t)); // b pos 1
        await send(store, message(c, { peerId: b }, 'm1', t + 200)); // b pos 2
        // An edit whose time was taken before m1's but committed after it: b pos 3, id older than pos 2's
        // (docs/protocol.md §6 Bounds: a younger event can hold a lower position).
        const e = await store.editMessage(
          { tenantId: T, actorId: a, eventId: messageId(t + 100), messageId: m0.id, timestamp: t + 100, body: { content: 'm0 edited', mentions: [], hashtags: [], links: [] } },
          { ...OPTS, editWindowMs: 60_000 },
        );
        assert.equal(e.status, 'ok');
        assert.equal(await store.pruneOlderThan(t + 150), 2, 'm0 and its edit pruned, m1 kept');
        const state = await store.syncState(T, b);
        assert.equal(state.lastPos, 3);
        const sent: string[] = [];
        const outlet: PacedOutlet = { isOpen: true, send: (f) => void sent.push(f), bufferedBytes: () => 0, waitForDrain: () => Promise.resolve() };
        const stream = new DeviceStream(outlet, (after, limit) => store.timeline(T, b, after, limit), {
          pageSize: 200,
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
          await stream.start(0, state.lastPos);
          const summary = sent.map((f) => {
            const x = JSON.parse(f) as { type: string; pos?: number; after?: number; firstPos?: number };
            return x.type === 'timeline_pruned' ? `pruned(${x.after}->${x.firstPos})` : `${x.type}@${x.pos}`;
          });
          assert.deepEqual({ frames: summary, streamAt: stream.lastPos }, { frames: ['pruned(0->2)', 'chat_message@2', 'pruned(2->4)'], streamAt: 3 });
        } finally {
          stream.close();
        }
      } finally {
        await store.close();
      }
    });

    test('retention: entries it deleted unacknowledged no longer count towards chat.maxInboxSize', async () => {
      const store = await backend.open();
      try {
        const [a, b, c, g] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
        const bound = { maxInboxSize: 2 };
        const t0 = Date.now() - 900_000; // older than every other test's messages
        for (let i = 0; i < 2; i++) {
          const [out] = await store.appendMessages([message(a, { peerId: b }, `old ${i}`, t0 + i)], bound);
          assert.equal(out?.status, 'stored');
        }
        assert.equal((await store.appendMessages([message(c, { peerId: b }, 'refused')], bound))[0]?.status, 'inbox_full');
        assert.equal(await store.pruneOlderThan(t0 + 100), 2);
        // b's backlog is gone with the entries: room for exactly two again, in one batch as across batches.
        const next = await store.appendMessages([message(c, { peerId: b }), message(c, { peerId: b }), message(c, { peerId: b })], bound);
        assert.deepEqual(next.map((o) => o.status), ['stored', 'stored', 'inbox_full']);
        assert.equal((await store.appendMessages([message(a, { peerId: b })], bound))[0]?.status, 'inbox_full');
        // A user who reaches the acknowledged-position bound only within one batch: counted from the floor too.
        const [d, e] = [randomUUID(), randomUUID()];
        const wider = { maxInboxSize: 3 };
        for (let i = 0; i < 2; i++) assert.equal((await store.appendMessages([message(e, { peerId: d }, `old ${i}`, t0 + 10 + i)], wider))[0]?.status, 'stored');
        assert.equal(await store.pruneOlderThan(t0 + 100), 2);
        const batch = await store.appendMessages([message(e, { peerId: d }), message(e, { peerId: d }), message(e, { peerId: d }), message(e, { peerId: d })], wider);
        assert.deepEqual(batch.map((o) => o.status), ['stored', 'stored', 'stored', 'inbox_full']);
        // A group message skips a member at the bound, and reaches one whose backlog retention emptied.
        const ts = now();
        assert.equal((await store.createGroup({ tenantId: T, actorId: a, eventId: messageId(ts), timestamp: ts, conversationId: g, name: 'g', memberIds: [b] }, LIMITS)).status, 'ok');
        const [gm] = await store.appendMessages([message(a, { conversationId: g }, 'to the group')], bound);
        assert.deepEqual((gm as { deliveries: { userId: string }[] }).deliveries.map((d) => d.userId), [a], 'b is at the bound');
      } finally {
        await store.close();
      }
    });

    // Files only the SQLite backend has (PostgreSQL keeps old row versions until vacuum: protocol.md §6a).
    if (backend.files !== undefined) test('SQLite: after a delete, neither the original nor the edited body is left in the database files', async () => {
      const store = await backend.open();
      try {
        const [a, b] = [randomUUID(), randomUUID()];
        const m = await send(store, message(a, { peerId: b }, 'ZQXORIGINALBODYZQX'));
        const ts = now();
        const e = await store.editMessage(
          { tenantId: T, actorId: a, eventId: messageId(ts), messageId: m.id, timestamp: ts, body: { content: 'ZQXEDITEDBODYZQX', mentions: [], hashtags: [], links: [] } },
          { ...OPTS, editWindowMs: 60_000 },
        );
        assert.equal(e.status, 'ok');
        for (let i = 0; i < 5; i++) await send(store, message(b, { peerId: a }, `filler ${i}`));
        const ts2 = now();
        assert.equal((await store.deleteMessage({ tenantId: T, actorId: a, eventId: messageId(ts2), messageId: m.id, timestamp: ts2 }, OPTS)).status, 'ok');
        const bytes = backend.files!();
        assert.equal(bytes.indexOf('ZQXORIGINALBODYZQX'), -1, 'original body left in the files');
        assert.equal(bytes.indexOf('ZQXEDITEDBODYZQX'), -1, 'edited body left in the files');
      } finally {
        await store.close();
      }
    });
  });
}

describe('list_conversations order is the same on both stores', () => {
  test('conversations with the same lastActivityAt are listed in the same order, and paged the same', async () => {
    const a = randomUUID();
    const others = [randomUUID(), randomUUID(), randomUUID()];
    const gids = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    const ts = now();
    const orders: string[][] = [];
    const paged: string[][] = [];
    for (const backend of backends) {
      const store = await backend.open();
      try {
        for (const gid of gids) {
          const out = await store.createGroup({ tenantId: T, actorId: a, eventId: messageId(ts), timestamp: ts, conversationId: gid, name: 'g', memberIds: others }, LIMITS);
          assert.equal(out.status, 'ok');
        }
        orders.push((await store.listConversations(T, a, { limit: 10 })).conversations.map((c) => c.conversationId));
        const p1 = await store.listConversations(T, a, { limit: 2 });
        const p2 = await store.listConversations(T, a, { limit: 2, before: p1.nextCursor! });
        paged.push([...p1.conversations, ...p2.conversations].map((c) => c.conversationId));
      } finally {
        await store.close();
      }
    }
    assert.deepEqual(paged[0], orders[0]);
    assert.deepEqual(paged[1], orders[1]);
    assert.deepEqual(orders[1], orders[0], `postgres order ${orders[1]} vs sqlite ${orders[0]}`);
  });
});

describe('retention gives the same results on both stores', () => {
  test('prune over messages, edits, deletes and membership events: same count, timelines, history and lists', async () => {
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    const gid = randomUUID();
    const base = 7_000_000;
    // A fixed script of ids and timestamps, run on each store.
    const script: { ts: number; id: string }[] = [];
    for (let i = 0; i < 40; i++) script.push({ ts: base + i * 1000, id: messageId(base + i * 1000) });
    const results: unknown[] = [];
    for (const backend of backends) {
      const store = await backend.open();
      try {
        let k = 0;
        const next = () => script[k++]!;
        const s0 = next();
        assert.equal((await store.createGroup({ tenantId: T, actorId: a, eventId: s0.id, timestamp: s0.ts, conversationId: gid, name: 'grp', memberIds: [b, c] }, LIMITS)).status, 'ok');
        const ids: string[] = [];
        for (let i = 0; i < 6; i++) {
          const s = next();
          const from = [a, b, c][i % 3]!;
          const to = i % 2 === 0 ? { conversationId: gid } : { peerId: [b, c, a][i % 3]! };
          const [out] = await store.appendMessages([{ id: s.id, tenantId: T, senderId: from, to, timestamp: s.ts, content: `msg ${i}`, mentions: [], hashtags: [], links: [] }], OPTS);
          assert.equal(out!.status, 'stored');
          ids.push(s.id);
        }
        const e1 = next();
        assert.equal((await store.editMessage({ tenantId: T, actorId: a, eventId: e1.id, messageId: ids[0]!, timestamp: e1.ts, body: { content: 'edited 0', mentions: [], hashtags: [], links: [] } }, { ...OPTS, editWindowMs: 1e9 })).status, 'ok');
        const d1 = next();
        assert.equal((await store.deleteMessage({ tenantId: T, actorId: a, eventId: d1.id, messageId: ids[2]!, timestamp: d1.ts }, OPTS)).status, 'ok');
        const r1 = next();
        assert.equal((await store.removeMembers({ tenantId: T, actorId: a, eventId: r1.id, timestamp: r1.ts, conversationId: gid, userIds: [c] })).status, 'ok');
        for (let i = 6; i < 10; i++) {
          const s = next();
          const [out] = await store.appendMessages([{ id: s.id, tenantId: T, senderId: a, to: { conversationId: gid }, timestamp: s.ts, content: `late ${i}`, mentions: [], hashtags: [], links: [] }], OPTS);
          assert.equal(out!.status, 'stored');
        }
        const e2 = next();
        assert.equal((await store.editMessage({ tenantId: T, actorId: a, eventId: e2.id, messageId: ids[3]!, timestamp: e2.ts, body: { content: 'edited 3', mentions: [], hashtags: [], links: [] } }, { ...OPTS, editWindowMs: 1e9 })).status, 'ok');
        await store.acknowledge(T, b, 'phone', 3);
        const pruned = await store.pruneOlderThan(base + 4500);
        const view: Record<string, unknown> = { pruned };
        const directs = new Map<string, string>();
        const norm = (x: unknown): unknown =>
          JSON.parse(JSON.stringify(x, (key, v) => {
            if (typeof v === 'string' && v !== gid && /^[0-9a-f]{8}-[0-9a-f]{4}-4/.test(v) && key === 'conversationId') {
              if (!directs.has(v)) directs.set(v, `direct${directs.size}`);
              return directs.get(v);
            }
            return v;
          }));
        for (const u of [a, b, c]) {
          view[`timeline ${u}`] = norm(await store.timeline(T, u, 0, 100));
          view[`list ${u}`] = norm(await store.listConversations(T, u, { limit: 100 }));
          view[`history ${u}`] = norm(await store.history(T, u, { conversationId: gid }, { limit: 100, groupHistory: 'all' }));
          view[`sync ${u}`] = await store.syncState(T, u, 'phone');
        }
        results.push(view);
      } finally {
        await store.close();
      }
    }
    assert.deepStrictEqual(results[1], results[0]);
  });
});
