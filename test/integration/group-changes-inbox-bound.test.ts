/**
 * chat.maxInboxSize bounds a user's backlog for group membership events too (docs/protocol.md §6
 * "Bounds"): a change that does not name a member (a rename, someone else's role change, someone
 * else added, removed or leaving) skips a member at the bound, as a group message does — no
 * timeline entry, no delivery. A change that names them (their own add, removal, role change, the
 * ownership passed to them; the actor) always reaches them. Before, anyone able to put a user in
 * a group grew that user's unacknowledged backlog without limit (one entry per rename).
 *
 * The same scenario on SQLite and PostgreSQL (store level), then over a real server (the probe of
 * test/review/dlv-rename-past-inbox-bound.test.ts).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { Delivery, GroupChangeOutcome, GroupLimits, MembershipEvent } from '../../src/store/store.js';
import { PG_URL, authedClient, closeAll, newUserId, startServer } from '../helpers/harness.js';
import { backends } from '../helpers/storage-backends.js';

const T = 'default';
const MAX = 3;
const BOUND = { maxInboxSize: MAX };
const GL: GroupLimits & { maxInboxSize: number } = { maxGroupMembers: 100, maxGroupsPerUser: 100, maxInboxSize: MAX };

type BoundStore = SqliteStore | PostgresStore;

interface Backend {
  name: string;
  open(): Promise<BoundStore>;
  teardown(): Promise<void>;
}

function sqlite(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-bound-'));
  return {
    name: 'sqlite',
    async open() {
      const store = new SqliteStore(join(dir, 'store.db'));
      await store.init();
      return store;
    },
    async teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgres(): Backend {
  const schema = `rampart_test_${randomBytes(6).toString('hex')}`;
  let store: PostgresStore | undefined;
  return {
    name: 'postgres',
    async open() {
      store = new PostgresStore(PG_URL, { schema, pool: { max: 4, connectionTimeoutMillis: 5000 } });
      await store.init();
      return store;
    },
    async teardown() {
      const { default: pg } = await import('pg');
      const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
      try {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await admin.end();
      }
    },
  };
}

let clock = Date.now();
function v7(ms: number): string {
  const ts = ms.toString(16).padStart(12, '0');
  const r = randomUUID();
  return `${ts.slice(0, 8)}-${ts.slice(8, 12)}-7${r.slice(15, 18)}-${r.slice(19)}`;
}
function req(actorId: string): { tenantId: string; actorId: string; eventId: string; timestamp: number } {
  const timestamp = ++clock;
  return { tenantId: T, actorId, eventId: v7(timestamp), timestamp };
}

function ok(outcome: GroupChangeOutcome): { event: MembershipEvent; deliveries: Delivery[] } {
  assert.equal(outcome.status, 'ok', `expected ok, got ${JSON.stringify(outcome)}`);
  return outcome as { status: 'ok'; event: MembershipEvent; deliveries: Delivery[] };
}

const reached = (outcome: GroupChangeOutcome, user: string): boolean => ok(outcome).deliveries.some((d) => d.userId === user);

for (const make of [sqlite, postgres]) {
  describe(`group changes and chat.maxInboxSize (${make().name === 'sqlite' ? 'SQLite' : 'PostgreSQL'})`, () => {
    let backend: Backend;
    let store: BoundStore;
    before(async () => {
      backend = make();
      store = await backend.open();
    });
    after(async () => {
      await store?.close();
      await backend?.teardown();
    });

    /** The user's unacknowledged entries (acked: the position they acknowledged). */
    async function backlog(user: string, acked = 0): Promise<MembershipEvent[]> {
      const page = await store.timeline(T, user, acked, 1000);
      assert.equal(page.entries.length, page.lastPos - acked);
      return page.entries.map((e) => e.event as MembershipEvent);
    }

    test('renames stop at the bound for a member who never acks, and reach them again once they ack', async () => {
      const owner = randomUUID();
      const victim = randomUUID();
      const created = ok(await store.createGroup({ ...req(owner), conversationId: randomUUID(), name: 'g', memberIds: [victim] }, GL));
      const conversationId = created.event.conversationId;
      const outcomes: GroupChangeOutcome[] = [];
      for (let i = 0; i < 8; i++) outcomes.push(await store.renameGroup({ ...req(owner), conversationId, name: `name ${i}` }, BOUND));
      // The conversation moved on for everyone: one seq per rename, the owner got every one.
      assert.deepEqual(outcomes.map((o) => ok(o).event.seq), [2, 3, 4, 5, 6, 7, 8, 9]);
      assert.ok(outcomes.every((o) => reached(o, owner)));
      assert.deepEqual(outcomes.map((o) => reached(o, victim)), [true, true, false, false, false, false, false, false]);
      const events = await backlog(victim);
      assert.ok(events.length <= MAX, `victim backlog is ${events.length} entries, past maxInboxSize ${MAX}`);
      assert.deepEqual(events.map((e) => e.action), ['created', 'renamed', 'renamed']);
      // Their conversation list shows the current name all the same.
      const list = await store.listConversations(T, victim, { limit: 10 });
      assert.equal(list.conversations.find((c) => c.conversationId === conversationId)?.name, 'name 7');

      // After an ack, renames reach the victim again, up to the bound.
      const acked = await store.ack(T, victim, undefined, 3);
      assert.equal(acked, 3);
      const again = ok(await store.renameGroup({ ...req(owner), conversationId, name: 'after ack' }, BOUND));
      assert.ok(again.deliveries.some((d) => d.userId === victim && d.pos === 4));
      assert.deepEqual((await backlog(victim, 3)).map((e) => e.name), ['after ack']);
    });

    test('a change that names a member at the bound reaches them; one about someone else does not', async () => {
      const owner = randomUUID();
      const victim = randomUUID();
      const other = randomUUID();
      const newcomer = randomUUID();
      const created = ok(await store.createGroup({ ...req(owner), conversationId: randomUUID(), name: 'g', memberIds: [victim, other] }, GL));
      const conversationId = created.event.conversationId;
      for (let i = 0; i < 4; i++) await store.renameGroup({ ...req(owner), conversationId, name: `n${i}` }, BOUND);
      assert.equal((await backlog(victim)).length, MAX);
      assert.equal((await backlog(other)).length, MAX);

      // About someone else: skipped.
      assert.equal(reached(await store.setRole({ ...req(owner), conversationId, userId: other, role: 'admin' }, BOUND), victim), false);
      const add = await store.addMembers({ ...req(owner), conversationId, userIds: [newcomer] }, GL);
      assert.equal(reached(add, victim), false);
      assert.equal(reached(add, newcomer), true);
      assert.equal(reached(await store.removeMembers({ ...req(owner), conversationId, userIds: [newcomer] }, BOUND), victim), false);
      assert.equal((await backlog(victim)).length, MAX);

      // Naming the victim: always delivered (their own role change, removal, add).
      assert.equal(reached(await store.setRole({ ...req(owner), conversationId, userId: victim, role: 'admin' }, BOUND), victim), true);
      assert.equal(reached(await store.removeMembers({ ...req(owner), conversationId, userIds: [victim] }, BOUND), victim), true);
      assert.equal(reached(await store.addMembers({ ...req(owner), conversationId, userIds: [victim] }, GL), victim), true);
      const actions = (await backlog(victim)).map((e) => e.action);
      assert.deepEqual(actions.slice(MAX), ['role_changed', 'removed', 'added']);

      // A member at the bound who acts gets their own event (`other` is an admin now).
      assert.equal(reached(await store.renameGroup({ ...req(other), conversationId, name: 'by other' }, BOUND), other), true);
      // The owner leaving names the heir (the admin `other`): they learn of it; the victim does not.
      const left = await store.leaveGroup({ ...req(owner), conversationId }, BOUND);
      assert.equal(ok(left).event.newOwnerId, other);
      assert.equal(reached(left, owner), true);
      assert.equal(reached(left, other), true);
      assert.equal(reached(left, victim), false);
    });

    test('without a bound (callers that pass none), every member gets every change as before', async () => {
      const owner = randomUUID();
      const victim = randomUUID();
      const created = ok(await store.createGroup({ ...req(owner), conversationId: randomUUID(), name: 'g', memberIds: [victim] }, { maxGroupMembers: 100, maxGroupsPerUser: 100 }));
      for (let i = 0; i < 5; i++) await store.renameGroup({ ...req(owner), conversationId: created.event.conversationId, name: `n${i}` });
      assert.equal((await backlog(victim)).length, 6);
    });
  });
}

