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
  private readonly byUser = new Map<string, Map<string, SessionDescriptor>>();

  add(userKey: string, descriptor: SessionDescriptor): void {
    let sessions = this.byUser.get(userKey);
    if (!sessions) this.byUser.set(userKey, (sessions = new Map()));
    sessions.set(descriptor.sessionId, descriptor);
  }

  remove(userKey: string, sessionId: string): void {
    const sessions = this.byUser.get(userKey);
    if (!sessions?.delete(sessionId)) return;
    if (sessions.size === 0) this.byUser.delete(userKey);
  }

  async list(userKey: string): Promise<SessionDescriptor[]> {
    return this.listNow(userKey);
  }

  listNow(userKey: string): SessionDescriptor[] {
    return [...(this.byUser.get(userKey)?.values() ?? [])].sort(bySince);
  }

  /** Every (userKey, descriptor) held, for a resync. */
  *entries(): IterableIterator<[string, SessionDescriptor]> {
    for (const [userKey, sessions] of this.byUser) for (const d of sessions.values()) yield [userKey, d];
  }

  async close(): Promise<void> {
    this.byUser.clear();
  }
}

export const bySince = (a: SessionDescriptor, b: SessionDescriptor): number => a.since - b.since || (a.sessionId < b.sessionId ? -1 : 1);
