/**
 * Time as the SDK sees it. Every timer the client starts goes through one Clock, so tests can run
 * it on a fake clock and `close()` can be checked to leave no timer behind.
 */
export type TimerHandle = unknown;

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>),
};

/** One named timer slot: starting it again replaces the previous timer, so none can leak. */
/** setTimeout's largest delay; a longer one fires at once (Node and browsers), not late. */
const MAX_TIMER_MS = 2_147_483_647;

export class TimerSlot {
  private handle: TimerHandle | undefined;
  constructor(private readonly clock: Clock) {}

  get active(): boolean {
    return this.handle !== undefined;
  }

  /** A delay past what a timer holds (2^31 − 1 ms, ~24.8 days) is waited for in steps. */
  start(ms: number, fn: () => void): void {
    this.stop();
    const delay = Math.max(0, ms);
    const step = Math.min(delay, MAX_TIMER_MS);
    this.handle = this.clock.setTimeout(() => {
      this.handle = undefined;
      if (delay > step) this.start(delay - step, fn);
      else fn();
    }, step);
  }

  stop(): void {
    if (this.handle === undefined) return;
    this.clock.clearTimeout(this.handle);
    this.handle = undefined;
  }
}
