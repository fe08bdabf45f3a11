/**
 * Outgoing chat messages until the server confirms them. Every send has a `clientMsgId` (the
 * server's idempotency key), so resending after a reconnect never stores a message twice; the
 * queue is bounded; `rate_limited` and `storage_unavailable` are retried, other errors reject.
 */
import { ErrorReason } from '../protocol/reasons.js';
import type { Attachment } from '../protocol/server-frames.js';

/** Where a message goes: a conversation, or a user (the direct conversation with them). */
export type Target = { conversationId: string } | { recipientId: string };

export interface OutgoingMessage {
  content: string;
  replyTo?: string;
  attachments?: Attachment[];
}

export interface SendReceipt {
  id: string;
  clientMsgId: string;
  conversationId: string;
  seq: number;
  timestamp: number;
}

/** A send the server refused for good; `reason` is the protocol's error reason. */
export class SendError extends Error {
  constructor(
    readonly reason: string,
    readonly clientMsgId: string,
  ) {
    super(`message not sent: ${reason}`);
    this.name = 'SendError';
  }
}

export interface PendingSend {
  clientMsgId: string;
  frame: Record<string, unknown>;
  /** On the wire of the current socket, not yet answered. */
  inFlight: boolean;
  /** Server-side failures retried so far (storage_unavailable). */
  retries: number;
  /** Not before this time (ms; after `rate_limited`). */
  notBefore: number;
  resolve(receipt: SendReceipt): void;
  reject(err: SendError): void;
}

/** Error reasons worth resending with the same `clientMsgId`. */
const RETRYABLE: ReadonlySet<string> = new Set([ErrorReason.STORAGE_UNAVAILABLE]);

export class SendQueue {
  private readonly pending = new Map<string, PendingSend>();

  constructor(
    private readonly maxPending: number,
    private readonly maxRetries: number,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /** Sends on the wire, not yet answered. */
  get inFlight(): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.inFlight) n++;
    return n;
  }

  has(clientMsgId: string): boolean {
    return this.pending.has(clientMsgId);
  }

  /** Queues a send; throws SendError('queue_full') past the bound. */
  add(clientMsgId: string, target: Target, message: OutgoingMessage): Promise<SendReceipt> {
    if (this.pending.size >= this.maxPending) return Promise.reject(new SendError('queue_full', clientMsgId));
    return new Promise((resolve, reject) => {
      const frame: Record<string, unknown> = { type: 'chat_message', ...target, content: message.content, clientMsgId };
      if (message.replyTo !== undefined) frame.replyTo = message.replyTo;
      if (message.attachments !== undefined) frame.attachments = message.attachments;
      this.pending.set(clientMsgId, { clientMsgId, frame, inFlight: false, retries: 0, notBefore: 0, resolve, reject });
    });
  }

  /** Sends not on the wire yet and due at `now`, oldest first. */
  due(now: number): PendingSend[] {
    return [...this.pending.values()].filter((p) => !p.inFlight && p.notBefore <= now);
  }

  /** The earliest time a waiting send becomes due, or undefined. */
  nextDue(): number | undefined {
    let next: number | undefined;
    for (const p of this.pending.values()) if (!p.inFlight && (next === undefined || p.notBefore < next)) next = p.notBefore;
    return next;
  }

  /** The socket is gone: everything unconfirmed goes out again on the next one. */
  requeueAll(): void {
    for (const p of this.pending.values()) p.inFlight = false;
  }

  confirm(receipt: SendReceipt): boolean {
    const p = this.pending.get(receipt.clientMsgId);
    if (!p) return false;
    this.pending.delete(receipt.clientMsgId);
    p.resolve(receipt);
    return true;
  }

  rateLimited(clientMsgId: string, retryAfterMs: number, now: number): void {
    const p = this.pending.get(clientMsgId);
    if (!p) return;
    p.inFlight = false;
    p.notBefore = now + Math.max(0, retryAfterMs);
  }

  /** An `error` answering a send: retry it later, or reject it for good. */
  failed(clientMsgId: string, reason: string, now: number, retryDelayMs: number): void {
    const p = this.pending.get(clientMsgId);
    if (!p) return;
    if (RETRYABLE.has(reason) && p.retries < this.maxRetries) {
      p.retries++;
      p.inFlight = false;
      p.notBefore = now + retryDelayMs;
      return;
    }
    this.pending.delete(clientMsgId);
    p.reject(new SendError(reason, clientMsgId));
  }

  rejectAll(reason: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(new SendError(reason, p.clientMsgId));
  }
}
