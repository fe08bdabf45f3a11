/**
 * Times chat delivery: from the chat service receiving a message to its frame being written to
 * the last session of the recipient on this node. Local fan-out is synchronous inside
 * `Bus.publish`, so the message being published is the only one that can be timed; frames that
 * arrive from another node over Redis are counted as delivered but not timed (their receive
 * time was taken on another clock).
 */
import type { Metrics } from './metrics.js';

export class DeliveryTimer {
  #messageId: string | undefined;
  #receivedAt = 0;
  /** When the message being published was last handed to a local session (0: not yet). */
  #lastWriteAt = 0;

  constructor(private readonly metrics: Pick<Metrics, 'messagesDelivered' | 'deliveryLatency'>) {}

  /** ChatService: `messageId`, received at `receivedAt` (performance.now()), is being published. */
  publishing(messageId: string, receivedAt: number): void {
    this.#messageId = messageId;
    this.#receivedAt = receivedAt;
    this.#lastWriteAt = 0;
  }

  /** One observation per message: received → handed to the last local session of its timelines. */
  published(): void {
    if (this.#lastWriteAt > 0) this.metrics.deliveryLatency.observe((this.#lastWriteAt - this.#receivedAt) / 1000);
    this.#messageId = undefined;
    this.#lastWriteAt = 0;
  }

  /**
   * SessionRegistry: a live frame was handed to `sessions` sessions of one user. Every timeline
   * copy counts as a delivery — the recipients' and the sender's own (its other devices).
   */
  written(frame: string, sessions: number): void {
    if (sessions === 0) return;
    // Timeline chat messages only (`{"pos":N,"type":"chat_message",…`), not typing or membership frames.
    if (!frame.startsWith('{"pos":') || !frame.includes('"type":"chat_message"')) return;
    this.metrics.messagesDelivered.inc();
    const id = this.#messageId;
    if (id !== undefined && frame.includes(id)) this.#lastWriteAt = performance.now();
  }
}
