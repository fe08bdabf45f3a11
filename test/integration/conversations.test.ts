/**
 * Protocol v2 end to end (issue #9): direct and group conversations, every authorization refusal,
 * the group bounds and limits, conversation lists, history by seq, and timelines across devices
 * (resume by device position, by `after`, by what no device acknowledged, and after retention
 * pruned the resume point). A real server and real `ws` clients, run twice: on SQLite and on
 * PostgreSQL. No sleeps: "nothing more arrived" is proven by the contiguous `pos` stream — a
 * marker event arriving at the next position means nothing was appended in between.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer, closeAll, newUserId, waitFor, type Frame, type TestClient, type TestServer } from '../helpers/harness.js';
import type { RampartConfigInput } from '../../src/config/schema.js';
import { openStore } from '../../src/store/open-store.js';
import { backends, type StorageBackend, type StorageLocation } from '../helpers/storage-backends.js';
import {
  ask,
  assertContiguous,
  createGroup,
  deviceClient,
  expectReply,
  lastPosOf,
  said,
  say,
  streamOf,
  waitEvent,
  waitPos,
  type DeviceAuth,
  type DeviceClient,
  GENEROUS_BUDGETS,
} from '../helpers/timeline.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const T = { timeout: 20_000 };

/** Generous budgets: these tests are about conversations, not rate limits (the limits test sets its own). */
const BASE: RampartConfigInput = {
  ...GENEROUS_BUDGETS,
  chat: {
    // Small pages: every replay below crosses several storage reads.
    replayPageSize: 2,
    roles: {
      user: { send: true, read: true, createGroup: true },
      muted: { send: false, read: true, createGroup: false },
      basic: { send: true, read: true, createGroup: false },
    },
  },
};

const sorted = (xs: unknown): string[] => [...(xs as string[])].sort();
const withoutRequestId = (f: Frame): Frame => {
  const { requestId: _r, ...rest } = f;
  return rest as Frame;
};
const membershipOf = (c: TestClient, conversationId: string, from = 0): Frame[] =>
  c.frames.slice(from).filter((f) => f.type === 'membership' && f.conversationId === conversationId);
const groupFramesOf = (c: TestClient, conversationId: string, from = 0): Frame[] =>
  c.frames.slice(from).filter((f) => f.conversationId === conversationId && f.type !== 'history' && f.type !== 'group_updated');

/** Resolves once the wall clock has passed `ms` (activity order needs distinct timestamps). */
const clockPast = (ms: number): Promise<void> => waitFor(() => Date.now() > ms, 1000, 'the clock to tick', 1);

/** Sends `frame` and resolves with the next `error` frame (refusals of frames with no correlation id). */
function nextError(client: TestClient, frame: Record<string, unknown>): Promise<Frame> {
  const reply = client.next((f) => f.type === 'error', true);
  client.send(frame);
  return reply;
}

