/**
 * Catch-ups after a group change's lost answer (GroupService, DuplicateCatchUps.afterRepeatedChange)
 * are limited per change, not per conversation: one retry's catch-up never swallows a different,
 * later change's in the same conversation, and a non-member's frames spend nothing.
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
const who = (userId: string): Identity => ({ userId, role: undefined, tenantId: 't', expiresAt: Date.now() + 3600_000 });

function setup(clock: { now: number }, outsiders: Set<string> = new Set()) {
  const hinted: string[][] = [];
  const store = {
    renameGroup: async () => ({ status: 'unchanged' }),
    addMembers: async () => ({ status: 'unchanged' }),
    removeMembers: async () => ({ status: 'unchanged' }),
    leaveGroup: async () => ({ status: 'forbidden' }),
    membersIfMember: async (_t: string, _c: string, userId: string) => (outsiders.has(userId) ? undefined : [A, B]),
  } as unknown as Store;
  const publisher = { catchUp: (_t: string, users: Iterable<string>) => void hinted.push([...users].sort()) } as unknown as TimelinePublisher;
  const outbox: Outbox = { send() {}, sendFrame() {}, isOpen: true } as unknown as Outbox;
  const service = new GroupService({ store, publisher, limits: { maxGroupMembers: 100, maxGroupsPerUser: 100 } as never, storeFailed() {}, now: () => clock.now });
  return { service, hinted, outbox };
}

test('a second, different change retried in the same conversation still makes its users catch up (X, whom B removed, learns it)', async () => {
  const clock = { now: 1_000_000 };
  const { service, hinted, outbox } = setup(clock);
  // A retries a rename whose answer was lost: members catch up.
  await service.change(who(A), outbox, { type: 'rename_group', conversationId: GROUP, name: 'n', requestId: 'r1' } as never, 'n');
  assert.equal(hinted.length, 1);
  // 10 s later B's remove of X commits, its answer (and publish) is lost; B retries.
  clock.now += 10_000;
  await service.change(who(B), outbox, { type: 'remove_members', conversationId: GROUP, userIds: [X], requestId: 'r2' } as never);
  assert.equal(hinted.length, 2, 'the retry of B\'s change made nobody read: X never learns it was removed');
  assert.ok(hinted[1]!.includes(X));
});

test('a non-member sending leave_group does not take away a member\'s catch-up', async () => {
  const clock = { now: 1_000_000 };
  const { service, hinted, outbox } = setup(clock, new Set([X]));
  await service.change(who(X), outbox, { type: 'leave_group', conversationId: GROUP, requestId: 'r1' } as never);
  clock.now += 1000;
  await service.change(who(A), outbox, { type: 'rename_group', conversationId: GROUP, name: 'n', requestId: 'r2' } as never, 'n');
  assert.ok(hinted.some((h) => h.includes(A) && h.includes(B)), 'an outsider\'s leave_group used up the conversation\'s catch-up');
});
