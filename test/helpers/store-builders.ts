/**
 * Builders for Store-level tests on either backend (test/helpers/store-backends.ts): messages,
 * group changes and the assertions that unwrap their outcomes. Timestamps come from one counter,
 * so ids (UUIDv7 of the timestamp) and event times are increasing and distinct within a run.
 */
import assert from 'node:assert/strict';
import { messageId } from '../../src/chat/message-id.js';
import type { GroupChangeOutcome, MembershipEvent, NewMessage, Store, StoredMessage } from '../../src/store/store.js';

export const T = 'default';
export const OPTS = { maxInboxSize: 1000 };
export const GL = { maxGroupMembers: 10, maxGroupsPerUser: 10 };

let clock = Date.now();
/** The next timestamp (ms): increasing, distinct. */
export const now = (): number => ++clock;

/** A message `from` → `to` (`{conversationId}` or `{peerId}`) at the next timestamp. */
export function msg(from: string, to: NewMessage['to'], content = `m ${clock}`): NewMessage {
  const ts = now();
  return { id: messageId(ts), tenantId: T, senderId: from, to, timestamp: ts, content, mentions: [], hashtags: [], links: [] };
}

/** Stores `m` and returns it as stored (asserting it was). */
export async function send(s: Store, m: NewMessage): Promise<StoredMessage> {
  const [out] = await s.appendMessages([m], OPTS);
  assert.equal(out?.status, 'stored');
  return (out as { message: StoredMessage }).message;
}

/** The common fields of a group change by `actorId` in `conversationId`. */
export function change(actorId: string, conversationId: string, tenantId = T) {
  const ts = now();
  return { tenantId, actorId, eventId: messageId(ts), timestamp: ts, conversationId };
}

/** The event of a change that must have been applied. */
export function ok(outcome: GroupChangeOutcome): MembershipEvent {
  assert.equal(outcome.status, 'ok', JSON.stringify(outcome));
  return (outcome as { event: MembershipEvent }).event;
}