function conversationsSuite(backend: StorageBackend): void {
  describe(`conversations, groups and device timelines (${backend.name})`, () => {
    const servers: TestServer[] = [];
    const clients: TestClient[] = [];
    let srv: TestServer;

    async function start(overrides: RampartConfigInput = {}): Promise<{ srv: TestServer; loc: StorageLocation }> {
      const loc = backend.allocate();
      const server = await startServer({
        ...BASE,
        ...overrides,
        storage: loc.storage,
        limits: { ...BASE.limits, ...overrides.limits },
        chat: { ...BASE.chat, ...overrides.chat },
      });
      servers.push(server);
      return { srv: server, loc };
    }

    async function user(sub: string = newUserId(), opts: DeviceAuth = {}, server: TestServer = srv): Promise<DeviceClient> {
      const client = await deviceClient(server.url, sub, opts);
      clients.push(client);
      return client;
    }

    /** `from` sends `to` a direct marker; resolves with the frame `to` received. */
    async function marker(from: TestClient, to: DeviceClient, label = 'marker'): Promise<Frame> {
      const ack = await said(from, to.userId, `${label} ${randomUUID()}`);
      return waitEvent(to, String(ack.id));
    }

    before(async () => {
      await backend.setup();
      ({ srv } = await start());
    });

    after(async () => {
      await closeAll(...clients);
      for (const server of servers) await server.close();
      await backend.teardown();
    });

    // ── direct conversations ──────────────────────────────────────────────────────────────

    test('direct messages carry conversationId, seq and pos; the sender\'s other session gets a copy', T, async () => {
      const aId = newUserId();
      const a1 = await user(aId);
      const a2 = await user(aId);
      const b = await user();
      assert.equal(a1.auth.resumeAfter, 0);
      assert.equal(a1.auth.lastPos, 0);

      const sent1 = await said(a1, b.userId, 'one');
      assert.match(String(sent1.conversationId), UUID);
      assert.equal(sent1.seq, 1);
      assert.equal(sent1.pos, 1);
      const atB = await waitEvent(b, String(sent1.id));
      assert.equal(atB.type, 'chat_message');
      assert.equal(atB.conversationId, sent1.conversationId);
      assert.equal(atB.seq, 1);
      assert.equal(atB.pos, 1);
      assert.equal(atB.recipientId, b.userId);
      assert.equal(atB.senderId, aId);
      const atA2 = await waitEvent(a2, String(sent1.id));
      assert.equal(atA2.type, 'chat_message', "the sender's other session gets the message itself");
      assert.equal(atA2.pos, 1);
      assert.equal(atA2.content, 'one');

      const sent2 = await said(b, aId, 'two');
      assert.equal(sent2.conversationId, sent1.conversationId, 'one conversation per pair');
      assert.equal(sent2.seq, 2);
      assert.equal(sent2.pos, 2);
      for (const a of [a1, a2]) {
        const got = await waitEvent(a, String(sent2.id));
        assert.equal(got.pos, 2);
        assert.equal(got.seq, 2);
      }

      // A duplicate clientMsgId: message_sent without pos, the first id, nothing new delivered.
      const dup = await said(a1, b.userId, 'one again', { clientMsgId: String(sent1.clientMsgId) });
      assert.equal(dup.id, sent1.id);
      assert.equal(dup.seq, 1);
      assert.equal(dup.pos, undefined);
      const m = await marker(a1, b);
      assert.equal(m.pos, 3, 'the duplicate took no position in B\'s timeline');

      assert.deepEqual(streamOf(a1).map((i) => [i.frame.type, i.pos]), [['message_sent', 1], ['chat_message', 2], ['message_sent', 3]]);
      for (const c of [a1, a2, b]) assertContiguous(c);
    });

    // ── groups ────────────────────────────────────────────────────────────────────────────

    test('a group end to end: every member gets `created` and the messages, each at their own pos', T, async () => {
      const owner = await user();
      const m1 = await user();
      const m2 = await user();
      await marker(owner, m1, 'before the group'); // m1's timeline is one ahead of m2's

      const cid = await createGroup(owner, [m1.userId, m2.userId, m2.userId, owner.userId], 'Team <b>x</b>');
      assert.match(cid, UUID);
      for (const c of [owner, m1, m2]) {
        const created = await c.next((f) => f.type === 'membership' && f.conversationId === cid);
        assert.equal(created.action, 'created');
        assert.equal(created.seq, 1);
        assert.equal(created.actorId, owner.userId);
        assert.deepEqual(sorted(created.userIds), sorted([owner.userId, m1.userId, m2.userId]), 'duplicates and the creator are folded');
        assert.equal(typeof created.name, 'string');
        assert.doesNotMatch(String(created.name), /<b>/, 'the name is sanitized');
      }
      assert.equal(membershipOf(m1, cid)[0]!.pos, 2);
      assert.equal(membershipOf(m2, cid)[0]!.pos, 1);

      const s1 = await said(owner, { conversationId: cid }, 'hello team');
      assert.equal(s1.conversationId, cid);
      assert.equal(s1.seq, 2);
      const g1 = await waitEvent(m1, String(s1.id));
      const g2 = await waitEvent(m2, String(s1.id));
      assert.deepEqual([g1.pos, g2.pos], [3, 2]);
      for (const g of [g1, g2]) {
        assert.equal(g.type, 'chat_message');
        assert.equal(g.seq, 2);
        assert.equal(g.conversationId, cid);
        assert.equal(g.senderId, owner.userId);
        assert.equal(g.recipientId, undefined, 'group messages name no recipient');
        assert.equal(g.content, 'hello team');
      }

      const s2 = await said(m2, { conversationId: cid }, 'hi back');
      assert.equal(s2.seq, 3);
      assert.equal(s2.pos, 3);
      await waitEvent(owner, String(s2.id));
      await waitEvent(m1, String(s2.id));
      for (const c of [owner, m1, m2]) assertContiguous(c);
      assert.equal(streamOf(m2).filter((i) => i.frame.type === 'chat_message' && i.id === s2.id).length, 0, 'the sender got message_sent, not a copy');
    });

    test('add and remove: every session of the removed member gets `removed`, then nothing more', T, async () => {
      const owner = await user();
      const a = await user();
      const cId = newUserId();
      const c1 = await user(cId);
      const c2 = await user(cId);
      const d = await user();
      const cid = await createGroup(owner, [a.userId, cId]);

      const added = await expectReply(owner, { type: 'add_members', conversationId: cid, userIds: [d.userId] }, 'group_updated');
      assert.deepEqual([added.changed, added.seq, added.conversationId], [true, 2, cid]);
      for (const c of [owner, a, c1, c2, d]) {
        const ev = await c.next((f) => f.type === 'membership' && f.conversationId === cid && f.action === 'added');
        assert.deepEqual(ev.userIds, [d.userId]);
        assert.equal(ev.seq, 2);
      }
      const again = await expectReply(owner, { type: 'add_members', conversationId: cid, userIds: [d.userId] }, 'group_updated');
      assert.equal(again.changed, false);
      assert.equal(again.seq, undefined);

      const removed = await expectReply(owner, { type: 'remove_members', conversationId: cid, userIds: [cId] }, 'group_updated');
      assert.deepEqual([removed.changed, removed.seq], [true, 3]);
      const gone: Frame[] = [];
      for (const c of [owner, a, d, c1, c2]) {
        const ev = await c.next((f) => f.type === 'membership' && f.conversationId === cid && f.action === 'removed');
        assert.deepEqual(ev.userIds, [cId]);
        assert.equal(ev.actorId, owner.userId);
        if (c === c1 || c === c2) gone.push(ev);
      }
      const marks = [c1.frames.length, c2.frames.length];

      // After the removal: a message, typing, a rename — none of it reaches C's sessions.
      const after1 = await said(owner, { conversationId: cid }, 'after the removal');
      await waitEvent(a, String(after1.id));
      await waitEvent(d, String(after1.id));
      owner.send({ type: 'typing_indicator', conversationId: cid, isTyping: true });
      await a.next((f) => f.type === 'typing_indicator' && f.conversationId === cid);
      await expectReply(owner, { type: 'rename_group', conversationId: cid, name: 'without C' }, 'group_updated');
      await d.next((f) => f.type === 'membership' && f.action === 'renamed');
      // The same node, the same user channel: the marker comes after anything published before it.
      const m = await marker(owner, c1, 'after removal');
      await waitEvent(c2, String(m.id));
      for (const [i, c] of [c1, c2].entries()) {
        assert.equal(m.pos, (gone[i]!.pos as number) + 1, 'the marker is the next event after `removed`');
        assert.deepEqual(groupFramesOf(c, cid, marks[i]), [], 'nothing of the group after the removal');
        assertContiguous(c);
      }

      // C can no longer write to it, and removing C again changes nothing.
      assert.equal((await say(c1, { conversationId: cid }, 'still here?')).reason, 'forbidden');
      const twice = await expectReply(owner, { type: 'remove_members', conversationId: cid, userIds: [cId] }, 'group_updated');
      assert.equal(twice.changed, false);
    });

    test('leave: the owner role passes on (newOwnerId); the last member leaving closes the group', T, async () => {
      const owner = await user();
      const a = await user();
      const b = await user();
      const cid = await createGroup(owner, [a.userId, b.userId]);

      const role = await expectReply(owner, { type: 'set_role', conversationId: cid, userId: b.userId, role: 'admin' }, 'group_updated');
      assert.equal(role.changed, true);
      const ev = await a.next((f) => f.type === 'membership' && f.action === 'role_changed');
      assert.deepEqual([ev.userIds, ev.role], [[b.userId], 'admin']);

      const left = await expectReply(owner, { type: 'leave_group', conversationId: cid }, 'group_updated');
      assert.equal(left.changed, true);
      for (const c of [owner, a, b]) {
        const e = await c.next((f) => f.type === 'membership' && f.conversationId === cid && f.action === 'left');
        assert.deepEqual(e.userIds, [owner.userId]);
        assert.equal(e.newOwnerId, b.userId, 'the oldest admin becomes the owner');
      }
      assert.equal((await say(owner, { conversationId: cid }, 'gone')).reason, 'forbidden');
      assert.equal((await ask(owner, { type: 'rename_group', conversationId: cid, name: 'x' })).reason, 'forbidden');

      // The new owner acts as one: renames, changes roles.
      await expectReply(b, { type: 'rename_group', conversationId: cid, name: 'B runs it' }, 'group_updated');
      const renamed = await a.next((f) => f.type === 'membership' && f.action === 'renamed');
      assert.equal(renamed.name, 'B runs it');
      await expectReply(b, { type: 'set_role', conversationId: cid, userId: a.userId, role: 'admin' }, 'group_updated');

      const bLeft = await expectReply(b, { type: 'leave_group', conversationId: cid }, 'group_updated');
      assert.equal(bLeft.changed, true);
      const e2 = await a.next((f) => f.type === 'membership' && f.action === 'left' && f.newOwnerId !== undefined && (f.userIds as string[])[0] === b.userId);
      assert.equal(e2.newOwnerId, a.userId);

      // The last member leaves: the group is closed.
      await expectReply(a, { type: 'leave_group', conversationId: cid }, 'group_updated');
      await a.next((f) => f.type === 'membership' && f.action === 'left' && (f.userIds as string[])[0] === a.userId);
      assert.equal((await say(a, { conversationId: cid }, 'anyone?')).reason, 'forbidden');
      assert.equal((await ask(a, { type: 'add_members', conversationId: cid, userIds: [owner.userId] })).reason, 'forbidden');
      assert.equal((await ask(owner, { type: 'add_members', conversationId: cid, userIds: [a.userId] })).reason, 'forbidden');
      const list = await expectReply(a, { type: 'list_conversations' }, 'conversations');
      assert.ok(!(list.conversations as Frame[]).some((c) => c.conversationId === cid), 'a closed group is nobody\'s conversation');
      for (const c of [owner, a, b]) assertContiguous(c);
    });

    test('rename and set_role: admins add and remove members, plain members may not; nobody removes the owner', T, async () => {
      const owner = await user();
      const admin = await user();
      const member = await user();
      const x = await user();
      const n = await user();
      const cid = await createGroup(owner, [admin.userId, member.userId, x.userId], 'first');

      await expectReply(owner, { type: 'rename_group', conversationId: cid, name: 'second' }, 'group_updated');
      const renamed = await member.next((f) => f.type === 'membership' && f.action === 'renamed');
      assert.equal(renamed.name, 'second');
      assert.deepEqual(renamed.userIds, []);
      const same = await expectReply(owner, { type: 'rename_group', conversationId: cid, name: 'second' }, 'group_updated');
      assert.equal(same.changed, false);

      // A plain member: no add, no remove, no rename, no role change.
      for (const frame of [
        { type: 'add_members', conversationId: cid, userIds: [n.userId] },
        { type: 'remove_members', conversationId: cid, userIds: [x.userId] },
        { type: 'rename_group', conversationId: cid, name: 'mine' },
        { type: 'set_role', conversationId: cid, userId: member.userId, role: 'admin' },
      ]) {
        const r = await ask(member, frame);
        assert.equal(r.type, 'error', frame.type);
        assert.equal(r.reason, 'forbidden', frame.type);
      }

      await expectReply(owner, { type: 'set_role', conversationId: cid, userId: admin.userId, role: 'admin' }, 'group_updated');
      const unchanged = await expectReply(owner, { type: 'set_role', conversationId: cid, userId: admin.userId, role: 'admin' }, 'group_updated');
      assert.equal(unchanged.changed, false);

      // An admin adds and removes members and renames; it cannot remove the owner or change roles.
      await expectReply(admin, { type: 'add_members', conversationId: cid, userIds: [n.userId] }, 'group_updated');
      const joined = await n.next((f) => f.type === 'membership' && f.action === 'added');
      assert.deepEqual([joined.userIds, joined.actorId], [[n.userId], admin.userId]);
      await expectReply(admin, { type: 'remove_members', conversationId: cid, userIds: [x.userId] }, 'group_updated');
      await x.next((f) => f.type === 'membership' && f.action === 'removed');
      await expectReply(admin, { type: 'rename_group', conversationId: cid, name: 'third' }, 'group_updated');
      assert.equal((await ask(admin, { type: 'remove_members', conversationId: cid, userIds: [owner.userId] })).reason, 'forbidden');
      assert.equal((await ask(admin, { type: 'set_role', conversationId: cid, userId: member.userId, role: 'admin' })).reason, 'forbidden');

      // Demoted, the admin is a plain member again.
      await expectReply(owner, { type: 'set_role', conversationId: cid, userId: admin.userId, role: 'member' }, 'group_updated');
      assert.equal((await ask(admin, { type: 'add_members', conversationId: cid, userIds: [x.userId] })).reason, 'forbidden');
      for (const c of [owner, admin, member, n]) assertContiguous(c);
    });

    test('typing in a group reaches the other members only', T, async () => {
      const a = await user();
      const b = await user();
      const c = await user();
      const out = await user();
      const cid = await createGroup(a, [b.userId, c.userId]);
      await c.next((f) => f.type === 'membership' && f.conversationId === cid);
      const marks = [a.frames.length, out.frames.length];
      a.send({ type: 'typing_indicator', conversationId: cid, isTyping: true });
      for (const peer of [b, c]) {
        const t = await peer.next((f) => f.type === 'typing_indicator' && f.conversationId === cid);
        assert.deepEqual(t, { type: 'typing_indicator', senderId: a.userId, conversationId: cid, isTyping: true });
      }
      // B answers; when A has B's indicator, A's own (published earlier, same node) would have come first.
      b.send({ type: 'typing_indicator', conversationId: cid, isTyping: false });
      await a.next((f) => f.type === 'typing_indicator' && f.senderId === b.userId);
      assert.deepEqual(
        a.frames.slice(marks[0]).filter((f) => f.type === 'typing_indicator').map((f) => f.senderId),
        [b.userId],
        'A does not get its own indicator',
      );
      await marker(a, out);
      assert.deepEqual(out.frames.slice(marks[1]).filter((f) => f.type === 'typing_indicator'), [], 'a non-member gets nothing');
    });

    // ── authorization ───────────────────────────────────────────────────────────────────────

    test('a non-member gets the same `forbidden` as for a conversation that does not exist', T, async () => {
      const owner = await user();
      const member = await user();
      const x = await user();
      const cid = await createGroup(owner, [member.userId]);
      await member.next((f) => f.type === 'membership' && f.conversationId === cid);
      await owner.next((f) => f.type === 'membership' && f.conversationId === cid);
      const nowhere = randomUUID();
      const marks = [owner.frames.length, member.frames.length];
      const memberBefore = lastPosOf(member);

      const requests = (conversationId: string): Record<string, unknown>[] => [
        { type: 'history', conversationId },
        { type: 'read', conversationId, upToSeq: 1 },
        { type: 'add_members', conversationId, userIds: [x.userId] },
        { type: 'remove_members', conversationId, userIds: [member.userId] },
        { type: 'leave_group', conversationId },
        { type: 'rename_group', conversationId, name: 'taken over' },
        { type: 'set_role', conversationId, userId: x.userId, role: 'admin' },
      ];
      const real = requests(cid);
      const fake = requests(nowhere);
      for (const [i, frame] of real.entries()) {
        const r1 = await ask(x, frame);
        const r2 = await ask(x, fake[i]!);
        assert.equal(r1.type, 'error', `${String(frame.type)}: ${JSON.stringify(r1)}`);
        assert.equal(r1.reason, 'forbidden', String(frame.type));
        assert.ok(typeof r1.requestId === 'string');
        assert.deepEqual(withoutRequestId(r1), withoutRequestId(r2), `${String(frame.type)}: no existence oracle`);
      }
      // chat_message: with and without a clientMsgId.
      const s1 = await say(x, { conversationId: cid }, 'let me in', { clientMsgId: 'probe' });
      const s2 = await say(x, { conversationId: nowhere }, 'let me in', { clientMsgId: 'probe' });
      assert.deepEqual(s1, { type: 'error', reason: 'forbidden', clientMsgId: 'probe' });
      assert.deepEqual(s2, s1);
      const e1 = await nextError(x, { type: 'chat_message', conversationId: cid, content: 'no id' });
      const e2 = await nextError(x, { type: 'chat_message', conversationId: nowhere, content: 'no id' });
      assert.deepEqual(e1, { type: 'error', reason: 'forbidden' });
      assert.deepEqual(e2, e1);
      // typing_indicator
      const t1 = await nextError(x, { type: 'typing_indicator', conversationId: cid, isTyping: true });
      const t2 = await nextError(x, { type: 'typing_indicator', conversationId: nowhere, isTyping: true });
      assert.deepEqual(t1, { type: 'error', reason: 'forbidden' });
      assert.deepEqual(t2, t1);
      // list_conversations: the group is not the outsider's.
      const list = await expectReply(x, { type: 'list_conversations' }, 'conversations');
      assert.ok(!(list.conversations as Frame[]).some((c) => c.conversationId === cid));

      // Nothing the outsider tried reached the members, and the group is unchanged.
      const m = await marker(owner, member);
      assert.deepEqual(groupFramesOf(member, cid, marks[1]), []);
      assert.equal(m.pos, memberBefore + 1, 'the marker is the member\'s next event');
      const members = await expectReply(owner, { type: 'list_conversations' }, 'conversations');
      const info = (members.conversations as Frame[]).find((c) => c.conversationId === cid)!;
      assert.equal(info.memberCount, 2);
      assert.equal(info.lastSeq, 1, 'no event was added to the group');
      assert.deepEqual(groupFramesOf(owner, cid, marks[0]), []);
    });

    test('members are of one tenant: a user of another tenant with the same uuid is never reached', T, async () => {
      const a = await user();
      const shared = newUserId(); // the same uuid in two tenants: two different users
      const u = await user(shared, { claims: { tid: 'tenant-b' } });
      const v = await user(newUserId(), { claims: { tid: 'tenant-b' } });

      // A (default tenant) names the uuid: it can only ever mean a user of A's own tenant.
      const created = await ask(a, { type: 'create_group', name: 'cross', memberIds: [shared] });
      let cid: string | undefined;
      if (created.type === 'group_updated') {
        cid = String(created.conversationId);
        await said(a, { conversationId: cid }, 'to the group');
        await ask(a, { type: 'add_members', conversationId: cid, userIds: [v.userId] });
        await said(a, { conversationId: cid }, 'again');
      } else {
        assert.equal(created.type, 'error');
      }
      await said(a, shared, 'direct to the uuid');
      const cid2 = await createGroup(a, []);
      await ask(a, { type: 'add_members', conversationId: cid2, userIds: [shared, v.userId] });
      await said(a, { conversationId: cid2 }, 'and here');

      // Tenant B's users saw none of it: a marker from their own tenant is their first event.
      const m1 = await marker(v, u, 'tenant b');
      assert.deepEqual(streamOf(u).map((i) => [i.pos, i.id]), [[1, m1.id]], 'U saw nothing of tenant A');
      const m2 = await marker(u, v, 'tenant b');
      assert.deepEqual(streamOf(v).map((i) => [i.pos, i.id]), [[1, m1.id], [2, m2.id]], 'V saw nothing of tenant A either');

      // …and cannot reach A's conversations by id.
      for (const conversationId of [cid, cid2].filter((c): c is string => c !== undefined)) {
        assert.equal((await ask(u, { type: 'history', conversationId })).reason, 'forbidden');
        assert.equal((await say(u, { conversationId }, 'hello?')).reason, 'forbidden');
        assert.equal((await ask(u, { type: 'leave_group', conversationId })).reason, 'forbidden');
      }
      const list = await expectReply(u, { type: 'list_conversations' }, 'conversations');
      assert.deepEqual((list.conversations as Frame[]).map((c) => c.peerId), [v.userId], 'only the tenant-b conversation');

      // The other way round: tenant B's group naming A's uuid never reaches A.
      const aBefore = lastPosOf(a);
      const bGroup = await ask(u, { type: 'create_group', name: 'b side', memberIds: [a.userId] });
      if (bGroup.type === 'group_updated') await said(u, { conversationId: String(bGroup.conversationId) }, 'to A?');
      const other = await user();
      const m3 = await marker(other, a, 'default tenant');
      assert.equal(m3.pos, aBefore + 1, 'nothing from tenant B reached A');
      assertContiguous(a);
    });

    test('a role without createGroup cannot create groups (but can be a member and write)', T, async () => {
      const basic = await user(newUserId(), { claims: { role: 'basic' } });
      const owner = await user();
      const r = await ask(basic, { type: 'create_group', name: 'nope', memberIds: [owner.userId] });
      assert.deepEqual(withoutRequestId(r), { type: 'error', reason: 'forbidden' });
      assert.ok(typeof r.requestId === 'string');
      const cid = await createGroup(owner, [basic.userId]);
      await basic.next((f) => f.type === 'membership' && f.conversationId === cid);
      const s = await said(basic, { conversationId: cid }, 'I can write');
      await waitEvent(owner, String(s.id));
      const list = await expectReply(basic, { type: 'list_conversations' }, 'conversations');
      assert.deepEqual((list.conversations as Frame[]).map((c) => c.conversationId), [cid], 'the refused create made nothing');
    });

    // ── conversation lists, read positions, history ─────────────────────────────────────────

    test('list_conversations: most recent activity first, paged, unread counts, readSeq, sanitized lastMessage', T, async () => {
      const me = await user();
      const b = await user();
      const c = await user();
      const b1 = await said(b, me.userId, 'b one');
      const b2 = await said(b, me.userId, 'b two');
      await clockPast(Number(b2.timestamp));
      const gid = await createGroup(me, [c.userId], 'the group');
      await c.next((f) => f.type === 'membership' && f.conversationId === gid);
      const raw = 'hi <script>alert(1)</script> <b>bold</b> @me';
      const g1 = await said(c, { conversationId: gid }, raw);
      const delivered = await waitEvent(me, String(g1.id));
      await clockPast(Number(g1.timestamp));
      const c1 = await said(c, me.userId, 'c direct');
      await waitEvent(me, String(c1.id));

      const first = await expectReply(me, { type: 'list_conversations', limit: 2 }, 'conversations');
      const page1 = first.conversations as Frame[];
      assert.deepEqual(page1.map((x) => x.conversationId), [c1.conversationId, gid], 'most recent activity first');
      assert.equal(typeof first.nextCursor, 'string');
      const second = await expectReply(me, { type: 'list_conversations', limit: 2, before: first.nextCursor }, 'conversations');
      const page2 = second.conversations as Frame[];
      assert.deepEqual(page2.map((x) => x.conversationId), [b1.conversationId]);
      assert.equal(second.nextCursor, undefined, 'the last page has no cursor');

      const direct = page2[0]!;
      assert.equal(direct.kind, 'direct');
      assert.equal(direct.peerId, b.userId);
      assert.equal(direct.role, 'member');
      assert.equal(direct.memberCount, 2);
      assert.equal(direct.lastSeq, 2);
      assert.equal(direct.readSeq, 0);
      assert.equal(direct.unreadCount, 2);
      assert.equal((direct.lastMessage as Frame).id, b2.id);
      assert.equal((direct.lastMessage as Frame).content, 'b two');
      assert.equal(direct.lastActivityAt, b2.timestamp);

      const group = page1[1]!;
      assert.equal(group.kind, 'group');
      assert.equal(group.name, 'the group');
      assert.equal(group.role, 'owner');
      assert.equal(group.memberCount, 2);
      assert.equal(group.lastSeq, 2);
      assert.equal(group.unreadCount, 1, 'the membership event is no unread message');
      const last = group.lastMessage as Frame;
      assert.equal(last.id, g1.id);
      assert.equal(last.content, delivered.content, 'lastMessage is the message as stored (sanitized)');
      assert.doesNotMatch(String(last.content), /<script>/);
      assert.deepEqual(last.mentions, delivered.mentions);

      // Read positions: forward only, clamped to the last seq; a read clears the unread count.
      const r1 = await expectReply(me, { type: 'read', conversationId: String(b1.conversationId), upToSeq: 1 }, 'read_updated');
      assert.deepEqual([r1.conversationId, r1.readSeq], [b1.conversationId, 1]);
      let list = await expectReply(me, { type: 'list_conversations' }, 'conversations');
      let d = (list.conversations as Frame[]).find((x) => x.conversationId === b1.conversationId)!;
      assert.deepEqual([d.readSeq, d.unreadCount], [1, 1]);
      assert.equal((await expectReply(me, { type: 'read', conversationId: String(b1.conversationId), upToSeq: 99 }, 'read_updated')).readSeq, 2);
      assert.equal((await expectReply(me, { type: 'read', conversationId: String(b1.conversationId), upToSeq: 1 }, 'read_updated')).readSeq, 2, 'never backwards');
      list = await expectReply(me, { type: 'list_conversations' }, 'conversations');
      d = (list.conversations as Frame[]).find((x) => x.conversationId === b1.conversationId)!;
      assert.deepEqual([d.readSeq, d.unreadCount], [2, 0]);
      // The sender's own messages are never unread for the sender.
      const bList = await expectReply(b, { type: 'list_conversations' }, 'conversations');
      assert.equal((bList.conversations as Frame[])[0]!.unreadCount, 0);
    });

    test('history by conversationId, paged by beforeSeq; since_join for new members; nothing past a removal', T, async () => {
      const owner = await user();
      const a = await user();
      const d = await user();
      const cid = await createGroup(owner, [a.userId]);
      for (let i = 1; i <= 4; i++) await said(owner, { conversationId: cid }, `m${i}`); // seq 2..5
      await expectReply(owner, { type: 'add_members', conversationId: cid, userIds: [d.userId] }, 'group_updated'); // seq 6
      await said(owner, { conversationId: cid }, 'm5'); // seq 7

      const page = async (c: TestClient, extra: Record<string, unknown>): Promise<Frame[]> => {
        const h = await expectReply(c, { type: 'history', conversationId: cid, ...extra }, 'history');
        assert.equal(h.conversationId, cid);
        return h.messages as Frame[];
      };
      const p1 = await page(owner, { limit: 3 });
      assert.deepEqual(p1.map((m) => m.seq), [7, 6, 5], 'newest first');
      assert.deepEqual(p1.map((m) => m.type), ['chat_message', 'membership', 'chat_message']);
      assert.equal(p1[1]!.action, 'added');
      const p2 = await page(owner, { limit: 3, beforeSeq: 5 });
      assert.deepEqual(p2.map((m) => m.seq), [4, 3, 2]);
      assert.deepEqual(p2.map((m) => m.content), ['m3', 'm2', 'm1']);
      const p3 = await page(owner, { limit: 3, beforeSeq: 2 });
      assert.deepEqual(p3.map((m) => [m.type, m.seq, m.action]), [['membership', 1, 'created']]);
      assert.deepEqual(await page(owner, { beforeSeq: 1 }), []);

      // D joined at seq 6: it sees from its joining on (since_join, the default).
      assert.deepEqual((await page(d, {})).map((m) => m.seq), [7, 6]);

      // A is removed at seq 8; what comes after is not A's to read.
      await expectReply(owner, { type: 'remove_members', conversationId: cid, userIds: [a.userId] }, 'group_updated'); // seq 8
      await said(owner, { conversationId: cid }, 'm6 after the removal'); // seq 9
      const aPage = await page(a, { limit: 100 });
      assert.ok(aPage.length > 0, 'a former member still reads up to the removal');
      assert.ok(aPage.every((m) => (m.seq as number) <= 8), `nothing past the removal: ${JSON.stringify(aPage.map((m) => m.seq))}`);
      assert.ok(!aPage.some((m) => m.content === 'm6 after the removal'));
      assert.ok(aPage.some((m) => m.content === 'm5'));
      // And an outsider reads nothing.
      const x = await user();
      assert.equal((await ask(x, { type: 'history', conversationId: cid })).reason, 'forbidden');

      // v1: the direct conversation by peerId, with its conversationId in the reply.
      const dm = await said(owner, a.userId, 'direct');
      const byPeer = await expectReply(a, { type: 'history', peerId: owner.userId }, 'history');
      assert.equal(byPeer.peerId, owner.userId);
      assert.equal(byPeer.conversationId, dm.conversationId);
      assert.deepEqual((byPeer.messages as Frame[]).map((m) => [m.type, m.id, m.seq]), [['chat_message', dm.id, 1]]);
    });

    test('chat.groupHistory "all": a new member reads the whole group', T, async () => {
      const { srv: all } = await start({ chat: { groupHistory: 'all' } });
      const owner = await user(newUserId(), {}, all);
      const late = await user(newUserId(), {}, all);
      const cid = await createGroup(owner, []);
      await said(owner, { conversationId: cid }, 'before you came');
      await expectReply(owner, { type: 'add_members', conversationId: cid, userIds: [late.userId] }, 'group_updated');
      const h = await expectReply(late, { type: 'history', conversationId: cid }, 'history');
      assert.deepEqual((h.messages as Frame[]).map((m) => m.seq), [3, 2, 1]);
      assert.equal((h.messages as Frame[])[1]!.content, 'before you came');
    });

    // ── bounds and limits ───────────────────────────────────────────────────────────────────

    test('chat.maxGroupMembers, chat.maxGroupsPerUser and limits.groupCreates are enforced', T, async () => {
      const { srv: small } = await start({
        chat: { maxGroupMembers: 4, maxGroupsPerUser: 3 },
        limits: { groupCreates: { limit: 3, windowMs: 600_000 } },
      });
      const on = (sub = newUserId()): Promise<DeviceClient> => user(sub, {}, small);
      const ids = (n: number): string[] => Array.from({ length: n }, () => newUserId());

      // Members: 5 (creator + 4) > 4 on create; 4 then one more on add.
      const p = await on();
      const tooBig = await ask(p, { type: 'create_group', name: 'big', memberIds: ids(4) });
      assert.deepEqual(withoutRequestId(tooBig), { type: 'error', reason: 'too_many_members' });
      const full = await createGroup(p, ids(3));
      assert.equal((await ask(p, { type: 'add_members', conversationId: full, userIds: ids(1) })).reason, 'too_many_members');
      const info = await expectReply(p, { type: 'list_conversations' }, 'conversations');
      assert.deepEqual((info.conversations as Frame[]).map((c) => c.memberCount), [4], 'the refused changes changed nothing');

      // Groups per user: W is in 3 groups; a 4th (its own or another's) is refused.
      const w = await on();
      for (let i = 0; i < 3; i++) await createGroup(await on(), [w.userId]);
      assert.equal((await ask(w, { type: 'create_group', name: 'fourth', memberIds: [] })).reason, 'too_many_groups');
      const other = await on();
      assert.equal((await ask(other, { type: 'create_group', name: 'with w', memberIds: [w.userId] })).reason, 'too_many_groups');
      const empty = await createGroup(other, []);
      assert.equal((await ask(other, { type: 'add_members', conversationId: empty, userIds: [w.userId] })).reason, 'too_many_groups');
      // Leaving one frees a place.
      const wList = await expectReply(w, { type: 'list_conversations' }, 'conversations');
      assert.equal((wList.conversations as Frame[]).length, 3);
      await expectReply(w, { type: 'leave_group', conversationId: String((wList.conversations as Frame[])[0]!.conversationId) }, 'group_updated');
      await expectReply(other, { type: 'add_members', conversationId: empty, userIds: [w.userId] }, 'group_updated');

      // Creates per user: the 4th create within the window is rate limited (even with groups to spare).
      const r = await on();
      for (let i = 0; i < 3; i++) {
        const cid = await createGroup(r, []);
        await expectReply(r, { type: 'leave_group', conversationId: cid }, 'group_updated');
      }
      const limited = await ask(r, { type: 'create_group', name: 'one too many', memberIds: [] });
      assert.equal(limited.type, 'rate_limited');
      assert.equal(limited.reason, 'group_limit');
      assert.ok((limited.retryAfter as number) > 0);
      // Other frames are not affected by it.
      await said(r, p.userId, 'still talking');
    });

    // ── devices ─────────────────────────────────────────────────────────────────────────────

    test('two devices: the offline one resumes with everything in pos order, what the other sent included', T, async () => {
      const me = newUserId();
      const x = await user();

      // Device B acks the first event and goes offline.
      const b0 = await user(me, { deviceId: 'dev-b' });
      assert.deepEqual([b0.auth.userId, b0.auth.resumeAfter, b0.auth.lastPos], [me, 0, 0]);
      const x1 = await said(x, me, 'x1');
      await waitEvent(b0, String(x1.id));
      b0.send({ type: 'ack', upTo: 1 });
      await b0.close();

      // Device A (new): resumes after what some device acknowledged.
      const a = await user(me, { deviceId: 'dev-a' });
      assert.deepEqual([a.auth.resumeAfter, a.auth.lastPos], [1, 1]);
      const x2 = await said(x, me, 'x2'); // 2
      await waitEvent(a, String(x2.id));
      const a1 = await said(a, x.userId, 'from device A'); // 3
      assert.equal(a1.pos, 3);
      const gid = await createGroup(x, [me]); // 4
      const created = await waitPos(a, 4);
      assert.deepEqual([created.type, created.conversationId, created.action], ['membership', gid, 'created']);
      const g1 = await said(x, { conversationId: gid }, 'group from x'); // 5
      await waitEvent(a, String(g1.id));
      const g2 = await said(a, { conversationId: gid }, 'group from A'); // 6
      assert.equal(g2.pos, 6);
      assertContiguous(a, 'device A');
      a.send({ type: 'ack', upTo: 6 });

      // Device B comes back: pos 2..6 in order, including A's own messages.
      const b1 = await user(me, { deviceId: 'dev-b' });
      assert.deepEqual([b1.auth.resumeAfter, b1.auth.lastPos], [1, 6]);
      await waitPos(b1, 6);
      const replay = assertContiguous(b1, 'device B');
      assert.deepEqual(replay.map((i) => i.id), [x2.id, a1.id, created.id, g1.id, g2.id]);
      assert.deepEqual(replay.map((i) => i.frame.type), ['chat_message', 'chat_message', 'membership', 'chat_message', 'chat_message']);
      const own = replay[1]!.frame;
      assert.deepEqual([own.senderId, own.recipientId, own.content, own.conversationId], [me, x.userId, 'from device A', a1.conversationId]);
      assert.equal(replay[2]!.frame.conversationId, gid);
      assert.equal(replay[4]!.frame.senderId, me);
      // Then live, continuing the same stream.
      const x3 = await said(x, me, 'live'); // 7
      const live = await waitEvent(b1, String(x3.id));
      assert.equal(live.pos, 7);
      assertContiguous(b1, 'device B live');

      // A new device (and a client naming no device) starts after what some device acknowledged.
      const c = await user(me, { deviceId: 'dev-c' });
      assert.deepEqual([c.auth.resumeAfter, c.auth.lastPos], [6, 7]);
      const anon = await user(me);
      assert.equal(anon.auth.resumeAfter, 6);
      for (const s of [c, anon]) {
        await waitPos(s, 7);
        assert.deepEqual(assertContiguous(s).map((i) => i.id), [x3.id]);
      }
      await closeAll(b1, c, anon);
    });

    test('`after` resumes from a given position; `ack {upTo}` moves the device position', T, async () => {
      const me = newUserId();
      const x = await user();
      const ids: string[] = [];
      const first = await user(me, { deviceId: 'phone' });
      for (let i = 1; i <= 6; i++) ids.push(String((await said(x, me, `n${i}`)).id));
      await waitPos(first, 6);
      first.send({ type: 'ack', upTo: 2 });
      await first.close();

      // `after` below the device position replays again; past it, it stops at the device position:
      // this session's acks may not cover events this device was never sent.
      const fwd = await user(me, { deviceId: 'phone', after: 4 });
      assert.deepEqual([fwd.auth.resumeAfter, fwd.auth.lastPos], [2, 6]);
      await waitPos(fwd, 6);
      assert.deepEqual(assertContiguous(fwd).map((i) => i.id), ids.slice(2));
      const back = await user(me, { deviceId: 'phone', after: 0 });
      assert.equal(back.auth.resumeAfter, 0);
      await waitPos(back, 6);
      assert.deepEqual(assertContiguous(back).map((i) => i.id), ids);
      // An `after` beyond the end is no different.
      const beyond = await user(me, { deviceId: 'phone', after: 1000 });
      assert.deepEqual([beyond.auth.resumeAfter, beyond.auth.lastPos], [2, 6]);
      // Its ack covers only what it was sent: it cannot move the device, or the user, past 6.
      await waitPos(beyond, 6);
      await closeAll(fwd, back, beyond);

      // Without `after`: the device's acked position (2 — `after` sessions did not move it).
      const plain = await user(me, { deviceId: 'phone' });
      assert.equal(plain.auth.resumeAfter, 2);
      await waitPos(plain, 6);
      assert.deepEqual(assertContiguous(plain).map((i) => i.id), ids.slice(2));
      // One ack covers many events; then a reconnect resumes right after it.
      plain.send({ type: 'ack', upTo: 5 });
      await plain.close();
      const again = await user(me, { deviceId: 'phone' });
      assert.equal(again.auth.resumeAfter, 5);
      await waitPos(again, 6);
      assert.deepEqual(assertContiguous(again).map((i) => i.id), ids.slice(5));
      // Acks never go backwards, and are clamped to the last position.
      again.send({ type: 'ack', upTo: 3 });
      again.send({ type: 'ack', upTo: 999 });
      await again.close();
      const last = await user(me, { deviceId: 'phone' });
      assert.deepEqual([last.auth.resumeAfter, last.auth.lastPos], [6, 6]);
      const x7 = await said(x, me, 'n7');
      assert.equal((await waitEvent(last, String(x7.id))).pos, 7);
      assertContiguous(last);
    });

    test('replay runs first, then live, as one stream, while messages keep arriving', T, async () => {
      const me = newUserId();
      const x = await user();
      const y = await user();
      for (let i = 0; i < 15; i++) await said(x, me, `backlog ${i}`);
      // Live traffic from two senders while the device replays (pages of 2).
      const device = await user(me, { deviceId: 'laptop' });
      const live = await Promise.all(Array.from({ length: 10 }, (_, i) => said(i % 2 === 0 ? x : y, me, `live ${i}`)));
      for (const l of live) await waitEvent(device, String(l.id));
      const s = assertContiguous(device);
      assert.equal(s.length, 25);
      assert.equal(new Set(s.map((i) => i.id)).size, 25, 'no duplicate');
    });

    test('a pruned resume point: `timeline_pruned {after, firstPos}`, then the rest; history still pages', T, async () => {
      const { srv: own, loc } = await start();
      const me = newUserId();
      const x = await user(newUserId(), {}, own);
      const device = await user(me, { deviceId: 'tablet' }, own);
      for (let i = 1; i <= 3; i++) await said(x, me, `old ${i}`);
      await waitPos(device, 3);
      device.send({ type: 'ack', upTo: 1 });
      await device.close();

      // Retention runs (through the store adapter on the same database): everything so far goes.
      const store = await openStore(loc.storage);
      try {
        const pruned = await store.pruneOlderThan(Date.now() + 1);
        assert.ok(pruned >= 3, `pruned ${pruned} events`);
      } finally {
        await store.close();
      }
      const n4 = await said(x, me, 'new 4');
      const n5 = await said(x, me, 'new 5');

      const back = await user(me, { deviceId: 'tablet' }, own);
      assert.deepEqual([back.auth.resumeAfter, back.auth.lastPos], [1, 5]);
      await waitEvent(back, String(n5.id));
      const frames = back.frames.filter((f) => f.type !== 'auth_success');
      assert.deepEqual(frames[0], { type: 'timeline_pruned', after: 1, firstPos: 4 });
      assert.deepEqual(frames.slice(1).map((f) => [f.pos, f.id]), [[4, n4.id], [5, n5.id]]);

      // A client naming no device resumes where no device acked (1): told the same.
      const anon = await user(me, {}, own);
      await waitEvent(anon, String(n5.id));
      assert.deepEqual(anon.frames.find((f) => f.type === 'timeline_pruned'), { type: 'timeline_pruned', after: 1, firstPos: 4 });

      // History holds what retention kept.
      const h = await expectReply(back, { type: 'history', peerId: x.userId }, 'history');
      assert.deepEqual((h.messages as Frame[]).map((m) => m.id), [n5.id, n4.id]);
    });
  });
}

for (const backend of backends('conv')) conversationsSuite(backend);
