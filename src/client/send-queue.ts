/**
 * Outgoing chat messages, edits and deletes until the server confirms them. Every one has a
 * `clientMsgId` (the server's idempotency key, shared by the three frames), so resending after a
 * reconnect never stores anything twice; the queue is bounded; `rate_limited` and
 * `storage_unavailable` are retried, other errors reject. The queue is FIFO: a send to retry keeps
 * its place, and the wait before the retry is the client's (flow-control.ts `SendGate.hold`), shared
 * by every send, so none overtakes an older one.
 */
import { ErrorReason } from '../protocol/reasons.js';
import type { Attachment } from '../protocol/server-frames.js';

/** Where a message goes: a conversation, or a user (the direct conversation with them). */
export type Target = { conversationId: string } | { recipientId: string };

/**
 * The target's own key, and nothing else, for the frame: the schemas are strict, and an object
 * with more fields (a conversation from `listConversations()`, say) would put keys on the wire that
 * the server refuses without naming the frame. Call it on a target `targetProblem` accepted.
 */
export function wireTarget(target: Target): Target {
  const t = target as { conversationId?: string; recipientId?: string };
  return t.conversationId !== undefined ? { conversationId: t.conversationId } : { recipientId: String(t.recipientId) };
}

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

/** The server's answer to an edit or delete (`message_changed`). */
export interface ChangeReceipt {
  action: 'edited' | 'deleted';
  messageId: string;
  clientMsgId: string;
  conversationId: string;
  /** The edit/delete event's seq; absent when a delete found a tombstone already. */
  seq?: number;
}

/** What the queue carries: a message, or a change of one (told apart by the frame's type). */
export type QueuedKind = 'chat_message' | 'edit_message' | 'delete_message';

/** A send the server refused for good; `reason` is the protocol's error reason. */
export class SendError extends Error {
  constructor(
    readonly reason: string,
    readonly clientMsgId: string,
    /** For `validation_failed` (found before sending, or the server's `details`): which field, and the rule (never its value). */
    readonly detail?: string,
  ) {
    super(`message not sent: ${reason}${detail === undefined ? '' : ` (${detail})`}`);
    this.name = 'SendError';
  }
}

export interface PendingSend {
  clientMsgId: string;
  kind: QueuedKind;
  frame: Record<string, unknown>;
  /** The frame as sent (serialized once), and its size in UTF-8 bytes. */
  text: string;
  bytes: number;
  /** On the wire of the current socket, not yet answered. */
  inFlight: boolean;
  /** Server-side failures retried so far (storage_unavailable). */
  retries: number;
  resolve(receipt: SendReceipt | ChangeReceipt): void;
  reject(err: SendError): void;
}

/** Bytes of `s` in UTF-8 (what the server's frame limit counts); JSON text has no lone surrogates. */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    n += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2; // 2 bytes; a surrogate pair 4 (2 per unit); else 3
  }
  return n;
}

/** Error reasons worth resending with the same `clientMsgId`. */
const RETRYABLE: ReadonlySet<string> = new Set([ErrorReason.STORAGE_UNAVAILABLE]);

export class SendQueue {
  private readonly pending = new Map<string, PendingSend>();

