/**
 * Fan-out of a stored event to the timelines it was appended to: one bus frame per user, each with
 * that user's `pos`. The event is serialized once; each frame only prepends its position.
 */
import type { Bus } from '../bus/bus.js';
import type { ConversationEvent, Delivery } from '../store/store.js';
import { peerKey } from './authorization.js';
import { eventBody, timelineFrame } from './timeline-frames.js';

export class TimelinePublisher {
  constructor(private readonly bus: Bus) {}

  publish(tenantId: string, event: ConversationEvent, deliveries: readonly Delivery[]): void {
    if (deliveries.length === 0) return;
    const body = eventBody(event);
    for (const d of deliveries) this.bus.publish(peerKey(tenantId, d.userId), timelineFrame(d.pos, body));
  }
}
