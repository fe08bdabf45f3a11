/**
 * The `auth` frame: first authentication of a socket, and later token refreshes. One identity per
 * socket: a refresh must carry the same tenant and `sub`. A success finds the session's resume
 * point (`after`, else the device's position, else what no device acknowledged), answers
 * `auth_success`, and starts the session's timeline stream: replay from storage, then live.
 * Banned users and revoked tokens (the access policy, src/admin/) are refused at auth and refresh.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CloseCode } from '../protocol/close-codes.js';
import type { AuthFailureReasonValue } from '../protocol/reasons.js';
import type { Identity } from '../auth/token-verifier.js';
import type { TokenChecks } from './token-checks.js';
import type { ConnectionRegistry, Limiter, RateRule } from '../limits/limiter.js';
import type { Session } from '../session/session.js';
import type { SessionRegistry } from '../server/session-registry.js';
import type { ChatService } from '../chat/chat-service.js';
import type { AuthFrame } from '../protocol/client-frames.js';
import { userKeyOf } from '../chat/authorization.js';
import { DeviceStream, type DeviceStreamOptions, type TimelineReader } from '../sync/device-stream.js';
import { closeWith } from './rejection.js';
import type { AccessPolicy } from '../admin/access-policy.js';

export interface AuthenticatorOptions {
  /**
   * `auth` frames, first ones and refreshes alike: the IP's lockout, the token and the count of a
   * refusal, one check per IP at a time (a refresh is a token judged like any other: outside this
   * line, a burst of refreshes from the sessions of one IP had every token judged).
   */
  checkToken: TokenChecks;
  limiter: Limiter;
  registry: ConnectionRegistry;
  sessions: SessionRegistry;
  chat: ChatService;
  maxConnectionsPerUser: number;
  onUserLimit: 'reject' | 'close_oldest';
  maxBufferedBytes: number;
  /** Storage reads (resume point, each timeline gap) before giving up, and the first retry delay (doubling). */
  replayAttempts: number;
  replayRetryMs: number;
  replayMaxRetryMs: number;
  /** Timeline entries per storage read. */
  replayPageSize: number;
  /** A socket left `awaiting_auth` (for the unauthenticated-socket caps). */
  onAuthenticated(session: Session): void;
  /** A timeline read failed (it is retried). */
  onReplayFailed(err: unknown): void;
  /** Every authentication outcome (first auth, query token, refresh), for metrics. */
  onAuthResult?(result: 'success' | AuthFailureReasonValue): void;
  /** Bans and revoked tokens (src/admin/): checked at every `auth` and refresh. */
  access?: AccessPolicy;
  /**
   * Whether the identity's role may read. A session is a reader — it is sent its user's timeline —
   * so a role without `read` (one not configured included: deny by default) gets none.
   */
  mayRead(identity: Identity): boolean;
}

/** Where the client wants to resume (the `auth` frame's optional fields). */
export interface ResumeRequest {
  deviceId?: string | undefined;
  after?: number | undefined;
}

export interface Authenticator {
  authenticate(session: Session, frame: AuthFrame): Promise<void>;
  /** A token already verified at the handshake (query-string token). */
  admit(session: Session, identity: Identity, resume?: ResumeRequest): Promise<void>;
  refresh(session: Session, token: string): Promise<void>;
}

export const penaltyKey = (userKey: string): string => `pen:${userKey}`;
export const lockoutKey = (ip: string): string => `lock:${ip}`;

/**
 * One refused token from `ip` (an `auth` frame's or a handshake's query token): `rule` counts
 * them, and the failure it refuses locks the IP out for `lockoutMs`.
 */
export async function countAuthFailure(limiter: Limiter, ip: string, rule: RateRule, lockoutMs: number): Promise<void> {
  const d = await limiter.consume(`af:${ip}`, [rule]);
  if (!d.allowed) await limiter.block(lockoutKey(ip), lockoutMs);
}

function failure(event: string, reason: AuthFailureReasonValue, code: number = CloseCode.INVALID_TOKEN) {
  return closeWith(event, code, { type: 'auth_failure', reason });
}