  constructor(
    private readonly maxPending: number,
    private readonly maxRetries: number,
    /** The server's frame size limit: a larger frame would close the socket (1009), so it is refused here. */
    private readonly maxFrameBytes = 65_536,
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

  /** Queues a message; rejects with SendError('queue_full') past the bound. */
  add(clientMsgId: string, target: Target, message: OutgoingMessage): Promise<SendReceipt> {
    const frame: Record<string, unknown> = { type: 'chat_message', ...wireTarget(target), content: message.content, clientMsgId };
    if (message.replyTo !== undefined) frame.replyTo = message.replyTo;
    // Only the keys the server's (strict) schema knows: an object with more would be refused without naming the send.
    if (message.attachments !== undefined) frame.attachments = message.attachments.map((a) => ({ type: a.type, url: a.url, name: a.name }));
    return this.enqueue<SendReceipt>(clientMsgId, 'chat_message', frame);
  }

  /** Queues an edit (`content`) or, without content, a delete of `messageId`. */
  addChange(clientMsgId: string, messageId: string, content?: string): Promise<ChangeReceipt> {
    const kind = content === undefined ? 'delete_message' : 'edit_message';
    const frame: Record<string, unknown> = { type: kind, messageId, ...(content !== undefined ? { content } : {}), clientMsgId };
    return this.enqueue<ChangeReceipt>(clientMsgId, kind, frame);
  }

  private enqueue<T extends SendReceipt | ChangeReceipt>(clientMsgId: string, kind: QueuedKind, frame: Record<string, unknown>): Promise<T> {
    if (this.pending.size >= this.maxPending) return Promise.reject(new SendError('queue_full', clientMsgId));
    const text = JSON.stringify(frame);
    const bytes = utf8Length(text);
    if (bytes > this.maxFrameBytes) return Promise.reject(new SendError('message_too_big', clientMsgId));
    return new Promise<T>((resolve, reject) => {
      this.pending.set(clientMsgId, { clientMsgId, kind, frame, text, bytes, inFlight: false, retries: 0, resolve: resolve as (r: SendReceipt | ChangeReceipt) => void, reject });
    });
  }

  /** Sends not on the wire, oldest first (a retried one keeps its place). */
  waiting(): PendingSend[] {
    return [...this.pending.values()].filter((p) => !p.inFlight);
  }

  /** The socket is gone: everything unconfirmed goes out again on the next one. */
  requeueAll(): void {
    for (const p of this.pending.values()) p.inFlight = false;
  }

  /** A `message_sent` confirms a message, a `message_changed` an edit or delete: nothing else. */
  confirm(receipt: SendReceipt | ChangeReceipt): boolean {
    const p = this.pending.get(receipt.clientMsgId);
    if (!p || ('action' in receipt) !== (p.kind !== 'chat_message')) return false;
    this.pending.delete(receipt.clientMsgId);
    p.resolve(receipt);
    return true;
  }

  /** A `rate_limited` answering a send: it goes again, in its place, after the client's wait. */
  rateLimited(clientMsgId: string): void {
    const p = this.pending.get(clientMsgId);
    if (p) p.inFlight = false;
  }

  /** An `error` answering a send: true when it is to be retried (in its place, after the client's wait), else it is rejected for good. */
  failed(clientMsgId: string, reason: string, detail?: string): boolean {
    const p = this.pending.get(clientMsgId);
    if (!p) return false;
    if (RETRYABLE.has(reason) && p.retries < this.maxRetries) {
      p.retries++;
      p.inFlight = false;
      return true;
    }
    this.pending.delete(clientMsgId);
    p.reject(new SendError(reason, clientMsgId, detail));
    return false;
  }

  /**
   * The server dropped a frame without naming it (the connection's frame budget, a failed
   * limiter): any send in flight may be the one, so all of them go again. Never a duplicate: the
   * server answers a repeated `clientMsgId` with the first one's `id` (and no `pos`), and the send
   * is settled by whichever answer comes first. The wait is the client's, for the socket it was
   * asked on (nothing goes out on it before the wait ends), not each send's: a send kept waiting
   * on a new socket would be overtaken by newer ones.
   */
  resendInFlight(): void {
    for (const p of this.pending.values()) p.inFlight = false;
  }

  /** The socket closed on the largest send in flight (too big for the server): reject that one for good. */
  rejectLargestInFlight(reason: string): void {
    let largest: PendingSend | undefined;
    for (const p of this.pending.values()) if (p.inFlight && (largest === undefined || p.bytes > largest.bytes)) largest = p;
    if (largest === undefined) return;
    this.pending.delete(largest.clientMsgId);
    largest.reject(new SendError(reason, largest.clientMsgId));
  }

  rejectAll(reason: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(new SendError(reason, p.clientMsgId));
  }
}
