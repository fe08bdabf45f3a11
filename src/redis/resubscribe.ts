/**
 * Restores a subscriber connection's channels after every reconnect, with Redis' answer handled.
 *
 * ioredis' own `autoResubscribe` re-sends SUBSCRIBE on reconnect and drops the promise: when the
 * connection closes before Redis answers (a shutdown just after a reconnect, a reply it cannot
 * parse), the rejection is unhandled and Node ends the process. Connections given to this are
 * created with `autoResubscribe: false`; the owner's list is the truth, sent whole on each
 * reconnect, and `onRestored` runs only once Redis has confirmed it, so an owner that reads what
 * it missed while away (the bus' resync, session control's ban recheck) leaves no window between
 * the read and the channels being live again.
 */
import type { Redis } from 'ioredis';

export interface ResubscribeOptions {
  /** The channels to hold now (read at each reconnect). */
  channels(): string[];
  /** Redis confirmed every channel after a reconnect. */
  onRestored(): void;
  /** The resubscription failed while the connection was not being closed on purpose. */
  onError(err: Error): void;
}

/** Starts watching `conn`; the returned function stops it. */
export function resubscribeOnReconnect(conn: Redis, o: ResubscribeOptions): () => void {
  // Every 'ready' after a 'close' is a reconnect; the first 'ready' subscribes through the owner.
  let dropped = false;
  const onClose = (): void => {
    dropped = true;
  };
  const onReady = (): void => {
    if (!dropped) return;
    dropped = false;
    const channels = o.channels();
    if (channels.length === 0) return o.onRestored();
    conn.subscribe(...channels).then(
      () => o.onRestored(),
      (err: Error) => {
        // 'end': closed on purpose (shutdown); anything else drops again and is retried at the next 'ready'.
        if (conn.status !== 'end') o.onError(err);
      },
    );
  };
  conn.on('close', onClose);
  conn.on('ready', onReady);
  return () => {
    conn.off('close', onClose);
    conn.off('ready', onReady);
  };
}
