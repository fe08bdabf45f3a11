/**
 * A log call for events that come in bursts nobody needs line by line (a pool losing all its
 * connections in one outage, presence checks failing while Redis is away): it runs at most once
 * per `intervalMs`. What it held back is logged when the interval ends — once, with the last
 * argument and how many calls were held back — so a burst that stops is still accounted for.
 */
export interface Throttled<A> {
  (arg: A): void;
  /** Logs what is held back now and stops the timer (at shutdown). */
  close(): void;
}

export function throttled<A>(intervalMs: number, log: (arg: A, heldBack: number) => void, now: () => number = () => performance.now()): Throttled<A> {
  let loggedAt = -Infinity;
  let heldBack = 0;
  let last: A | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (heldBack === 0) return;
    const n = heldBack;
    heldBack = 0;
    loggedAt = now();
    log(last as A, n);
  };
  const call = (arg: A): void => {
    const at = now();
    if (at - loggedAt < intervalMs) {
      heldBack++;
      last = arg;
      if (timer === undefined) {
        timer = setTimeout(flush, intervalMs - (at - loggedAt));
        timer.unref();
      }
      return;
    }
    loggedAt = at;
    log(arg, 0);
  };
  return Object.assign(call, { close: flush });
}
