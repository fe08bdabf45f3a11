/**
 * Commands every node must apply to its own sessions: close a user's sessions (one or all, for a
 * given cause) or close the sessions of a revoked token. In-process for one node; Redis pub/sub on
 * one control channel for a cluster (`redis-control-channel.ts`).
 */

/** Why sessions are closed: decides the close code and frame (session-control.ts). */
export type CloseCause = 'admin' | 'user' | 'banned';

export type ControlCommand =
  /** `until`: end of a ban (cause `banned`). */
  | { kind: 'close'; cause: CloseCause; userKey: string; sessionId?: string; until?: number }
  /** `tenantId` absent: a command from a node older than tenant-scoped revocations (every tenant). */
  | { kind: 'revoke'; jti: string; tenantId?: string }
  /** Forget a ban this node may still hold in its short race window (session-control.ts). */
  | { kind: 'unban'; userKey: string };

export type ControlHandler = (command: ControlCommand) => void;

export interface ControlChannel {
  /** Applies `command` on this node at once and on every other node. Rejects when it could not be sent. */
  publish(command: ControlCommand): Promise<void>;
  /** The one handler (the node's session control). */
  onCommand(handler: ControlHandler): void;
  close(): Promise<void>;
}

export class LocalControlChannel implements ControlChannel {
  private handler: ControlHandler = () => {};

  async publish(command: ControlCommand): Promise<void> {
    this.handler(command);
  }

  onCommand(handler: ControlHandler): void {
    this.handler = handler;
  }

  async close(): Promise<void> {}
}

const MAX_FIELD = 256;
const isField = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_FIELD;

/** A command read off the wire, or undefined when it is not one of ours. */
export function parseControlCommand(text: string): ControlCommand | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const c = v as Record<string, unknown>;
  if (c.kind === 'revoke' && isField(c.jti)) {
    if (c.tenantId !== undefined && !isField(c.tenantId)) return undefined;
    return { kind: 'revoke', jti: c.jti, ...(c.tenantId !== undefined ? { tenantId: c.tenantId } : {}) };
  }
  if (c.kind === 'unban' && isField(c.userKey)) return { kind: 'unban', userKey: c.userKey };
  if (c.kind !== 'close' || !isField(c.userKey)) return undefined;
  if (c.cause !== 'admin' && c.cause !== 'user' && c.cause !== 'banned') return undefined;
  if (c.sessionId !== undefined && !isField(c.sessionId)) return undefined;
  if (c.until !== undefined && typeof c.until !== 'number') return undefined;
  return {
    kind: 'close',
    cause: c.cause,
    userKey: c.userKey,
    ...(c.sessionId !== undefined ? { sessionId: c.sessionId } : {}),
    ...(typeof c.until === 'number' ? { until: c.until } : {}),
  };
}
