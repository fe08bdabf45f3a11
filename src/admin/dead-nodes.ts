/**
 * Cleaning up after nodes that died without a clean shutdown. The node that removes a dead node
 * from the cluster membership (src/bus/peer-watch.ts) is the only one told its id, so it drops the
 * dead node's session-directory entries. A death can be found before session control exists (the
 * bus joins the membership first, at start-up): the ids wait here until it does. A cleanup that
 * fails is tried again with the next death found.
 */
import type { SessionControl } from './session-control.js';

export class DeadNodeCleanup {
  #pending: string[] = [];
  #control: Pick<SessionControl, 'forgetNodes'> | undefined;

  constructor(private readonly onError: (err: unknown) => void) {}

  /** Nodes found dead by this node (a previous life of its own id included). */
  found(nodeIds: readonly string[]): void {
    this.#pending.push(...nodeIds);
    this.#drain();
  }

  /** Session control is open: what was found meanwhile is cleaned now. */
  attach(control: Pick<SessionControl, 'forgetNodes'>): void {
    this.#control = control;
    this.#drain();
  }

  #drain(): void {
    if (this.#control === undefined || this.#pending.length === 0) return;
    const nodeIds = this.#pending.splice(0);
    this.#control.forgetNodes(nodeIds).catch((err: unknown) => {
      this.#pending.push(...nodeIds);
      this.onError(err);
    });
  }
}
