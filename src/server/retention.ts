/**
 * The retention schedule: a prune at start-up and then every `intervalMs`, one at a time — a long
 * prune (the first over a large backlog, or after downtime) is not joined by the next one.
 */
export interface RetentionOptions {
  /** Deletes what is older than `olderThan` (ms since the epoch). */
  prune(olderThan: number): Promise<unknown>;
  retentionMs: number;
  intervalMs: number;
  onError(err: unknown): void;
  now?: () => number;
}

export function scheduleRetention(o: RetentionOptions): { close(): void } {
  const now = o.now ?? Date.now;
  let running = false;
  const run = (): void => {
    if (running) return;
    running = true;
    o.prune(now() - o.retentionMs)
      .catch(o.onError)
      .finally(() => {
        running = false;
      });
  };
  const timer = setInterval(run, o.intervalMs);
  timer.unref();
  run();
  return { close: () => clearInterval(timer) };
}
