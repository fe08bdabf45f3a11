/**
 * Readiness (`/readyz`, and the `rampart_storage_up` / `rampart_bus_up` gauges): not ready while
 * draining, while Redis is configured and unreachable, or while storage does not answer a ping
 * within `storageTimeoutMs`.
 *
 * `/readyz` is public, so a flood of it must not become a flood of storage pings (each would take
 * a pooled PostgreSQL connection from the chat): one ping runs at a time, every caller meanwhile
 * shares it, and its answer stands for `storageCacheMs` after it settles.
 *
 * `/readyz` never says which check failed, so the log must: `onStorageChange` is told when an
 * answer differs from the one before (the first answer counts only when it is "down"), never per
 * probe, so a load balancer polling a node with dead storage writes one line, not one a second.
 */
export interface ReadinessOptions {
  ping(): Promise<void>;
  /** Bus and limits backend reachable; always true without Redis. */
  busUp(): boolean;
  draining(): boolean;
  storageTimeoutMs: number;
  /** How long a ping's answer is reused (default 1000 ms). */
  storageCacheMs?: number;
  /** Monotonic clock in ms (tests may pin it). */
  now?: () => number;
  /**
   * Storage became unusable (`cause`: the ping's error, or 'timeout' when it did not answer within
   * `storageTimeoutMs`), or usable again (`up` true, no cause).
   */
  onStorageChange?: (up: boolean, cause?: unknown) => void;
}

/** A ping's outcome: the error is kept for the log. */
type PingAnswer = { up: true } | { up: false; cause: unknown };

const UP: PingAnswer = { up: true };
const TIMED_OUT: PingAnswer = { up: false, cause: 'timeout' };

export interface Readiness {
  ready(): Promise<boolean>;
  storageUp(): Promise<boolean>;
}

export function createReadiness(o: ReadinessOptions): Readiness {
  const now = o.now ?? performance.now.bind(performance);
  const cacheMs = o.storageCacheMs ?? 1000;
  let inFlight: Promise<boolean> | undefined;
  let answer: { up: boolean; at: number } | undefined;
  /** The storage ping itself, until it settles: a stalled one is waited on again, never doubled. */
  let pinging: Promise<PingAnswer> | undefined;
  /** Last state reported to `onStorageChange`; undefined until the first answer. */
  let reported: boolean | undefined;

  const report = (a: PingAnswer): void => {
    // A store closed by a shutdown is no outage.
    if (o.draining()) return;
    const changed = reported === undefined ? !a.up : a.up !== reported;
    reported = a.up;
    if (!changed) return;
    try {
      if (a.up) o.onStorageChange?.(true);
      else o.onStorageChange?.(false, a.cause);
    } catch {
      // A failing logger must not make the node unready.
    }
  };

  const ping = async (): Promise<PingAnswer> => {
    let current = pinging;
    if (current === undefined) {
      const started = o.ping().then(
        (): PingAnswer => UP,
        (cause: unknown): PingAnswer => ({ up: false, cause }),
      );
      pinging = current = started;
      void started.then(() => {
        if (pinging === started) pinging = undefined;
      });
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<PingAnswer>((resolve) => {
      timer = setTimeout(() => resolve(TIMED_OUT), o.storageTimeoutMs);
    });
    try {
      return await Promise.race([current, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
  const storageUp = (): Promise<boolean> => {
    if (answer !== undefined && now() - answer.at < cacheMs) return Promise.resolve(answer.up);
    return (inFlight ??= ping().then((a) => {
      answer = { up: a.up, at: now() };
      inFlight = undefined;
      report(a);
      return a.up;
    }));
  };
  return {
    storageUp,
    ready: async () => !o.draining() && o.busUp() && (await storageUp()),
  };
}
