/**
 * Where a user's sessions are, cluster-wide: one descriptor per authenticated session (no socket,
 * no token). The local directory serves one node; `redis-session-directory.ts` shares it.
 */

export interface SessionDescriptor {
  /** Cluster-wide id: `<nodeId>:<local session id>`. */
  sessionId: string;
  node: string;
  deviceId?: string;
  ip: string;
  /** When the session authenticated, ms since epoch. */
  since: number;
}

export interface SessionDirectory {
  /** Records a session of `userKey` (`tenant:userId`). Never throws; the Redis adapter retries. */
  add(userKey: string, descriptor: SessionDescriptor): void;
  remove(userKey: string, sessionId: string): void;
  /** Every live session of `userKey`, oldest first. May reject (backend down). */
  list(userKey: string): Promise<SessionDescriptor[]>;
  close(): Promise<void>;
}

/** Sessions of this node only (and the Redis adapter's mirror of them). */
export class LocalSessionDirectory implements SessionDirectory {
  /** The descriptor itself while a user has one session (most users), a Map by session id from the second. */
  private readonly byUser = new Map<string, SessionDescriptor | Map<string, SessionDescriptor>>();

  add(userKey: string, descriptor: SessionDescriptor): void {
    const entry = this.byUser.get(userKey);
    if (entry === undefined || (!(entry instanceof Map) && entry.sessionId === descriptor.sessionId)) this.byUser.set(userKey, descriptor);
    else if (entry instanceof Map) entry.set(descriptor.sessionId, descriptor);
    else this.byUser.set(userKey, new Map([[entry.sessionId, entry], [descriptor.sessionId, descriptor]]));
  }

  remove(userKey: string, sessionId: string): void {
    const entry = this.byUser.get(userKey);
    if (entry === undefined) return;
    if (!(entry instanceof Map)) {
      if (entry.sessionId === sessionId) this.byUser.delete(userKey);
      return;
    }
    if (!entry.delete(sessionId)) return;
    if (entry.size === 0) this.byUser.delete(userKey);
  }

  async list(userKey: string): Promise<SessionDescriptor[]> {
    return this.listNow(userKey);
  }

  listNow(userKey: string): SessionDescriptor[] {
    const entry = this.byUser.get(userKey);
    if (entry === undefined) return [];
    return entry instanceof Map ? [...entry.values()].sort(bySince) : [entry];
  }

  /** Every (userKey, descriptor) held, for a resync. */
  *entries(): IterableIterator<[string, SessionDescriptor]> {
    for (const [userKey, entry] of this.byUser) {
      if (entry instanceof Map) for (const d of entry.values()) yield [userKey, d];
      else yield [userKey, entry];
    }
  }

  async close(): Promise<void> {
    this.byUser.clear();
  }
}

export const bySince = (a: SessionDescriptor, b: SessionDescriptor): number => a.since - b.since || (a.sessionId < b.sessionId ? -1 : 1);
