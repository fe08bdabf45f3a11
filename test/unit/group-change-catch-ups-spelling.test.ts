/**
 * The group-change catch-up window is once per 5 minutes for each change (docs/protocol.md). The
 * same change spelled differently — a user id's or conversation id's case, the order of userIds —
 * is the same change to the store, so it does not make every member read again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GroupService } from '../../src/chat/group-service.js';
import type { Identity } from '../../src/auth/token-verifier.js';
import type { Store } from '../../src/store/store.js';
import type { TimelinePublisher } from '../../src/chat/timeline-publisher.js';
import type { Outbox } from '../../src/chat/chat-service.js';

const GROUP = '11111111-1111-4111-8111-111111111111';
const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const X = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
const Y = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';
const who = (userId: string): Identity => ({ userId, role: undefined, tenantId: 't', expiresAt: Date.now() + 3600_000 });

function setup(clock: { now: number }) {
  const hinted: string[][] = [];
  const store = {
    removeMembers: async () => ({ status: 'unchanged' }),
    setRole: async () => ({ status: 'unchanged' }),
    membersIfMember: async () => [A, B],
  } as unknown as Store;
  const publisher = { catchUp: (_t: string, users: Iterable<string>) => void hinted.push([...users].sort()) } as unknown as TimelinePublisher;
  const outbox: Outbox = { send() {}, sendFrame() {}, isOpen: true } as unknown as Outbox;
  const service = new GroupService({ store, publisher, limits: { maxGroupMembers: 100, maxGroupsPerUser: 100 } as never, storeFailed() {}, now: () => clock.now });
  return { service, hinted, outbox };
}

test('the same remove_members retried with the ids in upper case / another order / the group id upper-cased spends one catch-up', async () => {
  const clock = { now: 1_000_000 };
  const { service, hinted, outbox } = setup(clock);
  await service.change(who(A), outbox, { type: 'remove_members', conversationId: GROUP, userIds: [X, Y], requestId: 'r1' } as never);
  assert.equal(hinted.length, 1);
  clock.now += 1000;
  await service.change(who(A), outbox, { type: 'remove_members', conversationId: GROUP, userIds: [X.toUpperCase(), Y], requestId: 'r2' } as never);
  clock.now += 1000;
  await service.change(who(A), outbox, { type: 'remove_members', conversationId: GROUP, userIds: [Y, X], requestId: 'r3' } as never);
  clock.now += 1000;
  await service.change(who(A), outbox, { type: 'remove_members', conversationId: GROUP.toUpperCase(), userIds: [X, Y], requestId: 'r4' } as never);
  clock.now += 1000;
  await service.change(who(A), outbox, { requestId: 'r5', userIds: [X, Y], conversationId: GROUP, type: 'remove_members' } as never);
  assert.equal(hinted.length, 1, `the same change, spelled differently, made the members read ${hinted.length} times within the window`);
});

test('the same set_role retried with the user id upper-cased spends one catch-up', async () => {
  const clock = { now: 1_000_000 };
  const { service, hinted, outbox } = setup(clock);
  await service.change(who(A), outbox, { type: 'set_role', conversationId: GROUP, userId: B, role: 'admin', requestId: 'r1' } as never);
  clock.now += 1000;
  await service.change(who(A), outbox, { type: 'set_role', conversationId: GROUP, userId: B.toUpperCase(), role: 'admin', requestId: 'r2' } as never);
  assert.equal(hinted.length, 1, 'set_role of B and of B upper-cased counted as two changes');
});
