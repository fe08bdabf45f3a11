/**
 * The `auth` frame: first authentication of a socket, and later token refreshes. One identity per
 * socket: a refresh must carry the same tenant and `sub`. A success replays the offline inbox
 * before any live frame reaches the session.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CloseCode } from '../protocol/close-codes.js';
import type { AuthFailureReasonValue } from '../protocol/reasons.js';
import type { Identity, TokenVerifier } from '../auth/token-verifier.js';
import type { ConnectionRegistry, Limiter, RateRule } from '../limits/limiter.js';
import type { Session } from '../session/session.js';
import type { SessionRegistry } from '../server/session-registry.js';
import type { ChatService } from '../chat/chat-service.js';
import { chatFrameId, sendPaced } from '../chat/chat-service.js';
import { userKeyOf } from '../chat/authorization.js';
import { closeWith } from './rejection.js';
import type { AccessPolicy } from '../admin/access-policy.js';

export interface AuthenticatorOptions {
  verify: TokenVerifier;
  limiter: Limiter;
  registry: ConnectionRegistry;
  sessions: SessionRegistry;
  chat: ChatService;
  maxConnectionsPerUser: number;
  onUserLimit: 'reject' | 'close_oldest';
  /** Failed auths per IP before the IP is locked out for `lockoutMs`. */
  authFailureRule: RateRule;
  lockoutMs: number;
  maxBufferedBytes: number;
  /** Reads of the inbox before giving up with `storage_unavailable`, and the first retry delay (doubling). */
  replayAttempts: number;
  replayRetryMs: number;
  /** A socket left `awaiting_auth` (for the unauthenticated-socket caps). */
  onAuthenticated(session: Session): void;
  /** The offline inbox could not be read (the session stays open and is told `storage_unavailable`). */
  onReplayFailed(err: unknown): void;
  /** Bans and revoked tokens (src/admin/): checked at every `auth` and refresh. */
  access?: AccessPolicy;
}

export interface Authenticator {
  authenticate(session: Session, token: string): Promise<void>;
  /** A token already verified at the handshake (query-string token). */
  admit(session: Session, identity: Identity): Promise<void>;
  refresh(session: Session, token: string): Promise<void>;
}

export const penaltyKey = (userKey: string): string => `pen:${userKey}`;
export const lockoutKey = (ip: string): string => `lock:${ip}`;

function failure(event: string, reason: AuthFailureReasonValue, code: number = CloseCode.INVALID_TOKEN) {
  return closeWith(event, code, { type: 'auth_failure', reason });
}

const BANNED = failure('banned', 'banned', CloseCode.BANNED);
const REVOKED = failure('token_revoked', 'invalid_token');
const ACCESS_UNAVAILABLE = failure('backend_unavailable', 'unavailable', CloseCode.SERVICE_UNAVAILABLE);

