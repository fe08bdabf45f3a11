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

/** What the directory reads of a local session (a `Session`; tests pass stand-ins). */
export interface LocalSession {
  readonly id: string;
  readonly userKey: string;
  readonly deviceId: string | undefined;
  /** The client's address (an IPv6 client's whole address, not the network its limits count). */
  readonly address: string;
  readonly authenticatedAt: number;
}

/** This node's authenticated sessions by user: the session registry (src/server/session-registry.ts). */
export interface LocalSessions<S extends LocalSession = LocalSession> {
  sessionsOf(userKey: string): Iterable<S> | undefined;
  all(): Iterable<S>;
}

export interface SessionDirectory {
  /** A local session joined / left. Never throws; the Redis adapter retries its writes. */
  add(session: LocalSession): void;
  remove(session: LocalSession): void;
  /** Every live session of `userKey` (`tenant:userId`), oldest first. May reject (backend down). */
  list(userKey: string): Promise<SessionDescriptor[]>;
  /** Drops every entry of these nodes (found dead by this node: nobody else cleans after them). */
  forgetNodes(nodeIds: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** The cluster-wide id of a local session: `<nodeId>:<local session id>`. */
export const clusterSessionId = (nodeId: string, s: LocalSession): string => `${nodeId}:${s.id}`;

/** The descriptor of a local session: made when asked, never kept (tens of thousands of sessions). */
export function describeSession(nodeId: string, s: LocalSession): SessionDescriptor {
  return {
    sessionId: clusterSessionId(nodeId, s),
    node: nodeId,
    ...(s.deviceId !== undefined ? { deviceId: s.deviceId } : {}),
    ip: s.address,
    since: s.authenticatedAt,
  };
}

/**
 * Sessions of this node only. The session registry already holds them by user, so this keeps
 * nothing of its own: `add` and `remove` have nothing to record, `list` describes the registry's.
 */
export class LocalSessionDirectory implements SessionDirectory {
  constructor(
    private readonly nodeId: string,
    private readonly local: LocalSessions,
  ) {}

  add(_session: LocalSession): void {}

  remove(_session: LocalSession): void {}

  async list(userKey: string): Promise<SessionDescriptor[]> {
    const list: SessionDescriptor[] = [];
    for (const s of this.local.sessionsOf(userKey) ?? []) list.push(describeSession(this.nodeId, s));
    return list.sort(bySince);
  }

  /** One node: nothing of another node's is kept here. */
  async forgetNodes(): Promise<void> {}

  async close(): Promise<void> {}
}

export const bySince = (a: SessionDescriptor, b: SessionDescriptor): number => a.since - b.since || (a.sessionId < b.sessionId ? -1 : 1);
