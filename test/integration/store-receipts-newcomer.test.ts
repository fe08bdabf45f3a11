/**
 * Receipts (docs/protocol.md §6a): a conversation's `delivered`/`read` are the minimum over the other
 * current members — every one of them has these seqs. A member never receives the seqs before
 * their joined_seq (under since_join not even by history; under "all" they may read them, but were
 * never sent them), so they count as having them: at least joined_seq - 1, in the summary and in
 * the per-member detail. Otherwise a join (or a re-add, whose stored positions are from the earlier
 * membership) moves the ticks of older messages backwards, which "positions only grow" forbids.
 * Run on SQLite and PostgreSQL.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { storeBackends } from '../helpers/store-backends.js';
import { GL, T, change, msg as message, ok, send } from '../helpers/store-builders.js';
import type { Store } from '../../src/store/store.js';

const msg = (from: string, conversationId: string) => message(from, { conversationId });
/** Every device of `user` has everything, and `user` publicly read up to `seq`. */
async function receiveAndRead(s: Store, user: string, conversationId: string, seq: number): Promise<void> {
  await s.acknowledge(T, user, `${user}-phone`, 1_000_000);
  assert.ok((await s.updateRead(T, user, conversationId, seq, { private: false })) !== undefined);
}

for (const be of storeBackends('receipts-newcomer')) describe(be.name, () => {
  after(() => be.teardown());

  test(`${be.name}: a member added later counts as having every seq before they joined (summary and detail)`, async () => {
    const s = await be.open();
    try {
      const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
      const g = randomUUID();
      ok(await s.createGroup({ ...change(a, g), name: 'g', memberIds: [b] }, GL));
      await send(s, msg(b, g)); // b shares
      const m = await send(s, msg(a, g));
      await receiveAndRead(s, b, g, m.seq);
      const before = (await s.receipts(T, a, [g], 32)).get(g)!;
      assert.deepEqual({ delivered: before.delivered, read: before.read }, { delivered: m.seq, read: m.seq });

      const added = ok(await s.addMembers({ ...change(a, g), userIds: [c] }, GL));
      const hello = await send(s, msg(c, g)); // c shares, having acked and read nothing
      const later = (await s.receipts(T, a, [g], 32)).get(g)!;
      assert.ok(later.read >= before.read, `read moved backwards: ${before.read} -> ${later.read}`);
      assert.ok(later.delivered >= before.delivered, `delivered moved backwards: ${before.delivered} -> ${later.delivered}`);
      assert.equal(later.read, m.seq, 'b read up to m; c counts as having read everything before it joined');
      const cDetail = later.members?.find((x) => x.userId === c);
      assert.deepEqual(cDetail, { userId: c, delivered: added.seq - 1, read: added.seq - 1 }, 'c in the detail: at least joined_seq - 1');
      // … and in what a live `receipt` frame about c is built from (ReceiptService, Audience.positions).
      assert.deepEqual((await s.audienceOf(T, g, c))!.positions, { delivered: added.seq - 1, read: added.seq - 1 });

      // Positions past the floor are c's own: its ack and read move them as before.
      await receiveAndRead(s, c, g, hello.seq);
      const own = (await s.receipts(T, a, [g], 32)).get(g)!.members?.find((x) => x.userId === c);
      assert.deepEqual(own, { userId: c, delivered: hello.seq, read: hello.seq });
      // b's detail is untouched by the floor (b joined at seq 1).
      assert.deepEqual((await s.receipts(T, c, [g], 32)).get(g)!.members?.find((x) => x.userId === b), { userId: b, delivered: m.seq, read: m.seq });
      // Without detail (over detailMax), the summary is the same.
      const bare = (await s.receipts(T, a, [g], 0)).get(g)!;
      assert.deepEqual(bare, { delivered: later.delivered, read: later.read });
    } finally {
      await s.close();
    }
  });

  test(`${be.name}: a re-added member's positions from the earlier membership do not pull the minimum back`, async () => {
    const s = await be.open();
    try {
      const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
      const g = randomUUID();
      ok(await s.createGroup({ ...change(a, g), name: 'g', memberIds: [b, c] }, GL));
      await send(s, msg(b, g));
      await send(s, msg(c, g));
      const m1 = await send(s, msg(a, g));
      await receiveAndRead(s, b, g, m1.seq);
      await receiveAndRead(s, c, g, m1.seq);
      ok(await s.leaveGroup(change(b, g))); // b's stored positions stay at m1
      const m2 = await send(s, msg(a, g));
      await receiveAndRead(s, c, g, m2.seq);
      const before = (await s.receipts(T, a, [g], 32)).get(g)!;
      assert.deepEqual({ delivered: before.delivered, read: before.read }, { delivered: m2.seq, read: m2.seq }, 'c, the only other member, has m2');

      const readded = ok(await s.addMembers({ ...change(a, g), userIds: [b] }, GL));
      await send(s, msg(b, g)); // b shares again (a re-added member is a new writer)
      const later = (await s.receipts(T, a, [g], 32)).get(g)!;
      assert.equal(later.read, m2.seq, `read moved backwards to b's earlier position: ${before.read} -> ${later.read}`);
      assert.equal(later.delivered, m2.seq, `delivered moved backwards: ${before.delivered} -> ${later.delivered}`);
      assert.deepEqual(later.members?.find((x) => x.userId === b), { userId: b, delivered: readded.seq - 1, read: readded.seq - 1 });
    } finally {
      await s.close();
    }
  });
});