export function createAuthenticator(o: AuthenticatorOptions): Authenticator {
  /** The refusal for a banned user or a revoked token, if any (fails closed: a ban must not lapse). */
  async function denial(identity: Identity) {
    if (o.access === undefined) return undefined;
    try {
      const denied = await o.access.isDenied(identity);
      return denied === 'banned' ? BANNED : denied === 'revoked' ? REVOKED : undefined;
    } catch {
      return ACCESS_UNAVAILABLE;
    }
  }

  async function recordFailure(session: Session, reason: AuthFailureReasonValue): Promise<void> {
    // The key set (JWKS) could not be read: nothing was judged, so nothing counts towards the lockout.
    if (reason === 'unavailable') return session.reject(failure('key_source_unavailable', 'unavailable', CloseCode.SERVICE_UNAVAILABLE));
    const d = await o.limiter.consume(`af:${session.ip}`, [o.authFailureRule]);
    if (!d.allowed) await o.limiter.block(lockoutKey(session.ip), o.lockoutMs);
    session.reject(failure(reason === 'token_expired' ? 'token_expired' : 'invalid_token', reason));
  }

  async function claimUserSlot(session: Session, userKey: string): Promise<boolean> {
    if (await o.registry.acquireUser(userKey, o.maxConnectionsPerUser)) return true;
    if (o.onUserLimit !== 'close_oldest') return false;
    const oldest = o.sessions.oldestOf(userKey);
    if (!oldest) return false; // all of the user's sessions live on other nodes
    oldest.reject(closeWith('session_replaced', CloseCode.TOO_MANY_SESSIONS));
    // The replaced session releases its slot when its socket closes; release now instead so the
    // new one can take it (the close handler knows the slot is gone).
    if (oldest.holdsUserSlot) {
      oldest.holdsUserSlot = false;
      await o.registry.releaseUser(userKey);
    }
    return o.registry.acquireUser(userKey, o.maxConnectionsPerUser);
  }

  async function activate(session: Session, identity: Identity, userKey: string): Promise<void> {
    session.activate(identity, userKey);
    o.onAuthenticated(session);
    // Live frames are held until the inbox replay is done: inbox first, oldest first.
    session.holdLive();
    o.sessions.add(session);
    session.sendFrame({ type: 'auth_success', userId: identity.userId });
    // Not awaited: the session takes frames again as soon as auth_success is out. Holding them
    // until a long (paced) replay ended queued a client's first burst into a 4029 close.
    void deliverInbox(session, identity);
  }

  /** Replay the offline inbox, then release the live frames that arrived meanwhile. Never rejects. */
  async function deliverInbox(session: Session, identity: Identity): Promise<void> {
    const drainBelow = o.maxBufferedBytes / 2;
    let replayed: ReadonlySet<string> | undefined;
    // A storage blip should not leave the session without its inbox until it reconnects.
    for (let attempt = 1, delay = o.replayRetryMs; replayed === undefined && session.isOpen; attempt++, delay *= 2) {
      try {
        replayed = await o.chat.replayInbox(identity, session, drainBelow);
      } catch (err) {
        o.onReplayFailed(err);
        if (attempt >= o.replayAttempts) {
          session.sendFrame({ type: 'error', reason: 'storage_unavailable' });
          break;
        }
        await sleep(delay, undefined, { ref: false });
      }
    }
    try {
      // In arrival order, minus what the replay already sent, paced like the replay. Frames that
      // arrive while we wait for the socket to drain are held behind the others.
      for (let frame = session.takeHeldLive(); frame !== undefined && session.isOpen; frame = session.takeHeldLive()) {
        const id = chatFrameId(frame);
        if (id !== undefined && replayed?.has(id) === true) continue;
        const wait = sendPaced(session, frame, drainBelow);
        if (wait !== undefined) await wait;
      }
    } catch (err) {
      o.onReplayFailed(err);
    } finally {
      session.releaseLive();
    }
  }

  async function admit(session: Session, identity: Identity): Promise<void> {
    session.state = 'authenticating';
    const userKey = userKeyOf(identity);
    if ((await o.limiter.blockedFor(penaltyKey(userKey))) > 0) {
      return session.reject(failure('penalised_user', 'penalised', CloseCode.RATE_LIMIT_ABUSE));
    }
    const denied = await denial(identity);
    if (denied !== undefined) return session.reject(denied);
    if (session.state !== 'authenticating') return; // closed while we waited
    let slot: boolean;
    try {
      slot = await claimUserSlot(session, userKey);
    } catch {
      return session.reject(failure('backend_unavailable', 'unavailable', CloseCode.SERVICE_UNAVAILABLE));
    }
    if (!slot) return session.reject(failure('too_many_sessions', 'too_many_sessions', CloseCode.TOO_MANY_SESSIONS));
    if (session.state !== 'authenticating') {
      await o.registry.releaseUser(userKey); // closed while we waited
      return;
    }
    session.userKey = userKey;
    session.holdsUserSlot = true; // released by the server's close handler
    await activate(session, identity, userKey);
  }

  return {
    async authenticate(session, token) {
      session.state = 'authenticating';
      if ((await o.limiter.blockedFor(lockoutKey(session.ip))) > 0) {
        return session.reject(failure('auth_locked_out', 'locked_out', CloseCode.INVALID_TOKEN));
      }
      const result = await o.verify(token);
      if (session.state !== 'authenticating') return; // closed meanwhile (timeout)
      if (!result.ok) return recordFailure(session, result.reason);
      return admit(session, result.identity);
    },

    admit,

    async refresh(session, token) {
      const current = session.identity!;
      const result = await o.verify(token);
      if (!session.isOpen) return;
      if (!result.ok) return recordFailure(session, result.reason);
      const next = result.identity;
      if (next.userId !== current.userId || next.tenantId !== current.tenantId) {
        return session.reject(failure('identity_change', 'identity_change', CloseCode.IDENTITY_CHANGE));
      }
      const denied = await denial(next);
      if (!session.isOpen) return;
      if (denied !== undefined) return session.reject(denied);
      session.refresh(next);
      session.sendFrame({ type: 'auth_success', userId: next.userId });
    },
  };
}
