/**
 * Receipts: a member's `delivered` (some device acknowledged past it) and public `read` positions
 * go live, as `receipt` frames, to the other current members of the conversation — coalesced
 * (`chat.receiptCoalesceMs`), membership read again at each flush so a removed member stops
 * receiving them. With `chat.receipts: "off"` nothing is sent and nothing is listed.
 */
import type { Bus } from '../bus/bus.js';
import type { ConversationReceipts, Store } from '../store/store.js';
import type { ReceiptsInfo } from '../protocol/server-frames.js';
import { peerKey } from './authorization.js';
import { ReceiptCoalescer, type ReceiptPositions } from './receipt-coalescer.js';

export interface ReceiptServiceOptions {
  store: Store;
  bus: Bus;
  enabled: boolean;
  coalesceMs: number;
  membersMax: number;
  onError(err: unknown): void;
}

export class ReceiptService {
  readonly #coalescer: ReceiptCoalescer;
  /**
   * The last send of each (tenant, conversation, member) still running: the next one waits for it.
   * A send awaits storage before it publishes, and storage may answer two of them out of order
   * (a pool of connections), which would publish a member's positions backwards.
   */
  readonly #sending = new Map<string, Promise<void>>();

  constructor(private readonly opts: ReceiptServiceOptions) {
    this.#coalescer = new ReceiptCoalescer(opts.coalesceMs, (t, c, u, p) => this.#inOrder(t, c, u, p));
  }

  get enabled(): boolean {
    return this.opts.enabled;
  }

  /** The member's delivered positions moved (an ack). */
  delivered(tenantId: string, userId: string, advances: readonly { conversationId: string; delivered: number }[]): void {
    if (!this.opts.enabled) return;
    for (const a of advances) this.#coalescer.offer(tenantId, a.conversationId, userId, { delivered: a.delivered });
  }

  /** The member's public read position moved. */
  read(tenantId: string, userId: string, conversationId: string, read: number): void {
    if (this.opts.enabled) this.#coalescer.offer(tenantId, conversationId, userId, { read });
  }

  /** Current receipt positions for the caller's conversations (empty when receipts are off). */
  async positions(tenantId: string, userId: string, conversationIds: readonly string[]): Promise<Map<string, ReceiptsInfo>> {
    if (!this.opts.enabled || conversationIds.length === 0) return new Map();
    const found: Map<string, ConversationReceipts> = await this.opts.store.receipts(tenantId, userId, conversationIds, this.opts.membersMax);
    return found;
  }

  /**
   * The member wrote in the conversation for the first time: from now on they share (§6a), so the
   * other members are told the positions already stored — a read made before the first message
   * went nowhere then, and no later frame would carry it until the member reads again.
   */
  shared(tenantId: string, userId: string, conversationId: string): void {
    if (this.opts.enabled) this.#inOrder(tenantId, conversationId, userId, { delivered: 0, read: 0 });
  }

  /** Sends what the coalescer still holds and waits for every send under way. */
  async close(): Promise<void> {
    this.#coalescer.close();
    await Promise.all(this.#sending.values());
  }

  #inOrder(tenantId: string, conversationId: string, userId: string, p: ReceiptPositions): void {
    const key = `${tenantId}\u0000${conversationId}\u0000${userId}`;
    const before = this.#sending.get(key);
    const send = (): Promise<void> =>
      this.#send(tenantId, conversationId, userId, p).catch((err: unknown) => {
        try {
          this.opts.onError(err);
        } catch {
          // a failing error handler must not break this member's line of sends
        }
      });
    const tail = before === undefined ? send() : before.then(send);
    this.#sending.set(key, tail);
    void tail.then(() => {
      if (this.#sending.get(key) === tail) this.#sending.delete(key);
    });
  }

  async #send(tenantId: string, conversationId: string, userId: string, p: ReceiptPositions): Promise<void> {
    const audience = await this.opts.store.audienceOf(tenantId, conversationId, userId);
    // Nobody learns the positions of a member who has not written here yet (store.ts, Audience).
    if (audience === undefined || !audience.sharing.includes(userId)) return;
    const members = audience.members;
    // Storage's positions only grow, and may have grown past these meanwhile (this member's
    // other devices, on another node): send what is stored, so a flush held for the window
    // does not send a position below one another node published in between.
    const stored = audience.positions;
    const delivered = p.delivered === undefined ? 0 : Math.max(p.delivered, stored.delivered);
    const read = p.read === undefined ? 0 : Math.max(p.read, stored.read);
    if (delivered === 0 && read === 0) return; // nothing to tell (positions start at 1)
    const frame = JSON.stringify({
      type: 'receipt',
      conversationId,
      userId,
      ...(delivered > 0 ? { delivered } : {}),
      ...(read > 0 ? { read } : {}),
    });
    for (const m of members) if (m !== userId) this.opts.bus.publish(peerKey(tenantId, m), frame);
  }
}
