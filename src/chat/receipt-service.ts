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

  constructor(private readonly opts: ReceiptServiceOptions) {
    this.#coalescer = new ReceiptCoalescer(opts.coalesceMs, (t, c, u, p) => void this.#send(t, c, u, p).catch(opts.onError));
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

  close(): void {
    this.#coalescer.close();
  }

  async #send(tenantId: string, conversationId: string, userId: string, p: ReceiptPositions): Promise<void> {
    const audience = await this.opts.store.audienceOf(tenantId, conversationId, userId);
    // Nobody learns the positions of a member who has not written here yet (store.ts, Audience).
    if (audience === undefined || !audience.sharing.includes(userId)) return;
    const members = audience.members;
    const frame = JSON.stringify({
      type: 'receipt',
      conversationId,
      userId,
      ...(p.delivered !== undefined ? { delivered: p.delivered } : {}),
      ...(p.read !== undefined ? { read: p.read } : {}),
    });
    for (const m of members) if (m !== userId) this.opts.bus.publish(peerKey(tenantId, m), frame);
  }
}
