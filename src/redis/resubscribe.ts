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
 *
 * A SUBSCRIBE answered with an error while the connection stays up (an ACL refusal, a server
 * error) would otherwise leave the channels dead until the connection happened to drop: it is sent
 * again, backing off from 250 ms to 30 s, until confirmed (then `onRestored`) or the connection drops
 * (the next reconnect starts over).
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

/** First wait before a refused resubscription is sent again; it doubles up to the max. */
const RETRY_MS = 250;
const RETRY_MAX_MS = 30_000;

/** Starts watching `conn`; the returned function stops it. */
export function resubscribeOnReconnect(conn: Redis, o: ResubscribeOptions): () => void {
  // Every 'ready' after a 'close' is a reconnect; the first 'ready' subscribes through the owner.
  let dropped = false;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const cancelRetry = (): void => {
    clearTimeout(retry);
    retry = undefined;
  };
  const restore = (waitMs: number): void => {
    const channels = o.channels();
    if (channels.length === 0) return o.onRestored();
    conn.subscribe(...channels).then(
      () => {
        if (!stopped) o.onRestored();
      },
      (err: Error) => {
        // 'end': closed on purpose (shutdown); anything else drops again and is retried at the next 'ready'.
        if (conn.status === 'end' || stopped) return;
        o.onError(err);
        // Refused with the connection up: no reconnect is coming to send it again.
        if (conn.status !== 'ready' || dropped) return;
        cancelRetry();
        retry = setTimeout(() => {
          retry = undefined;
          if (!stopped && !dropped && conn.status === 'ready') restore(Math.min(waitMs * 2, RETRY_MAX_MS));
        }, waitMs);
        retry.unref();
      },
    );
  };
  const onClose = (): void => {
    dropped = true;
    cancelRetry();
  };
  const onReady = (): void => {
    if (!dropped) return;
    dropped = false;
    restore(RETRY_MS);
  };
  conn.on('close', onClose);
  conn.on('ready', onReady);
  return () => {
    stopped = true;
    cancelRetry();
    conn.off('close', onClose);
    conn.off('ready', onReady);
  };
}
