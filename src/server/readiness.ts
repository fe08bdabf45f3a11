/**
 * Readiness (`/readyz`, and the `rampart_storage_up` / `rampart_bus_up` gauges): not ready while
 * draining, while Redis is configured and unreachable, or while storage does not answer a ping
 * within `storageTimeoutMs`.
 */
export interface ReadinessOptions {
  ping(): Promise<void>;
  /** Bus and limits backend reachable; always true without Redis. */
  busUp(): boolean;
  draining(): boolean;
  storageTimeoutMs: number;
}

export interface Readiness {
  ready(): Promise<boolean>;
  storageUp(): Promise<boolean>;
}

export function createReadiness(o: ReadinessOptions): Readiness {
  const storageUp = async (): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), o.storageTimeoutMs);
    });
    try {
      return await Promise.race([o.ping().then(() => true, () => false), timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    storageUp,
    ready: async () => !o.draining() && o.busUp() && (await storageUp()),
  };
}
