/**
 * Groups end to end: bounds under concurrency, the same reply for a non-member and a conversation
 * that does not exist, membership privacy (what new, removed and re-added members see: edits of
 * messages from before they joined, replays of an earlier membership), owner succession, closing,
 * roles and per-user group budgets.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { PG_URL, newUserId, waitFor, within, type Frame, type TestClient } from '../helpers/harness.js';
import { backends, postgresBackend, type StorageBackend } from '../helpers/storage-backends.js';
import { ask, createGroup, expectReply, said, say, usersOnServer, waitEvent, type DeviceClient, GENEROUS_BUDGETS } from '../helpers/timeline.js';

const T = { timeout: 30_000 };
const strip = (f: Frame): Frame => {
  const { requestId: _r, clientMsgId: _c, ...rest } = f;
  return rest as Frame;
};

function onBackend(backend: StorageBackend, chat: Record<string, unknown> = {}) {
  return usersOnServer(() => ({ ...GENEROUS_BUDGETS, storage: backend.allocate().storage, chat }), { setup: () => backend.setup(), teardown: () => backend.teardown() });
}

function suite(bounds: StorageBackend, privacy: StorageBackend): void {
  describe(`group bounds and parity (${bounds.name})`, () => {
    const { user } = onBackend(bounds, { maxGroupMembers: 4, maxGroupsPerUser: 2 });

    test('maxGroupsPerUser holds when several owners add the same user at once', T, async () => {
      const x = newUserId();
      const o0 = await user();
      await createGroup(o0, [x]); // x: 1 group
      const owners = await Promise.all([0, 1, 2, 3, 4].map(() => user()));
      const gids = await Promise.all(owners.map((o) => createGroup(o, [])));
      const creator = await user();
      const replies = await Promise.all([
        ...owners.map((o, i) => ask(o, { type: 'add_members', conversationId: gids[i], userIds: [x] })),
        ask(creator, { type: 'create_group', name: 'race', memberIds: [x] }),
      ]);
      const ok = replies.filter((r) => r.type === 'group_updated' && r.changed === true).length;
      assert.equal(ok, 1, JSON.stringify(replies.map((r) => [r.type, r.reason ?? r.changed])));
      const xc = await user(x);
      const list = await expectReply(xc, { type: 'list_conversations' }, 'conversations');
      assert.equal((list.conversations as Frame[]).filter((c) => c.kind === 'group').length, 2);
    });

    test('maxGroupMembers holds when owner and admin add at once', T, async () => {
      const o = await user();
      const a = await user();
      const gid = await createGroup(o, [a.userId]);
      await expectReply(o, { type: 'set_role', conversationId: gid, userId: a.userId, role: 'admin' }, 'group_updated');
      const replies = await Promise.all([
        ask(o, { type: 'add_members', conversationId: gid, userIds: [newUserId()] }),
        ask(a, { type: 'add_members', conversationId: gid, userIds: [newUserId()] }),
        ask(o, { type: 'add_members', conversationId: gid, userIds: [newUserId()] }),
        ask(a, { type: 'add_members', conversationId: gid, userIds: [newUserId()] }),
      ]);
      const ok = replies.filter((r) => r.type === 'group_updated' && r.changed === true).length;
      assert.equal(ok, 2, JSON.stringify(replies.map((r) => [r.type, r.reason ?? r.changed])));
      const list = await expectReply(o, { type: 'list_conversations' }, 'conversations');
      assert.equal((list.conversations as Frame[]).find((c) => c.conversationId === gid)!.memberCount, 4);
    });

    test('a non-member gets exactly the reply a non-existent conversation gets, for every frame', T, async () => {
      const a = await user();
      const b = await user();
      const c = await user();
      const gid = await createGroup(a, [b.userId]);
      const m = await said(a, { conversationId: gid }, 'hello');
      const dm = await said(a, b.userId, 'direct');
      const ghost = randomUUID();
      const ghostMsg = randomUUID();
      const frames = (conv: string, msg: string): Record<string, unknown>[] => [
        { type: 'history', conversationId: conv },
        { type: 'history', conversationId: conv, beforeSeq: 5 },
        { type: 'read', conversationId: conv, upToSeq: 1 },
        { type: 'presence', conversationId: conv },
        { type: 'add_members', conversationId: conv, userIds: [c.userId] },
        { type: 'remove_members', conversationId: conv, userIds: [a.userId] },
        { type: 'leave_group', conversationId: conv },
        { type: 'rename_group', conversationId: conv, name: 'x' },
        { type: 'set_role', conversationId: conv, userId: a.userId, role: 'admin' },
        { type: 'edit_message', messageId: msg, content: 'x' },
        { type: 'delete_message', messageId: msg },
      ];
      for (const conv of [gid, String(dm.conversationId)]) {
        const real = frames(conv, String(conv === gid ? m.id : dm.id));
        const fake = frames(ghost, ghostMsg);
        for (let i = 0; i < real.length; i++) {
          const r1 = strip(await ask(c, real[i]!));
          const r2 = strip(await ask(c, fake[i]!));
          assert.deepEqual(r1, r2, `${String(real[i]!.type)}: ${JSON.stringify([r1, r2])}`);
          assert.equal(r1.reason, 'forbidden', JSON.stringify(r1));
        }
        const e1 = await (async () => { const p = c.next((f) => f.type === 'error', true); c.send({ type: 'typing_indicator', conversationId: conv, isTyping: true }); return p; })();
        const e2 = await (async () => { const p = c.next((f) => f.type === 'error', true); c.send({ type: 'typing_indicator', conversationId: ghost, isTyping: true }); return p; })();
        assert.deepEqual(e1, e2);
        const s1 = strip(await (async () => { const k = `k-${randomUUID()}`; const p = c.next((f) => f.clientMsgId === k, true); c.send({ type: 'chat_message', conversationId: conv, content: 'x', clientMsgId: k }); return p; })());
        const s2 = strip(await (async () => { const k = `k-${randomUUID()}`; const p = c.next((f) => f.clientMsgId === k, true); c.send({ type: 'chat_message', conversationId: ghost, content: 'x', clientMsgId: k }); return p; })());
        assert.deepEqual(s1, s2);
      }
    });
  });

  describe(`group privacy (${privacy.name})`, () => {
    const { user } = onBackend(privacy);
    async function marker(from: TestClient, to: DeviceClient): Promise<Frame> {
      const ack = await said(from, to.userId, `marker ${randomUUID()}`);
      return waitEvent(to, String(ack.id));
    }

    test('since_join: an edit of a message sent before a member joined does not reach that member', T, async () => {
      const a = await user();
      const b = await user();
      const c = await user();
      const gid = await createGroup(a, [b.userId]);
      const secret = await said(a, { conversationId: gid }, 'before-join secret');
      await expectReply(a, { type: 'add_members', conversationId: gid, userIds: [c.userId] }, 'group_updated');
      await c.next((f) => f.type === 'membership' && f.action === 'added');
      // The new member's history starts at the event that added them: the message is not there.
      const h = await expectReply(c, { type: 'history', conversationId: gid }, 'history');
      assert.ok(!(h.messages as Frame[]).some((m) => m.id === secret.id), 'pre-join message not in history');
      const from = c.frames.length;
      await expectReply(a, { type: 'edit_message', messageId: secret.id, content: 'EDITED pre-join secret' }, 'message_changed');
      await marker(a, c);
      const leaked = c.frames.slice(from).filter((f) => f.type === 'message_edited' && f.messageId === secret.id);
      assert.deepEqual(leaked, [], `new member got the edited body of a message from before they joined: ${JSON.stringify(leaked)}`);
    });

    test('a removed member (two sessions) gets nothing more; history stops at removal and shows the pre-removal body', T, async () => {
      const a = await user();
      const bId = newUserId();
      const b1 = await user(bId);
      const b2 = await user(bId);
      // A member who stays: once the group's live fan-out after the removal reached them, anything
      // of it meant for b would already be on b's sockets, ahead of the markers below.
      const w = await user();
      const gid = await createGroup(a, [bId, w.userId]);
      const m = await said(a, { conversationId: gid }, 'original');
      await waitEvent(b1, String(m.id));
      await waitEvent(b2, String(m.id));
      const removed = await expectReply(a, { type: 'remove_members', conversationId: gid, userIds: [bId] }, 'group_updated');
      await b1.next((f) => f.type === 'membership' && f.action === 'removed');
      await b2.next((f) => f.type === 'membership' && f.action === 'removed');
      const from1 = b1.frames.length;
      const from2 = b2.frames.length;
      const fromW = w.frames.length;
      await expectReply(a, { type: 'edit_message', messageId: m.id, content: 'changed after removal' }, 'message_changed');
      await said(a, { conversationId: gid }, 'after removal');
      a.send({ type: 'typing_indicator', conversationId: gid, isTyping: true });
      await expectReply(a, { type: 'read', conversationId: gid, upToSeq: 100 }, 'read_updated');
      // The typing and a's read receipt (sent after chat.receiptCoalesceMs) reached the member who stayed.
      const sinceW = (pred: (f: Frame) => boolean) => () => w.frames.slice(fromW).some(pred);
      await waitFor(sinceW((f) => f.type === 'typing_indicator' && f.conversationId === gid), 5_000, 'the typing to reach the member who stayed');
      await waitFor(sinceW((f) => f.type === 'receipt' && f.conversationId === gid && f.userId === a.userId && f.read !== undefined), 5_000, "a's read receipt to reach the member who stayed");
      // One direct message to b reaches both sessions: after it, each has had its chance to leak.
      const mark = await said(a, bId, `marker ${randomUUID()}`);
      await waitEvent(b1, String(mark.id));
      await waitEvent(b2, String(mark.id));
      for (const [c, from] of [[b1, from1], [b2, from2]] as const) {
        const got = c.frames.slice(from).filter((f) => f.conversationId === gid && f.type !== 'history');
        assert.deepEqual(got, [], 'nothing more from the group');
      }
      const h = await expectReply(b1, { type: 'history', conversationId: gid }, 'history');
      const seqs = (h.messages as Frame[]).map((x) => x.seq as number);
      assert.ok(seqs.every((s) => s <= (removed.seq as number)), `history past removal: ${JSON.stringify(seqs)}`);
      const orig = (h.messages as Frame[]).find((x) => x.id === m.id);
      assert.ok(orig === undefined || orig.content === 'original', `former member sees post-removal edit: ${JSON.stringify(orig)}`);
      assert.equal(h.receipts, undefined, 'no receipts for a former member');
      // A new device of the former member replays the timeline: the message as it stood at removal.
      const fresh = await user(bId, { deviceId: `d-${randomUUID().slice(0, 8)}`, after: 0 });
      await marker(a, fresh);
      for (const f of fresh.frames) if (f.conversationId === gid) assert.notEqual(f.content, 'changed after removal', JSON.stringify(f));
      assert.ok(!fresh.frames.some((f) => f.conversationId === gid && (f.seq as number) > (removed.seq as number)), 'replay past removal');
      const list = await expectReply(b1, { type: 'list_conversations' }, 'conversations');
      assert.ok(!(list.conversations as Frame[]).some((x) => x.conversationId === gid));
      for (const f of [
        { type: 'read', conversationId: gid, upToSeq: 1 },
        { type: 'presence', conversationId: gid },
        { type: 'edit_message', messageId: m.id, content: 'x' },
        { type: 'leave_group', conversationId: gid },
      ]) {
        const r = await ask(b1, f);
        assert.equal(r.reason, 'forbidden', JSON.stringify([f, r]));
      }
    });

    test('a former member pages on past messages left out of their history (first edited after they left): the page is filled', T, async () => {
      const owner = await user();
      const member = await user();
      const gid = await createGroup(owner, [member.userId]);
      const m1 = await said(owner, { conversationId: gid }, 'first');
      const m2 = await said(owner, { conversationId: gid }, 'second');
      await waitEvent(member, String(m2.id));
      await expectReply(owner, { type: 'remove_members', conversationId: gid, userIds: [member.userId] }, 'group_updated');
      await expectReply(owner, { type: 'edit_message', messageId: m2.id, content: 'second, edited after the removal' }, 'message_changed');
      // One message per page: the removal, then (m2 left out) m1 — a short page would end the paging.
      const top = await expectReply(member, { type: 'history', conversationId: gid, limit: 1 }, 'history');
      const removal = (top.messages as Frame[])[0]!;
      assert.equal(removal.type, 'membership');
      const page = await expectReply(member, { type: 'history', conversationId: gid, limit: 1, beforeSeq: removal.seq }, 'history');
      assert.deepEqual((page.messages as Frame[]).map((x) => x.id), [m1.id]);
      const all = await expectReply(member, { type: 'history', conversationId: gid, limit: 3 }, 'history');
      assert.deepEqual((all.messages as Frame[]).map((x) => x.seq), [removal.seq, m1.seq, 1], 'the removal, m1, the creation');
    });

    test('re-added member (since_join): a replay of their old timeline shows no edit made while they were out', T, async () => {
      const a = await user();
      const bId = newUserId();
      const b = await user(bId);
      const gid = await createGroup(a, [bId]);
      const m = await said(a, { conversationId: gid }, 'original body');
      await waitEvent(b, String(m.id));
      await expectReply(a, { type: 'remove_members', conversationId: gid, userIds: [bId] }, 'group_updated');
      await expectReply(a, { type: 'edit_message', messageId: m.id, content: 'written while B was out' }, 'message_changed');
      await expectReply(a, { type: 'add_members', conversationId: gid, userIds: [bId] }, 'group_updated');
      // A new device of B replays the whole timeline.
      const fresh = await user(bId, { deviceId: `d-${randomUUID().slice(0, 8)}`, after: 0 });
      await marker(a, fresh);
      const copies = fresh.frames.filter((f) => f.id === m.id);
      for (const f of copies) assert.notEqual(f.content, 'written while B was out', `re-added member sees an edit made while out: ${JSON.stringify(f)}`);
      const h = await expectReply(fresh, { type: 'history', conversationId: gid }, 'history');
      for (const f of h.messages as Frame[]) if (f.id === m.id) assert.notEqual(f.content, 'written while B was out');
    });
  });
}

const [boundsSqlite, boundsPostgres] = backends('rvb');
const [privacySqlite, privacyPostgres] = backends('rvg');
suite(boundsSqlite!, privacySqlite!);
suite(boundsPostgres!, privacyPostgres!);

describe('group lifecycle (sqlite)', () => {
  const { user } = usersOnServer(() => ({
    limits: { groupCreates: { limit: 2, windowMs: 60_000 }, membershipChanges: { limit: 3, windowMs: 60_000 }, requests: { limit: 1000, windowMs: 1000 }, frames: { limit: 1000, windowMs: 1000 } },
    chat: { roles: { user: { send: true, read: true, createGroup: true }, muted: { send: false, read: true }, basic: { send: true, read: true } } },
  }));

  test('owner leaves: the oldest admin becomes owner; last member leaving closes the group', T, async () => {
    const o = await user();
    const m1 = await user();
    const a2 = await user();
    const gid = await createGroup(o, [m1.userId, a2.userId]);
    await expectReply(o, { type: 'set_role', conversationId: gid, userId: a2.userId, role: 'admin' }, 'group_updated');
    await expectReply(o, { type: 'leave_group', conversationId: gid }, 'group_updated');
    const left = await m1.next((f) => f.type === 'membership' && f.action === 'left');
    assert.equal(left.newOwnerId, a2.userId);
    const list = await expectReply(a2, { type: 'list_conversations' }, 'conversations');
    assert.equal((list.conversations as Frame[]).find((c) => c.conversationId === gid)!.role, 'owner');
    await expectReply(a2, { type: 'leave_group', conversationId: gid }, 'group_updated');
    const l2 = await m1.next((f) => f.type === 'membership' && f.action === 'left' && f.actorId === a2.userId);
    assert.equal(l2.newOwnerId, m1.userId);
    await expectReply(m1, { type: 'leave_group', conversationId: gid }, 'group_updated');
    // Closed: nobody may add anyone back or write.
    assert.equal((await ask(m1, { type: 'add_members', conversationId: gid, userIds: [o.userId] })).reason, 'forbidden');
    assert.equal((await say(m1, { conversationId: gid }, 'x')).reason, 'forbidden');
  });

  test('roles: muted cannot create or change groups but may leave; basic cannot create', T, async () => {
    const o = await user();
    const mutedId = newUserId();
    const muted = await user(mutedId, { claims: { role: 'muted' } });
    const basic = await user(newUserId(), { claims: { role: 'basic' } });
    assert.equal((await ask(muted, { type: 'create_group', name: 'x', memberIds: [] })).reason, 'forbidden');
    assert.equal((await ask(basic, { type: 'create_group', name: 'x', memberIds: [] })).reason, 'forbidden');
    const gid = await createGroup(o, [mutedId]);
    assert.equal((await ask(muted, { type: 'rename_group', conversationId: gid, name: 'y' })).reason, 'forbidden');
    await expectReply(muted, { type: 'leave_group', conversationId: gid }, 'group_updated');
  });

  test('create_group with a clientMsgId: resent after a lost answer, it is answered with the group the first made, not a second group', T, async () => {
    const o = await user();
    const member = newUserId();
    const create = { type: 'create_group', name: 'once', memberIds: [member], clientMsgId: 'g-create-1' };
    const first = await expectReply(o, create, 'group_updated');
    const again = await expectReply(o, create, 'group_updated');
    assert.deepEqual({ ...again, requestId: undefined }, { ...first, changed: false, requestId: undefined });
    const list = await expectReply(o, { type: 'list_conversations' }, 'conversations');
    assert.deepEqual((list.conversations as { conversationId: string }[]).map((c) => c.conversationId), [first.conversationId]);
  });

  test('per-user budgets: group creates and membership changes', T, async () => {
    const uid = newUserId();
    const u1 = await user(uid);
    const u2 = await user(uid);
    const g = await createGroup(u1, []);
    await createGroup(u2, []);
    const third = await ask(u1, { type: 'create_group', name: 'x', memberIds: [] });
    assert.equal(third.type, 'rate_limited');
    assert.equal(third.reason, 'group_limit');
    const replies: Frame[] = [];
    for (let i = 0; i < 4; i++) replies.push(await ask(i % 2 === 0 ? u1 : u2, { type: 'rename_group', conversationId: g, name: `n${i}` }));
    assert.deepEqual(replies.map((r) => r.type), ['group_updated', 'group_updated', 'group_updated', 'rate_limited']);
  });
});

describe('strangers never wait on a group (PostgreSQL: membership is read before any lock)', () => {
  const backend = postgresBackend('rvl');
  let storage = '';
  const { user } = usersOnServer(
    () => {
      storage = backend.allocate().storage;
      return { ...GENEROUS_BUDGETS, storage };
    },
    { setup: () => backend.setup(), teardown: () => backend.teardown() },
  );

  test("a non-member's frames naming a group are refused while the group's row is locked by a writer", T, async () => {
    const o = await user();
    const m = await user();
    const stranger = await user();
    const gid = await createGroup(o, [m.userId]);
    const sent = await said(o, { conversationId: gid }, 'hello');
    const db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
    try {
      // A writer of the group holds its row: a stranger's answer must neither wait for it (its
      // delay would tell how busy the group is) nor queue behind it.
      await db.query('BEGIN');
      await db.query(`SELECT id FROM "${new URL(storage).searchParams.get('schema')}".conversations WHERE uuid = $1 FOR UPDATE`, [gid]);
      const message = await within(say(stranger, { conversationId: gid }, 'x'), 10_000, 'chat_message answered while the group is locked');
      assert.equal(message.reason, 'forbidden');
      const frames: Record<string, unknown>[] = [
        { type: 'edit_message', messageId: String(sent.id), content: 'y' },
        { type: 'delete_message', messageId: String(sent.id) },
        { type: 'leave_group', conversationId: gid },
        { type: 'rename_group', conversationId: gid, name: 'z' },
      ];
      for (const frame of frames) {
        const reply = await within(ask(stranger, frame), 10_000, `${String(frame.type)} answered while the group is locked`);
        assert.equal(reply.reason, 'forbidden', String(frame.type));
      }
    } finally {
      await db.query('ROLLBACK').catch(() => {});
      await db.end();
    }
    // The members still write once the lock is gone.
    assert.equal((await said(m, { conversationId: gid }, 'after')).type, 'message_sent');
  });
});
