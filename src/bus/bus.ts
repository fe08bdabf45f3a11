/**
 * The `Bus` port: fan-out of already-serialized frames to every session of a user on every node.
 * In-process for one node; Redis pub/sub for a cluster. Delivery is best-effort: durability is
 * the Store's job (offline inbox), so a frame lost on the bus is redelivered on next auth.
 */
export type BusHandler = (userId: string, frame: string) => void;

export interface Bus {
  /** Start receiving frames for `userId` on this node (first local session of that user). */
  subscribe(userId: string): void;
  /** Stop receiving for `userId` (its last local session closed). */
  unsubscribe(userId: string): void;
  /** Deliver `frame` to every session of `userId` on every node, this one included. */
  publish(userId: string, frame: string): void;
  /** The one handler that receives frames for subscribed users. */
  onFrame(handler: BusHandler): void;
  /** True while frames can reach other nodes (always true for the in-process bus). */
  healthy(): boolean;
  close(): Promise<void>;
}
