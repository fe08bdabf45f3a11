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

  constructor(private readonly metrics: Pick<Metrics, 'messagesDelivered' | 'deliveryLatency'>) {}

  /** ChatService: `messageId`, received at `receivedAt` (performance.now()), is being published. */
  publishing(messageId: string, receivedAt: number): void {
    this.#messageId = messageId;
    this.#receivedAt = receivedAt;
  }

  published(): void {
    this.#messageId = undefined;
  }

  /** SessionRegistry: a live frame was written to `sessions` sessions of one user. */
  written(frame: string, sessions: number): void {
    if (sessions === 0) return;
    // Timeline chat messages only (`{"pos":N,"type":"chat_message",…`), not typing or membership frames.
    if (!frame.startsWith('{"pos":') || !frame.includes('"type":"chat_message"')) return;
    this.metrics.messagesDelivered.inc();
    const id = this.#messageId;
    if (id !== undefined && frame.includes(id)) this.metrics.deliveryLatency.observe((performance.now() - this.#receivedAt) / 1000);
  }
}
