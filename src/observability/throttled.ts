/**
 * A log call for events that come in bursts nobody needs line by line (a pool losing all its
 * connections in one outage): it runs at most once per `intervalMs`, and the next run is told how
 * many calls it held back.
 */
export function throttled<A>(intervalMs: number, log: (arg: A, heldBack: number) => void, now: () => number = () => performance.now()): (arg: A) => void {
  let loggedAt = -Infinity;
  let heldBack = 0;
  return (arg) => {
    const at = now();
    if (at - loggedAt < intervalMs) {
      heldBack++;
      return;
    }
    loggedAt = at;
    const n = heldBack;
    heldBack = 0;
    log(arg, n);
  };
}
