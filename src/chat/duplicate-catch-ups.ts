/**
 * A resend answered as a duplicate (ChatService, MessageChangeService): the first attempt may have
 * committed without being published (its answer lost), so the conversation's members read their
 * timelines from storage. That happens within minutes of the commit: so only for an event stored
 * within `windowMs`, and once per event per window. A client replaying an old key, or the same key
 * over and over, costs no member a read.
 */
import { createHash } from 'node:crypto';
import type { Identity } from '../auth/token-verifier.js';
import type { Store } from '../store/store.js';
import type { TimelinePublisher } from './timeline-publisher.js';

export interface DuplicateCatchUpsOptions {
  store: Pick<Store, 'membersIfMember'>;
  publisher: Pick<TimelinePublisher, 'catchUp'>;
  /** The member lookup failed (best effort: the members' next event or reconnect reads the gap). */
  onError(err: unknown): void;
  windowMs?: number;
  now?: () => number;
  /** Events remembered at most (then forgotten all at once: a few extra reads, never a missed one). */
  maxRemembered?: number;
}

/** What the hint needs of the first event: its id, when it was stored, where. */
export interface DuplicatedEvent {
  id: string;
  timestamp: number;
  conversationId: string;
}

export class DuplicateCatchUps {
  readonly #hinted = new Map<string, number>();
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #maxRemembered: number;

  constructor(private readonly o: DuplicateCatchUpsOptions) {
    this.#windowMs = o.windowMs ?? 300_000;
    this.#now = o.now ?? Date.now;
    this.#maxRemembered = o.maxRemembered ?? 10_000;
  }

  /** `actor` resent `event`'s key: its conversation's members read their timelines, if it is due. */
  async after(actor: Identity, event: DuplicatedEvent): Promise<void> {
    if (!this.shouldCatchUp(event.id, event.timestamp)) return;
    try {
      const members = await this.o.store.membersIfMember(actor.tenantId, event.conversationId, actor.userId);
      if (members !== undefined) this.o.publisher.catchUp(actor.tenantId, members);
    } catch (err) {
      this.o.onError(err);
    }
  }

  /**
   * A group change answered `unchanged` (a leave: `forbidden`) may repeat one that committed
   * without being published (no key tells): the conversation's members, and the users the change
   * named, read their timelines — once per window for each change (`change` describes it), so a
   * different change, or another actor's, is never skipped. The window is spent only once the
   * members were found: a stranger's frames or a storage blip take nobody's catch-up away.
   * `formerToo`: the actor may have left by the change (a leave), so they need not be a member now.
   */
  async afterRepeatedChange(actor: Identity, conversationId: string, change: string, named: readonly string[], formerToo: boolean): Promise<void> {
    // Hashed: a change names up to 256 users (~9.5 KB of text), and up to maxRemembered are kept.
    const key = createHash('sha256').update(`group ${actor.tenantId} ${conversationId} ${actor.userId} ${change}`).digest('base64');
    if (this.#recentlyHinted(key, this.#now())) return;
    try {
      const members = await this.o.store.membersIfMember(actor.tenantId, conversationId, actor.userId, { formerToo });
      // Not a member, nor (for a leave) a former one (or the group closed with the leave): only
      // the actor's own sessions read, which tells them nothing about anyone.
      if (members === undefined) {
        if (formerToo) this.o.publisher.catchUp(actor.tenantId, [actor.userId]);
        return;
      }
      this.#remember(key, this.#now());
      this.o.publisher.catchUp(actor.tenantId, new Set([...members, ...named, actor.userId]));
    } catch (err) {
      this.o.onError(err);
    }
  }

  /** True when the duplicate of `eventId`, stored at `storedAt` (ms), should make the members read. */
  shouldCatchUp(eventId: string, storedAt: number): boolean {
    const now = this.#now();
    if (now - storedAt > this.#windowMs || this.#recentlyHinted(eventId, now)) return false;
    this.#remember(eventId, now);
    return true;
  }

  #recentlyHinted(key: string, now: number): boolean {
    const last = this.#hinted.get(key);
    return last !== undefined && now - last < this.#windowMs;
  }

  #remember(key: string, now: number): void {
    if (this.#hinted.size >= this.#maxRemembered) this.#hinted.clear();
    this.#hinted.set(key, now);
  }
}
