/**
 * Readiness (`/readyz`, and the `rampart_storage_up` / `rampart_bus_up` gauges): not ready while
 * draining, while Redis is configured and unreachable, or while storage does not answer a ping
 * within `storageTimeoutMs`.
 *
 * `/readyz` is public, so a flood of it must not become a flood of storage pings (each would take
 * a pooled PostgreSQL connection from the chat): one ping runs at a time, every caller meanwhile
 * shares it, and its answer stands for `storageCacheMs` after it settles.
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
}

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
  let pinging: Promise<boolean> | undefined;

  const ping = async (): Promise<boolean> => {
    let current = pinging;
    if (current === undefined) {
      const started = o.ping().then(
        () => true,
        () => false,
      );
      pinging = current = started;
      void started.then(() => {
        if (pinging === started) pinging = undefined;
      });
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), o.storageTimeoutMs);
    });
    try {
      return await Promise.race([current, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
  const storageUp = (): Promise<boolean> => {
    if (answer !== undefined && now() - answer.at < cacheMs) return Promise.resolve(answer.up);
    return (inFlight ??= ping().then((up) => {
      answer = { up, at: now() };
      inFlight = undefined;
      return up;
    }));
  };
  return {
    storageUp,
    ready: async () => !o.draining() && o.busUp() && (await storageUp()),
  };
}
