/**
 * Cleaning up after nodes that died without a clean shutdown. The node that removes a dead node
 * from the cluster membership (src/bus/peer-watch.ts) is the only one told its id, so it drops the
 * dead node's session-directory entries. A death can be found before session control exists (the
 * bus joins the membership first, at start-up): the ids wait here until it does. A cleanup that
 * fails is tried again with the next ids found (the peer watch hands over again, at its next
 * heartbeat, every id whose cleanup has not succeeded, when given the promise `found` returns).
 */
import type { SessionControl } from './session-control.js';

interface Waiter {
  ids: Set<string>;
  done(ok: boolean): void;
}

export class DeadNodeCleanup {
  readonly #pending = new Set<string>();
  #waiters: Waiter[] = [];
  #control: Pick<SessionControl, 'forgetNodes'> | undefined;

  constructor(private readonly onError: (err: unknown) => void) {}

  /**
   * Nodes found dead by this node (a previous life of its own id included). Resolves true once
   * their entries were dropped, false when that failed (never rejects); pending until session
   * control is attached.
   */
  found(nodeIds: readonly string[]): Promise<boolean> {
    const promise = new Promise<boolean>((resolve) => {
      this.#waiters.push({ ids: new Set(nodeIds), done: resolve });
    });
    for (const id of nodeIds) this.#pending.add(id);
    this.#drain();
    return promise;
  }

  /** Session control is open: what was found meanwhile is cleaned now. */
  attach(control: Pick<SessionControl, 'forgetNodes'>): void {
    this.#control = control;
    this.#drain();
  }

  #drain(): void {
    if (this.#control === undefined) return;
    const waiters = this.#waiters.splice(0);
    if (this.#pending.size === 0) {
      for (const w of waiters) w.done(true);
      return;
    }
    const nodeIds = [...this.#pending];
    this.#pending.clear();
    this.#control.forgetNodes(nodeIds).then(
      () => {
        for (const w of waiters) w.done(true);
      },
      (err: unknown) => {
        for (const id of nodeIds) this.#pending.add(id);
        this.onError(err);
        for (const w of waiters) w.done(false);
      },
    );
  }
}