// The probe, over a real server on both storage backends.
for (const backend of backends('gbound')) {
  describe(`rename_group over the wire and chat.maxInboxSize (${backend.name})`, () => {
    before(() => backend.setup());
    after(() => backend.teardown());

    test('renames of a group do not grow a member backlog past chat.maxInboxSize', { timeout: 30_000 }, async () => {
      const srv = await startServer({ storage: backend.allocate().storage, chat: { maxInboxSize: 3 } });
      const victim = newUserId();
      const owner = await authedClient(srv.url);
      try {
        owner.send({ type: 'create_group', name: 'g', memberIds: [victim], requestId: 'c' });
        const created = await owner.next((f) => f.type === 'group_updated' && f.requestId === 'c');
        const conversationId = created.conversationId as string;
        for (let i = 0; i < 8; i++) {
          owner.send({ type: 'rename_group', conversationId, name: `name ${i}`, requestId: `r${i}` });
          const r = await owner.next((f) => (f.type === 'group_updated' || f.type === 'error') && f.requestId === `r${i}`);
          assert.equal(r.type, 'group_updated');
        }
        // The victim comes online (new device, nothing acked): lastPos - resumeAfter is the backlog.
        const v = await authedClient(srv.url, victim);
        const auth = v.frames.find((f) => f.type === 'auth_success')!;
        const backlog = (auth.lastPos as number) - (auth.resumeAfter as number);
        await closeAll(v);
        assert.ok(backlog <= 3, `victim backlog is ${backlog} entries, past chat.maxInboxSize 3`);
      } finally {
        await closeAll(owner);
        await srv.close();
      }
    });
  });
}
