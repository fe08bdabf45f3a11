/**
 * Coalesces receipt updates: at most one flush per (tenant, conversation, member) per window. The
 * first update of a quiet key flushes at once; later ones within the window are merged (highest
 * positions win) and flushed when it ends, which opens the next window. Per node: a member with
 * devices on two nodes may produce one flush per node per window.
 */
export interface ReceiptPositions {
  delivered?: number;
  read?: number;
}

export type ReceiptFlush = (tenantId: string, conversationId: string, userId: string, positions: ReceiptPositions) => void;

interface Slot {
  tenantId: string;
  conversationId: string;
  userId: string;
  pending: ReceiptPositions | undefined;
  timer: NodeJS.Timeout;
}

export class ReceiptCoalescer {
  readonly #slots = new Map<string, Slot>();

  constructor(
    private readonly windowMs: number,
    private readonly flush: ReceiptFlush,
  ) {}

  offer(tenantId: string, conversationId: string, userId: string, positions: ReceiptPositions): void {
    if (this.windowMs <= 0) {
      this.flush(tenantId, conversationId, userId, positions);
      return;
    }
    const key = `${tenantId}\u0000${conversationId}\u0000${userId}`;
    const slot = this.#slots.get(key);
    if (slot !== undefined) {
      slot.pending = merge(slot.pending, positions);
      return;
    }
    this.flush(tenantId, conversationId, userId, positions);
    this.#open(key, tenantId, conversationId, userId);
  }

  /** Pending updates go out now (a node shutting down must not leave the members' live view behind). */
  close(): void {
    const slots = [...this.#slots.values()];
    this.#slots.clear();
    for (const slot of slots) {
      clearTimeout(slot.timer);
      if (slot.pending !== undefined) this.flush(slot.tenantId, slot.conversationId, slot.userId, slot.pending);
    }
  }

  get size(): number {
    return this.#slots.size;
  }

  #open(key: string, tenantId: string, conversationId: string, userId: string): void {
    const timer = setTimeout(() => {
      const slot = this.#slots.get(key)!;
      this.#slots.delete(key);
      if (slot.pending === undefined) return;
      this.flush(tenantId, conversationId, userId, slot.pending);
      this.#open(key, tenantId, conversationId, userId);
    }, this.windowMs);
    timer.unref();
    this.#slots.set(key, { tenantId, conversationId, userId, pending: undefined, timer });
  }
}

function merge(a: ReceiptPositions | undefined, b: ReceiptPositions): ReceiptPositions {
  if (a === undefined) return { ...b };
  const out: ReceiptPositions = { ...a };
  if (b.delivered !== undefined) out.delivered = Math.max(out.delivered ?? 0, b.delivered);
  if (b.read !== undefined) out.read = Math.max(out.read ?? 0, b.read);
  return out;
}
