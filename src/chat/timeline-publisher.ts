/**
 * Fan-out of a stored event to the timelines it was appended to: one bus frame per user, each with
 * that user's `pos`. The event is serialized once; each frame only prepends its position.
 */
import type { Bus } from '../bus/bus.js';
import type { ConversationEvent, Delivery } from '../store/store.js';
import { peerKey } from './authorization.js';
import { CATCH_UP_HINT, eventBody, timelineFrame } from './timeline-frames.js';

/** Bus keys kept at most (then the cache starts over): a few MB at worst. */
const MAX_KEYS = 50_000;

export class TimelinePublisher {
  /**
   * Bus keys by tenant and user. A key built per delivery is a new string the bus and the session
   * registry must each hash; a kept one carries its hash (the user ids of a group's deliveries are
   * the store's cached strings, found without hashing too). Fan-out to a 100-member group spent
   * ~8 % of the server's time on those hashes.
   */
  readonly #keys = new Map<string, Map<string, string>>();
  #keyCount = 0;

  constructor(private readonly bus: Bus) {}

  publish(tenantId: string, event: ConversationEvent, deliveries: readonly Delivery[]): void {
    if (deliveries.length === 0) return;
    const body = eventBody(event);
    const keys = this.#keysOf(tenantId);
    for (const d of deliveries) {
      let key = keys.get(d.userId);
      if (key === undefined) {
        key = peerKey(tenantId, d.userId);
        keys.set(d.userId, key);
        this.#keyCount++;
      }
      this.bus.publish(key, timelineFrame(d.pos, body));
    }
  }

  #keysOf(tenantId: string): Map<string, string> {
    if (this.#keyCount >= MAX_KEYS) {
      this.#keys.clear();
      this.#keyCount = 0;
    }
    let keys = this.#keys.get(tenantId);
    if (keys === undefined) this.#keys.set(tenantId, (keys = new Map()));
    return keys;
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
