/**
 * SQLite writes the acks of one event-loop turn together (src/store/sqlite-store.ts): in the turn's
 * message transaction when it runs first, else in one of their own. Each ack still gets its own
 * result, in arrival order; one that came before a message of the same turn is applied before it;
 * and acks accepted before `close()` are written, not dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { messageId } from '../../src/chat/message-id.js';
import type { NewMessage } from '../../src/store/store.js';

const T = 'default';
let clock = Date.now();

function message(from: string, to: string, content = 'm'): NewMessage {
  const ts = ++clock;
  return { id: messageId(ts), tenantId: T, senderId: from, to: { peerId: to }, timestamp: ts, content, mentions: [], hashtags: [], links: [] };
}

async function withStore(run: (store: SqliteStore, file: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-acks-'));
  const file = join(dir, 'db.sqlite');
  const store = new SqliteStore(file);
  await store.init();
  try {
    await run(store, file);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('many acks of one turn, with a message batch in the same turn: every ack gets its own result, in order', () =>
  withStore(async (store) => {
    const sender = randomUUID();
    const users = Array.from({ length: 30 }, () => randomUUID());
    await store.appendMessages(users.flatMap((u) => [message(sender, u), message(sender, u)]), { maxInboxSize: 100 });
    // One turn: each user acks 1 then 2 (the second sees the first), a device acks too, and a
    // message batch is submitted among them.
    const acks = users.map((u, i) => store.acknowledge(T, u, i % 2 === 0 ? 'phone' : undefined, 1));
    const appended = store.appendMessages([message(sender, users[0]!, 'between')], { maxInboxSize: 100 });
    const later = users.map((u) => store.acknowledge(T, u, undefined, 2));
    const unknown = store.acknowledge(T, randomUUID(), undefined, 5);
    const [first, second, batch, none] = await Promise.all([Promise.all(acks), Promise.all(later), appended, unknown]);
    assert.deepEqual(first.map((r) => r.position), users.map(() => 1));
    assert.ok(first.every((r) => r.delivered.length === 1 && r.delivered[0]!.delivered === 1), 'each ack moved its own delivered position');
    assert.deepEqual(second.map((r) => r.position), users.map(() => 2));
    assert.ok(second.every((r) => r.delivered.length === 1 && r.delivered[0]!.delivered === 2));
    assert.equal(batch[0]?.status, 'stored');
    assert.deepEqual(none, { position: 0, delivered: [] });
    for (const u of users) assert.equal((await store.syncState(T, u)).userAckedPos, 2);
    assert.equal((await store.syncState(T, users[0]!, 'phone')).deviceAckedPos, 1);
  }));

test('an ack that came before a message of the same turn is applied first: it frees the backlog the message needs', () =>
  withStore(async (store) => {
    const [sender, full] = [randomUUID(), randomUUID()];
    await store.appendMessages([message(sender, full), message(sender, full)], { maxInboxSize: 2 });
    const [refused] = await store.appendMessages([message(sender, full)], { maxInboxSize: 2 });
    assert.equal(refused?.status, 'inbox_full');
    // Same turn: the ack, then the message.
    const ack = store.acknowledge(T, full, undefined, 2);
    const [stored] = await store.appendMessages([message(sender, full)], { maxInboxSize: 2 });
    assert.equal(stored?.status, 'stored');
    assert.equal((await ack).position, 2);
  }));

test('acks accepted before close() are written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-acks-'));
  const file = join(dir, 'db.sqlite');
  try {
    const store = new SqliteStore(file);
    await store.init();
    const [sender, user] = [randomUUID(), randomUUID()];
    await store.appendMessages([message(sender, user), message(sender, user)], { maxInboxSize: 10 });
    const ack = store.acknowledge(T, user, 'laptop', 2);
    await store.close(); // in the same turn as the ack
    assert.equal((await ack).position, 2);
    await assert.rejects(store.acknowledge(T, user, 'laptop', 2), 'a closed store refuses acks');
    const reopened = new SqliteStore(file);
    await reopened.init();
    const state = await reopened.syncState(T, user, 'laptop');
    await reopened.close();
    assert.deepEqual([state.userAckedPos, state.deviceAckedPos], [2, 2]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a message transaction that fails does not take the acks of its turn down with it: they are written on their own', () =>
  withStore(async (store) => {
    const [sender, user] = [randomUUID(), randomUUID()];
    await store.appendMessages([message(sender, user), message(sender, user)], { maxInboxSize: 10 });
    const ack = store.acknowledge(T, user, 'phone', 2);
    // Same turn: a batch that throws inside its transaction (a sender id that is no UUID).
    await assert.rejects(store.appendMessages([{ ...message(sender, user), senderId: 'not-a-uuid' }], { maxInboxSize: 10 }), /UUID/);
    assert.equal((await ack).position, 2, 'the ack was written after the rollback, in its own transaction');
    assert.equal((await store.syncState(T, user, 'phone')).deviceAckedPos, 2);
  }));
