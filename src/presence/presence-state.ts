/**
 * The published presence state of each user ("shown online" or not), shared by every node so one
 * change is published once, by the node whose check flips it (compare-and-set): the port, and its
 * in-memory adapter for one node. The Redis adapter for a cluster, which also lets a surviving node
 * claim a dead node's users, is redis-presence-state.ts (re-exported here).
 */
export { RedisPresenceState, type RedisPresenceOptions } from './redis-presence-state.js';

export interface PresenceState {
  /** Set the published state; resolves true when it changed (the caller then publishes it). */
  swap(userKey: string, online: boolean): Promise<boolean>;
  /** Published states, in order. */
  states(userKeys: readonly string[]): Promise<boolean[]>;
  /** Whether this node holds sessions of the user (for the dead-node sweep). */
  track(userKey: string, local: boolean): void;
  /**
   * Users that were held by nodes now dead (or by a previous life of this node id), each claimed by
   * exactly one node, and every user this node claimed earlier whose check has not run yet.
   */
  sweep(): Promise<string[]>;
  /**
   * The user's check ran (while they stay recorded for this node: held here, or a held-back flip):
   * a claim on them is settled. `track(userKey, false)` settles it too.
   */
  checked?(userKey: string): void;
  /**
   * Makes sure this node and its `local` users are recorded; true when they were not (another node
   * took this one for dead while it was cut from Redis, claimed its users and published them
   * offline): the caller checks them again.
   */
  rejoin(local: ReadonlySet<string>): Promise<boolean>;
  /**
   * Users whose offline flip was held back because the published states had just been lost (the
   * cluster's session counts may still be missing too), and are due to be checked again now.
   */
  due(): string[];
  /** Whether an offline flip of the user is held back (the node keeps them recorded till it is decided). */
  holds(userKey: string): boolean;
  /**
   * A graceful shutdown: every held-back flip is due now (the node will not be there to decide
   * later; a user still connected elsewhere is restated online by the node that holds them).
   */
  releaseHeld(): string[];
  close(): Promise<void>;
}

export class MemoryPresenceState implements PresenceState {
  readonly #online = new Set<string>();

  async swap(userKey: string, online: boolean): Promise<boolean> {
    if (this.#online.has(userKey) === online) return false;
    if (online) this.#online.add(userKey);
    else this.#online.delete(userKey);
    return true;
  }

  async states(userKeys: readonly string[]): Promise<boolean[]> {
    return userKeys.map((k) => this.#online.has(k));
  }

  track(): void {}

  async sweep(): Promise<string[]> {
    return [];
  }

  async rejoin(): Promise<boolean> {
    return false;
  }

  due(): string[] {
    return [];
  }

  holds(): boolean {
    return false;
  }

  releaseHeld(): string[] {
    return [];
  }

  async close(): Promise<void> {
    this.#online.clear();
  }
}
