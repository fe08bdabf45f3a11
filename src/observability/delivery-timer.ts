/**
 * Times chat delivery: from the chat service receiving a message to its frame being written to
 * the last session of the recipient on this node. The sender's own timeline copy (for its other
 * devices) is not a delivery: the session registry does not report it, so a message to an
 * offline recipient is neither counted nor timed. Local fan-out is synchronous inside
 * `Bus.publish`, so between `publishing` and `published` the only timeline frames written are the
 * copies of the message being published: they are timed without reading their ids. Frames that
 * arrive from another node over Redis are counted as delivered but not timed (their receive time
 * was taken on another clock).
 */
import type { Metrics } from './metrics.js';
import { isTimelineChatMessage } from '../chat/timeline-frames.js';

export class DeliveryTimer {
  #publishing = false;
  #receivedAt = 0;
  /** When the message being published was last handed to a local session (0: not yet). */
  #lastWriteAt = 0;

  constructor(private readonly metrics: Pick<Metrics, 'countDelivered' | 'deliveryLatency'>) {}

  /** ChatService: a message received at `receivedAt` (performance.now()) is being published. */
  publishing(receivedAt: number): void {
    this.#publishing = true;
    this.#receivedAt = receivedAt;
    this.#lastWriteAt = 0;
  }

  /** One observation per message: received → handed to the last local session of its timelines. */
  published(): void {
    if (this.#lastWriteAt > 0) this.metrics.deliveryLatency.observe((this.#lastWriteAt - this.#receivedAt) / 1000);
    this.#publishing = false;
    this.#lastWriteAt = 0;
  }

  /**
   * SessionRegistry: a live frame was handed to `sessions` sessions of one of its recipients
   * (never the sender's own copy). Each recipient's timeline copy counts as a delivery.
   */
  written(frame: string, sessions: number): void {
    if (sessions === 0 || !isTimelineChatMessage(frame)) return;
    this.metrics.countDelivered();
    if (this.#publishing) this.#lastWriteAt = performance.now();
  }
}
