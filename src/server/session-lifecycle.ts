/**
 * The server's answer to a session's end: the penalty and close of an abusive session, and what a
 * closed session gives back (its place in the node's accounting and the local registry, its user
 * slot) followed by its user's presence check. The shutdown waits for the slots still being given back.
 */
import type { Limiter, ConnectionRegistry } from '../limits/limiter.js';
import type { Logger } from '../observability/logger.js';
import type { PresenceService } from '../presence/presence-service.js';
import type { Session, SessionHooks } from '../session/session.js';
import { penaltyKey } from '../pipeline/authenticate.js';
import { closeWith } from '../pipeline/rejection.js';
import { CloseCode } from '../protocol/close-codes.js';
import { errorSummary } from '../observability/error-summary.js';
import type { NodeConnections } from './node-connections.js';
import type { SessionRegistry } from './session-registry.js';

export interface SessionLifecycleOptions {
  limiter: Limiter;
  registry: ConnectionRegistry;
  connections: NodeConnections;
  sessions: SessionRegistry;
  presence: PresenceService;
  /** How long an abusive session's user is refused (`limits.penaltyMs`). */
  penaltyMs: number;
  logger: Logger;
}

export interface SessionLifecycle extends Pick<SessionHooks, 'onAbuse' | 'onClosed'> {
  /** Slots being given back by closed sessions, each followed by the user's presence check. */
  readonly releasing: ReadonlySet<Promise<void>>;
}

export function createSessionLifecycle(o: SessionLifecycleOptions): SessionLifecycle {
  const { registry, sessions, presence } = o;
  const releasing = new Set<Promise<void>>();
  return {
    releasing,
    onAbuse: (session: Session) => {
      // Not awaited, so nothing may reject unhandled: with Redis away the penalty is lost, the close is not.
      Promise.resolve(o.limiter.block(penaltyKey(session.userKey), o.penaltyMs)).catch((err: unknown) =>
        o.logger.error({ err: errorSummary(err) }, 'penalty not recorded'),
      );
      session.reject(closeWith('rate_limit_abuse', CloseCode.RATE_LIMIT_ABUSE));
    },
    onClosed: (session: Session) => {
      o.connections.remove(session);
      if (session.userKey) sessions.remove(session);
      const userKey = session.userKey;
      if (session.holdsUserSlot) {
        session.holdsUserSlot = false;
        // Presence is checked once the slot is given back (the count it reads must not include this session).
        const released = Promise.resolve(registry.releaseUser(userKey)).then(() => presence.changed(userKey, sessions.sessionsOf(userKey) !== undefined));
        // A shutdown waits for these before presence stops (a socket terminated at the drain's deadline closes last).
        releasing.add(released);
        void released.finally(() => releasing.delete(released));
      } else if (session.identity !== undefined) {
        // Its slot went to the session that replaced it (onUserLimit close_oldest): presence still
        // learns whether this node holds a session of the user (the new one may have failed meanwhile).
        presence.changed(userKey, sessions.sessionsOf(userKey) !== undefined);
      }
    },
  };
}
