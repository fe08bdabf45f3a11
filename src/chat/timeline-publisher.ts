/**
 * Fan-out of a stored event to the timelines it was appended to: one bus frame per user, each with
 * that user's `pos`. The event is serialized once; each frame only prepends its position.
 */
import type { Bus } from '../bus/bus.js';
import type { ConversationEvent, Delivery } from '../store/store.js';
import { peerKey } from './authorization.js';
import { CATCH_UP_HINT, eventBody, timelineFrame } from './timeline-frames.js';

export class TimelinePublisher {
  constructor(private readonly bus: Bus) {}

  publish(tenantId: string, event: ConversationEvent, deliveries: readonly Delivery[]): void {
    if (deliveries.length === 0) return;
    const body = eventBody(event);
    for (const d of deliveries) this.bus.publish(peerKey(tenantId, d.userId), timelineFrame(d.pos, body));
  }

  /**
   * The sessions of these users, on every node, read their timelines from storage. For an event
   * that may be committed without having been published: a resend answered as a duplicate can
   * follow a commit whose reply was lost (the sender got storage_unavailable, nothing went out).
   */
  catchUp(tenantId: string, userIds: Iterable<string>): void {
    for (const userId of userIds) this.bus.publish(peerKey(tenantId, userId), CATCH_UP_HINT);
  }
}
