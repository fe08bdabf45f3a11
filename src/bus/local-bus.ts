import type { Bus, BusHandler } from './bus.js';

/** Until the server installs its handler, frames go nowhere (a Set hit with no handler is a bug upstream, not ours). */
const noop: BusHandler = () => {};

/**
 * Single-node `Bus`: delivery is a synchronous call, so a frame published here reaches the
 * handler before `publish` returns. The server subscribes a user once, on its first local
 * session, and unsubscribes on its last, so a plain Set is enough (no reference counting).
 *
 * `publish` allocates nothing; a throwing handler propagates to the publisher like any direct call.
 */
export class LocalBus implements Bus {
  private readonly users = new Set<string>();
  private handler: BusHandler = noop;
  private closed = false;

  subscribe(userId: string): void {
    if (!this.closed) this.users.add(userId);
  }

  /** In-process delivery is synchronous: a subscription holds at once. */
  subscribed(_userId: string): undefined {
    return undefined;
  }

  unsubscribe(userId: string): void {
    this.users.delete(userId);
  }

  publish(userId: string, frame: string): void {
    if (this.users.has(userId)) this.handler(userId, frame);
  }

  healthy(): boolean {
    return !this.closed;
  }

  onFrame(handler: BusHandler): void {
    this.handler = handler;
  }

  /** In-process delivery never loses a frame: nothing to resync. */
  onResync(_handler: () => void): void {}

  async close(): Promise<void> {
    this.closed = true;
    this.users.clear();
  }
}
