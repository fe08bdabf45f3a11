/**
 * Group conversations: create, add and remove members, leave, rename, change roles. Every rule
 * (who may do what, the size bounds) is decided by the Store inside one transaction, so it holds
 * on every node at once; this service builds the request, answers the actor and publishes the
 * membership event to every timeline it was appended to (the removed members' included).
 */
import { randomUUID } from 'node:crypto';
import { messageId } from './message-id.js';
import type { GroupChangeOutcome, GroupLimits, Store } from '../store/store.js';
import type { GroupChangeFrame } from '../protocol/client-frames.js';
import type { Identity } from '../auth/token-verifier.js';
import type { Outbox } from './chat-service.js';
import type { TimelinePublisher } from './timeline-publisher.js';
import { withRequestId } from './replies.js';
import { DuplicateCatchUps } from './duplicate-catch-ups.js';

export interface GroupServiceOptions {
  store: Store;
  publisher: TimelinePublisher;
  limits: GroupLimits;
  storeFailed(err: unknown): void;
  now?: () => number;
}

export class GroupService {
  private readonly now: () => number;
  readonly #repeats: DuplicateCatchUps;

  constructor(private readonly opts: GroupServiceOptions) {
    this.now = opts.now ?? Date.now;
    this.#repeats = new DuplicateCatchUps({ store: opts.store, publisher: opts.publisher, onError: opts.storeFailed, now: this.now });
  }

  /** `name`: the frame's name already sanitized (create_group, rename_group). */
  async change(actor: Identity, outbox: Outbox, frame: GroupChangeFrame, name?: string): Promise<void> {
    const now = this.now();
    const base = { tenantId: actor.tenantId, actorId: actor.userId, eventId: messageId(now), timestamp: now };
    const { store, limits } = this.opts;
    const lower = (ids: readonly string[]): string[] => ids.map((id) => id.toLowerCase());
    let conversationId = frame.type === 'create_group' ? randomUUID() : frame.conversationId.toLowerCase();
    let outcome: GroupChangeOutcome;
    try {
      switch (frame.type) {
        case 'create_group':
          outcome = await store.createGroup(
            { ...base, conversationId, name: name!, memberIds: lower(frame.memberIds), ...(frame.clientMsgId !== undefined ? { clientMsgId: frame.clientMsgId } : {}) },
            limits,
          );
          break;
        case 'add_members':
          outcome = await store.addMembers({ ...base, conversationId, userIds: lower(frame.userIds) }, limits);
          break;
        case 'remove_members':
          outcome = await store.removeMembers({ ...base, conversationId, userIds: lower(frame.userIds) }, limits);
          break;
        case 'leave_group':
          outcome = await store.leaveGroup({ ...base, conversationId }, limits);
          break;
        case 'rename_group':
          outcome = await store.renameGroup({ ...base, conversationId, name: name! }, limits);
          break;
        case 'set_role':
          outcome = await store.setRole({ ...base, conversationId, userId: frame.userId.toLowerCase(), role: frame.role }, limits);
          break;
      }
    } catch (err) {
      this.opts.storeFailed(err);
      outbox.sendFrame(withRequestId({ type: 'error', reason: 'storage_unavailable', ...keyOf(frame) }, frame.requestId));
      return;
    }
    switch (outcome.status) {
      case 'ok':
        conversationId = outcome.event.conversationId;
        outbox.sendFrame(withRequestId({ type: 'group_updated', conversationId, changed: true, seq: outcome.event.seq }, frame.requestId));
        this.opts.publisher.publish(actor.tenantId, outcome.event, outcome.deliveries);
        return;
      case 'duplicate':
        // A create resent with its key: the group the first one made. Its answer may have been
        // lost before it was published, so the members read their timelines (DuplicateCatchUps).
        outbox.sendFrame(withRequestId({ type: 'group_updated', conversationId: outcome.event.conversationId, changed: false, seq: outcome.event.seq }, frame.requestId));
        await this.#repeats.after(actor, outcome.event);
        return;
      case 'unchanged':
        outbox.sendFrame(withRequestId({ type: 'group_updated', conversationId, changed: false }, frame.requestId));
        // Perhaps the retry of a change whose answer was lost before it was published.
        if (frame.type !== 'create_group') await this.#repeats.afterRepeatedChange(actor, conversationId, describe(frame), namedBy(frame), false);
        return;
      default:
        outbox.sendFrame(withRequestId({ type: 'error', reason: outcome.status, ...keyOf(frame) }, frame.requestId));
        // A leave's retry finds the actor gone: the leave may be the one whose answer was lost.
        if (frame.type === 'leave_group' && outcome.status === 'forbidden') await this.#repeats.afterRepeatedChange(actor, conversationId, describe(frame), [], true);
    }
  }
}

/** The users a change names besides the members (a removed member is one no longer). */
function namedBy(frame: GroupChangeFrame): string[] {
  if (frame.type === 'add_members' || frame.type === 'remove_members') return frame.userIds.map((id) => id.toLowerCase());
  if (frame.type === 'set_role') return [frame.userId.toLowerCase()];
  return [];
}

/**
 * Which change a frame asks for, as the store reads it (ids in any case, a set of members in any
 * order), so each repeat of it describes it alike. The conversation is keyed apart.
 */
function describe(frame: GroupChangeFrame): string {
  switch (frame.type) {
    case 'add_members':
    case 'remove_members':
      return `${frame.type} ${[...new Set(frame.userIds.map((id) => id.toLowerCase()))].sort().join(',')}`;
    case 'set_role':
      return `${frame.type} ${frame.userId.toLowerCase()} ${frame.role}`;
    case 'rename_group':
      return `${frame.type} ${frame.name}`;
    default:
      return frame.type;
  }
}

/** A create's refusal names its `clientMsgId`, as a message's does (no other group change has one). */
function keyOf(frame: GroupChangeFrame): { clientMsgId?: string } {
  return frame.type === 'create_group' && frame.clientMsgId !== undefined ? { clientMsgId: frame.clientMsgId } : {};
}