export function createAuthenticator(o: AuthenticatorOptions): Authenticator {
  /**
   * `verified`: the identity of a token that verified, refused anyway (banned, revoked, over a
   * limit): its security line names the user. Not for tokens that failed verification.
   */
  function fail(session: Session, event: string, reason: AuthFailureReasonValue, code?: number, verified?: Identity): void {
    o.onAuthResult?.(reason);
    session.reject(failure(event, reason, code), verified);
  }

  /**
   * Refuses a banned user or a revoked token; true when it did, or when the session closed while
   * the policy was asked. Fails closed: a ban must not lapse while its backend is down.
   */
  async function deniedAccess(session: Session, identity: Identity): Promise<boolean> {
    if (o.access === undefined) return false;
    let denied;
    try {
      denied = await o.access.isDenied(identity);
    } catch {
      fail(session, 'backend_unavailable', 'unavailable', CloseCode.SERVICE_UNAVAILABLE, identity);
      return true;
    }
    if (!session.isOpen) return true;
    if (denied === 'banned') fail(session, 'banned', 'banned', CloseCode.BANNED, identity);
    else if (denied === 'revoked') fail(session, 'token_revoked', 'invalid_token', undefined, identity);
    return denied !== undefined;
  }

  /** A refused token, already counted towards the IP's lockout (checkToken). */
  function refused(session: Session, reason: AuthFailureReasonValue): void {
    // The key set (JWKS) could not be read: nothing was judged (and nothing counted).
    if (reason === 'unavailable') return fail(session, 'key_source_unavailable', 'unavailable', CloseCode.SERVICE_UNAVAILABLE);
    fail(session, reason === 'token_expired' ? 'token_expired' : 'invalid_token', reason);
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

  /** One options object for every stream of this node: the callbacks get the stream's session. */
  const streamOptions: DeviceStreamOptions = {
    pageSize: o.replayPageSize,
    // A page is held until sent: a stalled replay pins at most about this much besides the socket's unsent bytes.
    pageBytes: o.maxBufferedBytes / 2,
    drainBelow: o.maxBufferedBytes / 2,
    maxHeldBytes: o.maxBufferedBytes,
    readAttempts: o.replayAttempts,
    retryMs: o.replayRetryMs,
    maxRetryMs: o.replayMaxRetryMs,
    onOverflow: (outlet) => (outlet as Session).overflow(),
    onReadFailed: o.onReplayFailed,
    onGiveUp: (outlet) => (outlet as Session).sendFrame({ type: 'error', reason: 'storage_unavailable' }),
  };

  /** One reader for every stream: the session's identity names the timeline (a refresh keeps user and tenant). */
  const readTimeline: TimelineReader = (after, limit, outlet) => o.chat.timeline((outlet as Session).identity!, after, limit);

  async function activate(session: Session, identity: Identity, userKey: string, resume: ResumeRequest): Promise<void> {
    session.activate(identity, userKey);
    session.deviceId = resume.deviceId;
    o.onAuthenticated(session);
    const stream = new DeviceStream(session, readTimeline, streamOptions);
    session.attachStream(stream);
    // Subscribed before the resume point is read: live frames from now on are held by the stream
    // (it starts in reading mode), so nothing falls between the read and the subscription. On
    // Redis the subscription holds only once Redis confirmed it: wait for that first.
    o.sessions.add(session);
    const confirming = o.sessions.subscribed(session.userKey);
    if (confirming !== undefined) await confirming;
    if (!session.isOpen) return;
    const point = await resumePoint(session, identity, resume);
    if (point === undefined) {
      if (!session.isOpen) return; // the client left while it was read: nothing to count
      // Without a resume point the stream cannot promise a gapless order: refuse, the client retries.
      return fail(session, 'storage_unavailable', 'unavailable', CloseCode.SERVICE_UNAVAILABLE);
    }
    if (!session.isOpen) return;
    session.sendFrame({ type: 'auth_success', userId: identity.userId, resumeAfter: point.after, lastPos: point.lastPos });
    session.announced = true;
    // Counted once the client is told: a session refused or closed on the way is not a success.
    o.onAuthResult?.('success');
    // Not awaited: the session takes frames again as soon as auth_success is out; the replay is
    // paced by the socket's unsent bytes and runs beside them. Nothing pending (the resume point is
    // the user's last position): the stream goes live without reading the timeline.
    void stream.start(point.after, point.lastPos);
  }

  async function resumePoint(session: Session, identity: Identity, resume: ResumeRequest) {
    for (let attempt = 1, delay = o.replayRetryMs; session.isOpen; attempt++, delay *= 2) {
      try {
        return await o.chat.resumePoint(identity, resume.deviceId, resume.after);
      } catch (err) {
        o.onReplayFailed(err);
        if (attempt >= o.replayAttempts) return undefined;
        await sleep(delay, undefined, { ref: false });
      }
    }
    return undefined;
  }

  async function admit(session: Session, identity: Identity, resume: ResumeRequest = {}): Promise<void> {
    session.state = 'authenticating';
    // Refusals from here on are of a verified identity: their security lines name the user.
    if (!o.mayRead(identity)) return fail(session, 'role_without_read', 'invalid_token', undefined, identity);
    const userKey = userKeyOf(identity);
    if ((await o.limiter.blockedFor(penaltyKey(userKey))) > 0) {
      return fail(session, 'penalised_user', 'penalised', CloseCode.RATE_LIMIT_ABUSE, identity);
    }
    if (await deniedAccess(session, identity)) return;
    if (session.state !== 'authenticating') return; // closed while we waited
    let slot: boolean;
    try {
      slot = await claimUserSlot(session, userKey);
    } catch {
      return fail(session, 'backend_unavailable', 'unavailable', CloseCode.SERVICE_UNAVAILABLE, identity);
    }
    if (!slot) return fail(session, 'too_many_sessions', 'too_many_sessions', CloseCode.TOO_MANY_SESSIONS, identity);
    if (session.state !== 'authenticating') {
      await o.registry.releaseUser(userKey); // closed while we waited
      return;
    }
    session.userKey = userKey;
    session.holdsUserSlot = true; // released by the server's close handler
    await activate(session, identity, userKey, resume);
  }

  return {
    async authenticate(session, frame) {
      session.state = 'authenticating';
      const result = await o.checkToken(session.ip, frame.token, () => session.state === 'authenticating');
      if (session.state !== 'authenticating') return; // closed meanwhile (timeout); a judged refusal was counted
      if (result === 'locked_out') return fail(session, 'auth_locked_out', 'locked_out', CloseCode.INVALID_TOKEN);
      if (result === 'abandoned') return;
      if (!result.ok) return refused(session, result.reason);
      return admit(session, result.identity, { deviceId: frame.deviceId, after: frame.after });
    },

    admit,

    async refresh(session, token) {
      const current = session.identity!;
      const check = await o.checkToken.refresh(session.ip, token, () => session.isOpen);
      if (!session.isOpen || check === 'abandoned') return;
      const { result, lockedOut } = check;
      const next = result.ok ? result.identity : undefined;
      const same = next !== undefined && next.userId === current.userId && next.tenantId === current.tenantId;
      // While the IP is locked out only the session's own identity passes; every other outcome is
      // the lockout's answer, so a locked-out IP learns nothing about the tokens it tries.
      if (lockedOut && !same) return fail(session, 'auth_locked_out', 'locked_out', CloseCode.INVALID_TOKEN);
      if (!result.ok) return refused(session, result.reason);
      if (!same) return fail(session, 'identity_change', 'identity_change', CloseCode.IDENTITY_CHANGE);
      if (!o.mayRead(next)) return fail(session, 'role_without_read', 'invalid_token');
      if (await deniedAccess(session, next)) return;
      session.refresh(next);
      // A revocation of the new token published while it was checked closed nobody (no session
      // held it yet): the session control checks the refreshed session against what it heard.
      o.sessions.refreshed(session);
      if (!session.isOpen) return;
      o.onAuthResult?.('success');
      session.sendFrame({ type: 'auth_success', userId: next.userId });
    },
  };
}
