/**
 * The `Bus` port: fan-out of already-serialized frames to every session of a user on every node.
 * In-process for one node; Redis pub/sub for a cluster. Delivery is best-effort: durability is
 * the Store's job (timelines): a frame lost on the bus is read from storage — when a later frame
 * reveals the gap, or at once when the bus says frames may have been lost (`onResync`).
 */
export type BusHandler = (userId: string, frame: string) => void;

export interface Bus {
  /** Start receiving frames for `userId` on this node (first local session of that user). */
  subscribe(userId: string): void;
  /**
   * Resolves once frames published for `userId` on any node reach this node (the subscription is
   * confirmed); undefined when they already do, or when the bus is down (then `onResync` covers
   * what was missed once it is back). A session reads its resume point only after this.
   */
  subscribed(userId: string): Promise<void> | undefined;
  /** Stop receiving for `userId` (its last local session closed). */
  unsubscribe(userId: string): void;
  /** Deliver `frame` to every session of `userId` on every node, this one included. */
  publish(userId: string, frame: string): void;
  /** The one handler that receives frames for subscribed users. */
  onFrame(handler: BusHandler): void;
  /**
   * Called when frames for this node's users may have been lost (the bus was disconnected, or a
   * publish somewhere failed): every local session should read what it missed from storage.
   */
  onResync(handler: () => void): void;
  /** True while frames can reach other nodes (always true for the in-process bus). */
  healthy(): boolean;
  close(): Promise<void>;
}
