/**
 * Issue #11 end to end, on SQLite and on PostgreSQL: read/delivered receipts (live, coalesced,
 * private reads, `chat.receipts: "off"`, positions in list_conversations and history), edit and
 * delete (who may, the window, idempotency, rate limits, tombstones, erasure on encrypted storage
 * read back from the database itself), and presence (query, live changes, debounce against flaps,
 * hiding, contacts only, one frame per change and session). Timings come from config; "nothing
 * arrived" is proven with a marker that arrives after whatever could have.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { startServer, closeAll, newUserId, waitFor, within, type Frame, type TestClient, type TestServer } from '../helpers/harness.js';
import type { RampartConfigInput } from '../../src/config/schema.js';
import { backends, type StorageBackend, type StorageLocation } from '../helpers/storage-backends.js';
import { assertContiguous, createGroup, deviceClient, expectReply, ask, said, say, waitEvent, type DeviceClient, GENEROUS_BUDGETS } from '../helpers/timeline.js';

const T = { timeout: 30_000 };

const BASE: RampartConfigInput = {
  ...GENEROUS_BUDGETS,
  chat: { receiptCoalesceMs: 0, presenceDebounceMs: 0 },
};

const ofType = (c: TestClient, type: string, from = 0): Frame[] => c.frames.slice(from).filter((f) => f.type === type);

function suite(backend: StorageBackend): void {
  describe(`receipts, edits, deletes and presence (${backend.name})`, () => {
    const servers: TestServer[] = [];
    const clients: TestClient[] = [];
    let srv: TestServer;
    let loc: StorageLocation;

    async function start(overrides: RampartConfigInput = {}): Promise<{ srv: TestServer; loc: StorageLocation }> {
      const location = backend.allocate();
      const server = await startServer({
        ...BASE,
        ...overrides,
        storage: location.storage,
        limits: { ...BASE.limits, ...overrides.limits },
        chat: { ...BASE.chat, ...overrides.chat },
        rateLimit: { ...BASE.rateLimit!, ...overrides.rateLimit },
      });
      servers.push(server);
      return { srv: server, loc: location };
    }

    async function user(server: TestServer = srv, sub: string = newUserId(), deviceId?: string): Promise<DeviceClient> {
      const c = await deviceClient(server.url, sub, deviceId === undefined ? {} : { deviceId });
      clients.push(c);
      return c;
    }

    /** `from` → `to` direct message; resolves with `to`'s copy. */
    async function dm(from: DeviceClient, to: DeviceClient, content = `hi ${randomUUID()}`): Promise<Frame> {
      const sent = await said(from, to.userId, content);
      return waitEvent(to, String(sent.id));
    }

    before(async () => {
      await backend.setup();
      ({ srv, loc } = await start());
    });

    after(async () => {
      await closeAll(...clients);
      for (const s of servers) await s.close();
      await backend.teardown();
    });

    // ── receipts ───────────────────────────────────────────────────────────────────────────

    test('an ack by any device of the recipient sends `delivered` to the sender; list_conversations and history give the positions', T, async () => {
      const a = await user();
      const b = await user(srv, newUserId(), 'phone');
      await dm(b, a, 'both have written: receipts flow'); // see 'a direct conversation only one side wrote in…'
      const m1 = await dm(a, b);
      const m2 = await dm(a, b);
      const receipt = a.next((f) => f.type === 'receipt' && f.userId === b.userId && f.delivered !== undefined, true);
      b.send({ type: 'ack', upTo: m2.pos });
      const r = await receipt;
      assert.deepEqual(r, { type: 'receipt', conversationId: m1.conversationId, userId: b.userId, delivered: m2.seq });
      const list = await expectReply(a, { type: 'list_conversations' }, 'conversations');
      const conv = (list.conversations as Frame[]).find((c) => c.conversationId === m1.conversationId)!;
      assert.deepEqual(conv.receipts, { delivered: m2.seq, read: 0, members: [{ userId: b.userId, delivered: m2.seq, read: 0 }] });
      const history = await expectReply(a, { type: 'history', conversationId: m1.conversationId }, 'history');
      assert.deepEqual(history.receipts, conv.receipts);
      // An ack that covers nothing new sends nothing: the next receipt A gets is the read below.
      b.send({ type: 'ack', upTo: m2.pos });
      const next = a.next((f) => f.type === 'receipt', true);
      await expectReply(b, { type: 'read', conversationId: m1.conversationId, upToSeq: m1.seq }, 'read_updated');
      assert.deepEqual(await next, { type: 'receipt', conversationId: m1.conversationId, userId: b.userId, read: m1.seq });
    });

    test('read: never backwards, clamped to the last seq; every session of the reader gets read_updated', T, async () => {
      const a = await user();
      const b = await user();
      const b2 = await user(srv, b.userId);
      const m = await dm(a, b);
      const other = b2.next((f) => f.type === 'read_updated' && f.requestId === undefined, true);
      const up = await expectReply(b, { type: 'read', conversationId: m.conversationId, upToSeq: 99 }, 'read_updated');
      assert.equal(up.readSeq, m.seq);
      assert.equal((await other).readSeq, m.seq);
      const back = await expectReply(b, { type: 'read', conversationId: m.conversationId, upToSeq: 0 }, 'read_updated');
      assert.equal(back.readSeq, m.seq);
      const stranger = await user();
      const refused = await ask(stranger, { type: 'read', conversationId: m.conversationId, upToSeq: 1 });
      assert.deepEqual({ ...refused, requestId: undefined }, { type: 'error', reason: 'forbidden', requestId: undefined });
      const nowhere = await ask(stranger, { type: 'read', conversationId: randomUUID(), upToSeq: 1 });
      assert.equal(nowhere.reason, 'forbidden');
    });

    test('a private read moves only the reader\'s own position: no receipt, others see read 0', T, async () => {
      const a = await user();
      const b = await user();
      const m1 = await dm(a, b);
      await dm(a, b);
      await dm(b, a, 'both have written: receipts flow');
      await expectReply(b, { type: 'read', conversationId: m1.conversationId, upToSeq: 2, private: true }, 'read_updated');
      const listB = await expectReply(b, { type: 'list_conversations' }, 'conversations');
      const mine = (listB.conversations as Frame[]).find((c) => c.conversationId === m1.conversationId)!;
      assert.equal(mine.readSeq, 2);
      assert.equal(mine.unreadCount, 0);
      // The next receipt A gets is the delivered one: the private read sent none.
      const next = a.next((f) => f.type === 'receipt', true);
      b.send({ type: 'ack', upTo: 2 });
      const r = await next;
      assert.equal(r.read, undefined);
      const history = await expectReply(a, { type: 'history', conversationId: m1.conversationId }, 'history');
      assert.equal((history.receipts as { read: number }).read, 0);
    });

    test('receipts go only to current members of the conversation', T, async () => {
      const owner = await user();
      const member = await user();
      const outsider = await user();
      const gid = await createGroup(owner, [member.userId]);
      const sent = await said(owner, { conversationId: gid }, 'hello group');
      await waitEvent(member, String(sent.id));
      await said(member, { conversationId: gid }, 'hello back'); // a member shares receipts once they wrote (§6a)
      const seen = owner.next((f) => f.type === 'receipt' && f.userId === member.userId, true);
      await expectReply(member, { type: 'read', conversationId: gid, upToSeq: Number(sent.seq) }, 'read_updated');
      assert.equal((await seen).read, sent.seq);
      await dm(owner, outsider, 'marker');
      assert.equal(ofType(outsider, 'receipt').length, 0);
      assert.equal(ofType(member, 'receipt').filter((f) => f.userId === member.userId).length, 0);
    });

    test("a read made before the member's first message reaches the others live once they write (§6a: from then on)", T, async () => {
      const owner = await user();
      const member = await user();
      const gid = await createGroup(owner, [member.userId]);
      const sent = await said(owner, { conversationId: gid }, 'hello group');
      await waitEvent(member, String(sent.id));
      await expectReply(member, { type: 'read', conversationId: gid, upToSeq: Number(sent.seq) }, 'read_updated'); // not sharing yet: goes nowhere
      const told = owner.next((f) => f.type === 'receipt' && f.userId === member.userId && f.read === sent.seq);
      await said(member, { conversationId: gid }, 'first words');
      assert.equal((await told).read, sent.seq);
    });

    test('chat.receipts "off": no receipt frames and no positions listed', T, async () => {
      const { srv: off } = await start({ chat: { receipts: 'off' } });
      const a = await user(off);
      const b = await user(off);
      const m = await dm(a, b);
      b.send({ type: 'ack', upTo: m.pos });
      await expectReply(b, { type: 'read', conversationId: m.conversationId, upToSeq: m.seq }, 'read_updated');
      await dm(b, a, 'marker after the ack and the read');
      assert.equal(ofType(a, 'receipt').length, 0);
      const list = await expectReply(a, { type: 'list_conversations' }, 'conversations');
      assert.equal((list.conversations as Frame[])[0]!.receipts, undefined);
    });

    test('coalescing: many reads within chat.receiptCoalesceMs → few receipts, the last one exact', T, async () => {
      const windowMs = 400;
      const { srv: co } = await start({ chat: { receiptCoalesceMs: windowMs } });
      const a = await user(co);
      const b = await user(co);
      let last: Frame | undefined;
      for (let i = 0; i < 30; i++) last = await dm(a, b, `n${i}`);
      await dm(b, a, 'both have written: receipts flow');
      const started = Date.now();
      for (let i = 1; i <= 30; i++) b.send({ type: 'read', conversationId: last!.conversationId, upToSeq: i });
      await a.next((f) => f.type === 'receipt' && f.read === 30);
      const elapsed = Date.now() - started;
      const receipts = ofType(a, 'receipt').filter((f) => f.read !== undefined);
      // A leading receipt, then at most one per elapsed window: the coalescing contract, from
      // chat.receiptCoalesceMs, not a speed measurement (a slower run only allows more).
      assert.ok(receipts.length <= 2 + Math.ceil(elapsed / windowMs), `${receipts.length} receipts in ${elapsed} ms`);
      assert.ok(receipts.length < 30 / 3, `${receipts.length} receipts for 30 reads`);
      const reads = receipts.map((f) => Number(f.read));
      assert.deepEqual([...reads].sort((x, y) => x - y), reads, 'never backwards');
    });

    test('being written to, or added to a group, by a stranger shares nothing with them: no presence, no receipts, until one answers', T, async () => {
      const stranger = await user();
      const victimId = newUserId();
      const first = await said(stranger, victimId, 'hi, you do not know me'); // the victim never answered yet
      const v = await user(srv, victimId, 'phone');
      const m = await waitEvent(v, String(first.id));
      // The victim's device acks and reads: nothing reaches the stranger, nor do their lists show positions.
      v.send({ type: 'ack', upTo: m.pos });
      await expectReply(v, { type: 'read', conversationId: m.conversationId, upToSeq: m.seq }, 'read_updated');
      const p = await expectReply(stranger, { type: 'presence', conversationId: m.conversationId }, 'presence');
      assert.deepEqual(p.online, [stranger.userId], 'the victim is not shown online');
      const list = await expectReply(stranger, { type: 'list_conversations' }, 'conversations');
      assert.deepEqual((list.conversations as Frame[]).find((c) => c.conversationId === m.conversationId)!.receipts, { delivered: 0, read: 0, members: [] });
      // A group the stranger makes with the victim in it shares nothing of the victim's either.
      const gid = await createGroup(stranger, [victimId]);
      const inGroup = await said(stranger, { conversationId: gid }, 'a group for us');
      const seenInGroup = await waitEvent(v, String(inGroup.id));
      v.send({ type: 'ack', upTo: seenInGroup.pos });
      await expectReply(v, { type: 'read', conversationId: gid, upToSeq: inGroup.seq }, 'read_updated');
      assert.deepEqual((await expectReply(stranger, { type: 'presence', conversationId: gid }, 'presence')).online, [stranger.userId]);
      // A marker through the same conversation: everything the victim did before it has been handled.
      await dm(stranger, v, 'marker');
      assert.deepEqual(ofType(stranger, 'receipt'), []);
      assert.deepEqual(ofType(stranger, 'presence_changed').filter((f) => f.userId === victimId), []);
      // The victim answers: from now on both ways, as in any conversation — and the stranger, who
      // could not see the victim's published online state until now, is told it at once.
      await waitFor(async () => ((await expectReply(v, { type: 'presence', conversationId: m.conversationId }, 'presence')).online as string[]).includes(victimId), 10_000, 'the victim published online', 50);
      const told = stranger.next((f) => f.type === 'presence_changed' && f.userId === victimId && f.online === true, true);
      // … and the positions the victim reached before answering (the ack and read of the first message).
      const positions = stranger.next((f) => f.type === 'receipt' && f.userId === victimId, true);
      await dm(v, stranger, 'hello');
      await told;
      const before = await positions;
      assert.deepEqual([before.conversationId, before.delivered, before.read], [m.conversationId, m.seq, m.seq]);
      const delivered = stranger.next((f) => f.type === 'receipt' && f.userId === victimId, true);
      const marker = ofType(v, 'chat_message').at(-1)!;
      v.send({ type: 'ack', upTo: Number(marker.pos) + 1 }); // the marker, and the victim's own answer after it
      assert.equal((await delivered).delivered, Number(marker.seq) + 1);
      const shown = await expectReply(stranger, { type: 'presence', conversationId: m.conversationId }, 'presence');
      assert.deepEqual([...(shown.online as string[])].sort(), [stranger.userId, victimId].sort());
      const offline = stranger.next((f) => f.type === 'presence_changed' && f.userId === victimId && f.online === false, true);
      await v.close();
      await offline;
    });

    // ── edit and delete ────────────────────────────────────────────────────────────────────

    test('edit: the sender, sanitized; members get message_edited with pos; history shows the latest content with editedAt', T, async () => {
      const owner = await user();
      const member = await user();
      const gid = await createGroup(owner, [member.userId]);
      const sent = await said(owner, { conversationId: gid }, 'first');
      await waitEvent(member, String(sent.id));
      const edited = member.next((f) => f.type === 'message_edited', true);
      const reply = await expectReply(owner, { type: 'edit_message', messageId: sent.id, content: 'second <script>x</script> #tag' }, 'message_changed');
      assert.equal(reply.action, 'edited');
      assert.equal(reply.messageId, sent.id);
      const e = await edited;
      assert.equal(typeof e.pos, 'number');
      assert.equal(e.messageId, sent.id);
      assert.equal(e.actorId, owner.userId);
      assert.equal(e.seq, reply.seq);
      assert.equal(e.content, 'second &lt;script&gt;x&lt;/script&gt; #tag');
      assert.deepEqual(e.hashtags, ['tag']);
      const h = await expectReply(member, { type: 'history', conversationId: gid }, 'history');
      const items = h.messages as Frame[];
      assert.ok(items.every((i) => i.type === 'chat_message' || i.type === 'membership'), 'edit events are not history items');
      const msg = items.find((i) => i.id === sent.id)!;
      assert.equal(msg.content, e.content);
      assert.equal(msg.editedAt, e.editedAt);
      assertContiguous(member);
      // The same policy as new messages: a control character is refused.
      const bad = await ask(owner, { type: 'edit_message', messageId: sent.id, content: 'a\u0007b' });
      assert.equal(bad.reason, 'invalid_content');
    });

    test('edit refusals: not the sender, not a member, unknown id, deleted, window 0 or passed → the same forbidden', T, async () => {
      const a = await user();
      const b = await user();
      const stranger = await user();
      const m = await dm(a, b);
      for (const [who, id] of [[b, m.id], [stranger, m.id], [a, randomUUID()]] as const) {
        const r = await ask(who, { type: 'edit_message', messageId: id, content: 'x', clientMsgId: 'c1' });
        assert.deepEqual([r.type, r.reason, r.clientMsgId], ['error', 'forbidden', 'c1']);
      }
      await expectReply(a, { type: 'delete_message', messageId: m.id }, 'message_changed');
      assert.equal((await ask(a, { type: 'edit_message', messageId: m.id, content: 'x' })).reason, 'forbidden');
      const { srv: noEdits } = await start({ chat: { editWindowMs: 0 } });
      const c = await user(noEdits);
      const d = await user(noEdits);
      const n = await dm(c, d);
      assert.equal((await ask(c, { type: 'edit_message', messageId: n.id, content: 'x' })).reason, 'forbidden');
      const { srv: short } = await start({ chat: { editWindowMs: 50 } });
      const e = await user(short);
      const f = await user(short);
      const o = await dm(e, f);
      await waitFor(() => Date.now() > Number(o.timestamp) + 60, 2000, 'the edit window to pass', 5);
      assert.equal((await ask(e, { type: 'edit_message', messageId: o.id, content: 'x' })).reason, 'forbidden');
    });

    test('delete: the sender or a group owner/admin; members get message_deleted; history shows the tombstone; content gone from storage', T, async () => {
      const owner = await user();
      const admin = await user();
      const member = await user();
      const gid = await createGroup(owner, [admin.userId, member.userId]);
      await expectReply(owner, { type: 'set_role', conversationId: gid, userId: admin.userId, role: 'admin' }, 'group_updated');
      const secret = `secret ${randomUUID()}`;
      const byMember = await said(member, { conversationId: gid }, secret, { attachments: [{ type: 'file', url: 'https://x.example/f', name: 'f.txt' }] });
      await expectReply(member, { type: 'edit_message', messageId: byMember.id, content: `${secret} edited` }, 'message_changed');
      const byOwner = await said(owner, { conversationId: gid }, 'owner says');
      // A plain member cannot delete someone else's message.
      assert.equal((await ask(member, { type: 'delete_message', messageId: byOwner.id })).reason, 'forbidden');
      const deleted = owner.next((f) => f.type === 'message_deleted', true);
      const reply = await expectReply(admin, { type: 'delete_message', messageId: byMember.id }, 'message_changed');
      assert.equal(reply.action, 'deleted');
      const d = await deleted;
      assert.equal(d.messageId, byMember.id);
      assert.equal(d.actorId, admin.userId);
      assert.equal(typeof d.pos, 'number');
      const h = await expectReply(member, { type: 'history', conversationId: gid }, 'history');
      const tomb = (h.messages as Frame[]).find((i) => i.id === byMember.id)!;
      assert.equal(tomb.content, '');
      assert.equal(tomb.attachments, undefined);
      assert.equal(tomb.deletedBy, admin.userId);
      assert.equal(typeof tomb.deletedAt, 'number');
      assert.equal(tomb.senderId, member.userId);
      assert.equal(tomb.seq, byMember.seq);
      const rows = await loc.rows({ conversationId: gid });
      assert.ok(!JSON.stringify(rows).includes(secret), 'the content and its edit are erased');
      assert.ok(!JSON.stringify(rows).includes('f.txt'), 'attachments are erased');
      // A second delete changes nothing (no seq); a repeated clientMsgId answers the first.
      const again = await expectReply(admin, { type: 'delete_message', messageId: byMember.id }, 'message_changed');
      assert.equal(again.seq, undefined);
      // Direct: the peer may not delete the sender's message.
      const a = await user();
      const b = await user();
      const m = await dm(a, b);
      assert.equal((await ask(b, { type: 'delete_message', messageId: m.id })).reason, 'forbidden');
      assertContiguous(owner);
    });

    test('idempotency: a repeated clientMsgId stores one edit and answers with its seq', T, async () => {
      const a = await user();
      const b = await user();
      const m = await dm(a, b);
      const first = await expectReply(a, { type: 'edit_message', messageId: m.id, content: 'v2', clientMsgId: 'edit-1' }, 'message_changed');
      const second = await expectReply(a, { type: 'edit_message', messageId: m.id, content: 'v2', clientMsgId: 'edit-1' }, 'message_changed');
      assert.equal(second.seq, first.seq);
      assert.equal(second.clientMsgId, 'edit-1');
      const del1 = await expectReply(a, { type: 'delete_message', messageId: m.id, clientMsgId: 'del-1' }, 'message_changed');
      const del2 = await expectReply(a, { type: 'delete_message', messageId: m.id, clientMsgId: 'del-1' }, 'message_changed');
      assert.equal(del2.seq, del1.seq);
      await dm(a, b, 'marker');
      assert.equal(ofType(b, 'message_edited').length, 1);
      assert.equal(ofType(b, 'message_deleted').length, 1);
    });

    test('edits and deletes count against the message rate limits', T, async () => {
      const { srv: tight } = await start({ rateLimit: { burstLimit: 2, burstWindow: 60_000 } });
      const a = await user(tight);
      const b = await user(tight);
      const m = await said(a, b.userId, 'one');
      await expectReply(a, { type: 'edit_message', messageId: m.id, content: 'two' }, 'message_changed');
      const limited = await ask(a, { type: 'delete_message', messageId: m.id, clientMsgId: 'd' });
      assert.deepEqual([limited.type, limited.reason, limited.clientMsgId], ['rate_limited', 'burst_limit', 'd']);
    });

    test('encrypted storage: a deleted message\'s sealed content and its edits are gone from the database', T, async () => {
      const key = randomBytes(32).toString('base64');
      const { srv: enc, loc: encLoc } = await start({ encryption: { activeKeyId: 'k1', keys: { k1: key } } });
      const a = await user(enc);
      const b = await user(enc);
      const m = await dm(a, b, 'sealed words');
      await expectReply(a, { type: 'edit_message', messageId: m.id, content: 'sealed words, edited' }, 'message_changed');
      const before = await encLoc.rows({ conversationId: String(m.conversationId) });
      const sealed = before.filter((r) => r.key_id !== null).map((r) => String(r.content));
      assert.equal(sealed.length, 2, 'the message and its edit are sealed');
      assert.ok(!JSON.stringify(before).includes('sealed words'));
      await expectReply(a, { type: 'delete_message', messageId: m.id }, 'message_changed');
      const after = await encLoc.rows({ conversationId: String(m.conversationId) });
      for (const c of sealed) assert.ok(!JSON.stringify(after).includes(c), 'no sealed content left in the rows');
      if (backend.name === 'sqlite') {
        const file = encLoc.storage.slice('sqlite:'.length);
        const bytes = Buffer.concat([readFileSync(file), ...(existsSync(`${file}-wal`) ? [readFileSync(`${file}-wal`)] : [])]);
        for (const c of sealed) assert.equal(bytes.indexOf(Buffer.from(c.slice(0, 40))), -1, 'ciphertext absent from the database files');
      }
      const h = await expectReply(b, { type: 'history', conversationId: m.conversationId }, 'history');
      assert.equal((h.messages as Frame[])[0]!.deletedBy, a.userId);
    });

    // ── presence ───────────────────────────────────────────────────────────────────────────

    test('presence: query by members only; live changes to users sharing a conversation, nobody else', T, async () => {
      const a = await user();
      const gid = await createGroup(a, []);
      const bId = newUserId();
      await expectReply(a, { type: 'add_members', conversationId: gid, userIds: [bId] }, 'group_updated');
      // b shares presence through the group once b wrote in it (§6a): write once, go offline.
      const b0 = await user(srv, bId);
      await said(b0, { conversationId: gid }, 'hello');
      const shown = async (): Promise<boolean> => ((await expectReply(a, { type: 'presence', conversationId: gid }, 'presence')).online as string[]).includes(bId);
      await waitFor(shown, 5000, 'b shown online');
      const gone = a.next((f) => f.type === 'presence_changed' && f.userId === bId && f.online === false, true);
      await b0.close();
      await gone;
      const online = a.next((f) => f.type === 'presence_changed' && f.userId === bId && f.online === true, true);
      const b = await user(srv, bId);
      await online;
      const p = await expectReply(a, { type: 'presence', conversationId: gid }, 'presence');
      assert.deepEqual([...(p.online as string[])].sort(), [a.userId, b.userId].sort());
      const stranger = await user();
      assert.equal((await ask(stranger, { type: 'presence', conversationId: gid })).reason, 'forbidden');
      assert.equal((await ask(stranger, { type: 'presence', conversationId: randomUUID() })).reason, 'forbidden');
      const offline = a.next((f) => f.type === 'presence_changed' && f.userId === bId && f.online === false, true);
      await b.close();
      await offline;
      await dm(a, stranger, 'marker');
      assert.equal(ofType(stranger, 'presence_changed').filter((f) => f.userId === bId).length, 0);
    });

    test('set_presence hides a user (and presence.visible: false hides by default)', T, async () => {
      const a = await user();
      const b = await user();
      await dm(a, b);
      await dm(b, a, 'both have written: presence flows');
      // Every wait is bounded and named: a hang says where it stopped.
      const conv = String(ofType(b, 'chat_message')[0]!.conversationId);
      // b's connection is checked after chat.presenceDebounceMs (0 here: the next timer turn), but an
      // in-process round trip can beat even that, and a hide inside the debounce merges with the
      // connect into no change at all. Wait until b is shown online, so hiding is a real change.
      const shownOnline = async (): Promise<boolean> =>
        ((await expectReply(a, { type: 'presence', conversationId: conv }, 'presence')).online as string[]).includes(b.userId);
      await waitFor(shownOnline, 5000, 'b shown online');
      const hidden = a.next((f) => f.type === 'presence_changed' && f.userId === b.userId && f.online === false, true);
      const r = await within(expectReply(b, { type: 'set_presence', visible: false }, 'presence_updated'), 5000, 'presence_updated (hide)');
      assert.equal(r.visible, false);
      await within(hidden, 5000, `presence_changed offline at a (a saw ${JSON.stringify(ofType(a, 'presence_changed'))})`);
      assert.deepEqual((await within(expectReply(a, { type: 'presence', conversationId: conv }, 'presence'), 5000, 'presence reply')).online, [a.userId]);
      const shown = a.next((f) => f.type === 'presence_changed' && f.userId === b.userId && f.online === true, true);
      await within(expectReply(b, { type: 'set_presence', visible: true }, 'presence_updated'), 5000, 'presence_updated (show)');
      await within(shown, 5000, 'presence_changed online at a');

      const { srv: quiet } = await start({ presence: { visible: false } });
      const c = await user(quiet);
      const d = await user(quiet);
      const m = await within(dm(c, d), 5000, 'dm on the quiet server');
      assert.deepEqual((await within(expectReply(c, { type: 'presence', conversationId: m.conversationId }, 'presence'), 5000, 'presence reply (quiet)')).online, []);
    });

    test('flap: a reconnect within chat.presenceDebounceMs publishes nothing; one change is one frame per session', T, async () => {
      const { srv: deb } = await start({ chat: { presenceDebounceMs: 400 } });
      const watcher = await user(deb);
      const watcher2 = await user(deb, watcher.userId);
      const peerId = newUserId();
      // Two shared conversations: a group and a direct one — still one frame per change.
      const gid = await createGroup(watcher, [peerId]);
      const peer = await user(deb, peerId);
      await dm(peer, watcher);
      await watcher.next((f) => f.type === 'presence_changed' && f.userId === peerId && f.online === true);
      // Flap: closed and back well within the debounce.
      await peer.close();
      const back = await user(deb, peerId);
      const offline = watcher.next((f) => f.type === 'presence_changed' && f.userId === peerId && f.online === false, true);
      await back.close();
      await offline;
      await watcher2.next((f) => f.type === 'presence_changed' && f.userId === peerId && f.online === false);
      for (const w of [watcher, watcher2]) {
        const changes = ofType(w, 'presence_changed').filter((f) => f.userId === peerId).map((f) => f.online);
        assert.deepEqual(changes, [true, false], 'online once, offline once: the flap published nothing');
      }
      assert.ok(gid);
    });
  });
}

for (const backend of backends('rep')) suite(backend);
