/**
 * `list_sessions` and `end_session`: a user sees their own sessions on every node and may end one
 * of them remotely. Only the caller's own sessions are ever visible or reachable; a session id that
 * is someone else's gets the same `error forbidden` as one that does not exist.
 */
import type { EndSessionFrame, ListSessionsFrame, SessionInfo } from '../protocol/session-frames.js';
import type { Session } from '../session/session.js';
import type { SessionControl } from '../admin/session-control.js';

export type UserSessionsHandler = (session: Session, frame: ListSessionsFrame | EndSessionFrame) => Promise<void>;

export function createUserSessionsHandler(control: SessionControl, onError: (err: unknown) => void): UserSessionsHandler {
  const rid = (frame: { requestId?: string | undefined }) => (frame.requestId !== undefined ? { requestId: frame.requestId } : {});

  async function list(session: Session, frame: ListSessionsFrame): Promise<void> {
    const current = control.idOf(session);
    const sessions: SessionInfo[] = (await control.listSessions(session.userKey)).map((d) => ({
      sessionId: d.sessionId,
      node: d.node,
      ...(d.deviceId !== undefined ? { deviceId: d.deviceId } : {}),
      ip: d.ip,
      since: d.since,
      current: d.sessionId === current,
    }));
    session.sendFrame({ type: 'sessions', sessions, ...rid(frame) });
  }

  async function end(session: Session, frame: EndSessionFrame): Promise<void> {
    const outcome = await control.endSession(session, frame.sessionId, () =>
      session.sendFrame({ type: 'session_ended', sessionId: frame.sessionId, ...rid(frame) }),
    );
    if (outcome === 'forbidden') session.sendFrame({ type: 'error', reason: 'forbidden', ...rid(frame) });
  }

  return async (session, frame) => {
    try {
      await (frame.type === 'list_sessions' ? list(session, frame) : end(session, frame));
    } catch (err) {
      // The directory or the control channel (Redis) did not answer.
      onError(err);
      session.sendFrame({ type: 'error', reason: 'storage_unavailable', ...rid(frame) });
    }
  };
}
