/**
 * The message pipeline (docs/protocol.md §3, §7). Every frame crosses it in this order:
 *
 *   size (ws maxPayload; the pre-auth cap in Session, on arrival) → frame budget → JSON parse → schema →
 *   the type's checks → handler
 *
 * The type's checks: chat_message, edit_message, delete_message: per-type rate limit → authorization
 * → content policy → sanitize. typing_indicator, ack and the requests (history, list_conversations,
 * read, presence, set_presence; first a place among the connection's pending requests):
 * authorization → per-type rate limit. Group changes: authorization → sanitize the name →
 * per-type rate limit. list_sessions, end_session: the request rate limit only; ping: nothing more.
 *
 * Each step returns the next value or a `Rejection`; `Session.reject` turns a rejection into one
 * reply or close. Steps stay synchronous while the adapters are (memory limiter). Token
 * verification makes the session hold later frames until it settles; per-user Redis limits keep
 * order through Redis' FIFO replies instead (see `onUserDecision`); storage is batched and acked
 * in commit order.
 */
import { CloseCode } from '../protocol/close-codes.js';
import type { ClientFrame, ChatMessageFrame, DeleteMessageFrame, EditMessageFrame, GroupChangeFrame } from '../protocol/client-frames.js';
import type { RateLimitReasonValue } from '../protocol/reasons.js';
import type { Limiter, RateDecision, RateRule } from '../limits/limiter.js';
import type { Session } from '../session/session.js';
import type { ChatService, ProcessedMessage } from '../chat/chat-service.js';
import type { GroupService } from '../chat/group-service.js';
import type { MessageChangeService } from '../chat/message-changes.js';
import type { PresenceService } from '../presence/presence-service.js';
import { withRequestId } from '../chat/replies.js';
import { permissionsFor, type RolePolicy } from '../chat/authorization.js';
import { processContent, sanitizeAttachmentUrl, sanitizeDisplayName } from '../chat/process-content.js';
import type { ContentPolicy } from '../chat/content-policy.js';
import { parseSafeJson } from './safe-json.js';
import { validateFrame } from './validate-frame.js';
import { closeWith, drop, reply, Rejection } from './rejection.js';
import type { Authenticator } from './authenticate.js';
import type { UserSessionsHandler } from './user-sessions.js';

export interface PipelineRules {
  frames: RateRule;
  messages: readonly RateRule[];
  typing: readonly RateRule[];
  requests: readonly RateRule[];
  groupCreates: readonly RateRule[];
  membershipChanges: readonly RateRule[];
}

export interface FramePipelineOptions {
  contentPolicy: ContentPolicy;
  roles: RolePolicy;
  rules: PipelineRules;
  limiter: Limiter;
  /** Per-connection budgets (frames); node-local. Defaults to `limiter`. */
  connectionLimiter?: Limiter;
  chat: ChatService;
  groups: GroupService;
  changes: MessageChangeService;
  presence: PresenceService;
  authenticator: Authenticator;
  countFrame(type: string): void;
  /** `list_sessions` / `end_session` (src/pipeline/user-sessions.ts); unknown_type without it. */
  userSessions?: UserSessionsHandler;
  /**
   * Requests (history, lists, reads, presence) one connection may have admitted and not yet
   * answered (`limits.maxQueuedFrames`, default 32). Past it the connection's frames wait, queued
   * under the same bound: a client that reads its replies slowly cannot pile requests up in memory.
   */
  maxPendingRequests?: number;
}

/** A connection's requests admitted and not yet answered, and the frame waiting for one of them to end. */
interface PendingRequests {
  count: number;
  /** At most one: the session takes no other frame while it waits (they queue). */
  wake: (() => void) | undefined;
}

const RULE_REASON: Record<string, RateLimitReasonValue> = {
  burst: 'burst_limit',
  minute: 'minute_limit',
  hour: 'hour_limit',
  frames: 'frame_limit',
  group_creates: 'group_limit',
  membership_changes: 'group_limit',
};

export function rateRules(config: {
  rateLimit: { messagesPerMinute: number; messagesPerHour: number; burstLimit: number; burstWindow: number };
  limits: Record<'frames' | 'typing' | 'requests' | 'groupCreates' | 'membershipChanges', { limit: number; windowMs: number }>;
}): PipelineRules {
  const r = config.rateLimit;
  return {
    frames: { name: 'frames', ...config.limits.frames },
    messages: [
      { name: 'burst', limit: r.burstLimit, windowMs: r.burstWindow },
      { name: 'minute', limit: r.messagesPerMinute, windowMs: 60_000 },
      { name: 'hour', limit: r.messagesPerHour, windowMs: 3_600_000 },
    ],
    typing: [{ name: 'typing', ...config.limits.typing }],
    requests: [{ name: 'requests', ...config.limits.requests }],
    groupCreates: [{ name: 'group_creates', ...config.limits.groupCreates }],
    membershipChanges: [{ name: 'membership_changes', ...config.limits.membershipChanges }],
  };
}

// Replies without variable parts are built once.
const INVALID_JSON = reply('invalid_json', { type: 'error', reason: 'invalid_json' });
const INVALID_FORMAT = reply('invalid_format', { type: 'error', reason: 'invalid_format' });
const UNKNOWN_TYPE = reply('unknown_type', { type: 'error', reason: 'unknown_type' });
// A `__proto__`, `constructor` or `prototype` key (safe-json.ts) is refused as any unknown key is; its place is not told.
const FORBIDDEN_KEY_DETAILS = [{ path: '', rule: 'unrecognized_keys' }];
const FORBIDDEN_KEY = reply('validation_failed', { type: 'error', reason: 'validation_failed', details: FORBIDDEN_KEY_DETAILS }, true, ':unrecognized_keys');
const BINARY = reply('binary_frame', { type: 'error', reason: 'binary_not_supported' });
const FORBIDDEN = reply('forbidden', { type: 'error', reason: 'forbidden' });
const TYPING_DROPPED = drop('typing_throttled');
const NOT_AUTHENTICATED = closeWith('not_authenticated', CloseCode.NOT_AUTHENTICATED);

function rateLimited(decision: Extract<RateDecision, { allowed: false }>, clientMsgId?: string, requestId?: string): Rejection {
  const reason = RULE_REASON[decision.rule] ?? 'frame_limit';
  const frame = { type: 'rate_limited' as const, reason, retryAfter: decision.retryAfter };
  return reply('rate_limited', withRequestId(clientMsgId === undefined ? frame : { ...frame, clientMsgId }, requestId), true, decision.rule);
}

/** `{clientMsgId}` for a refusal's spread, `{}` without one (built only when refusing). */
function clientMsgIdOf(frame: { clientMsgId?: string | undefined }): { clientMsgId?: string } {
  return frame.clientMsgId !== undefined ? { clientMsgId: frame.clientMsgId } : {};
}

/** The refusal of a request that carried a `requestId` names it. */
function forbidden(requestId: string | undefined): Rejection {
  return requestId === undefined ? FORBIDDEN : reply('forbidden', { type: 'error', reason: 'forbidden', requestId });
}

/** Runs `then` on a decision that may or may not be a promise, staying sync when it is not. */
function onDecision(
  result: RateDecision | Promise<RateDecision>,
  then: (d: RateDecision) => void | Promise<void>,
): void | Promise<void> {
  return result instanceof Promise ? result.then(then) : then(result);
}

/**
 * Per-user limits on Redis answer asynchronously. The session is NOT held for them: replies on one
 * Redis connection come back in command order, so frames still run in the order they arrived,
 * and a burst of frames does not pile up in the session queue (which would close it with 4029).
 */
function onUserDecision(
  session: Session,
  result: RateDecision | Promise<RateDecision>,
  then: (d: RateDecision) => void | Promise<void>,
  /** Called instead of `then` when the frame is dropped (its session closed, or Redis failed). */
  dropped?: () => void,
): void {
  if (!(result instanceof Promise)) {
    void then(result);
    return;
  }
  // A session closed while Redis decided (a ban, a revocation, an expired token, end_session) acts
  // no more: its frame is dropped, as one arriving after the close would be.
  result
    .then(
      (d) => (session.isOpen ? then(d) : dropped?.()),
      () => {
        dropped?.();
        session.sendFrame({ type: 'error', reason: 'internal_error' });
      },
    )
    // A handler that threw after the decision: a bug, logged as one (as Session does for a synchronous one).
    .catch((err: unknown) => session.internalError(err));
}

export type FrameHandler = (session: Session, data: Buffer, isBinary: boolean) => void | Promise<void>;

/**
 * A session's rate-limit keys, built once per session instead of once per frame: a fresh key
 * string per frame is an allocation plus a hash on every limiter lookup.
 */
interface LimitKeys {
  readonly frames: string;
  readonly messages: string;
  readonly typing: string;
  readonly requests: string;
}

const limitKeys = new WeakMap<Session, LimitKeys>();

/** Only for active sessions: `userKey` is fixed from activation on (a refresh keeps the user). */
function keysOf(session: Session): LimitKeys {
  let keys = limitKeys.get(session);
  if (keys === undefined) {
    const user = session.userKey;
    keys = { frames: `f:${session.id}`, messages: `m:${user}`, typing: `t:${user}`, requests: `r:${user}` };
    limitKeys.set(session, keys);
  }
  return keys;
}

export function createFramePipeline(o: FramePipelineOptions): FrameHandler {
  const { limiter, rules, chat } = o;

  /** JSON → schema: a frame or a rejection (the connection survives it). */
  function decode(data: Buffer): ClientFrame | Rejection {
    const parsed = parseSafeJson(data.toString('utf8'));
    if (!parsed.ok) return parsed.reason === 'invalid_json' ? INVALID_JSON : parsed.reason === 'forbidden_key' ? FORBIDDEN_KEY : INVALID_FORMAT;
    const valid = validateFrame(parsed.value);
    if (valid.ok) return valid.frame;
    if (valid.reason === 'validation_failed') {
      return reply('validation_failed', { type: 'error', reason: 'validation_failed', details: valid.details }, true, valid.details.map((d) => `${d.path}:${d.rule}`).join(','));
    }
    return valid.reason === 'unknown_type' ? UNKNOWN_TYPE : INVALID_FORMAT;
  }

  function beforeAuth(session: Session, data: Buffer, isBinary: boolean): void | Promise<void> {
    if (session.state === 'authenticating') return session.reject(NOT_AUTHENTICATED);
    if (isBinary) return session.reject(NOT_AUTHENTICATED);
    const frame = decode(data);
    if (frame instanceof Rejection || frame.type !== 'auth') return session.reject(NOT_AUTHENTICATED);
    // Accepted as afterAuth accepts a frame (decoded, before its handler): first auths count too.
    o.countFrame(frame.type);
    return o.authenticator.authenticate(session, frame);
  }

  function chatMessage(session: Session, frame: ChatMessageFrame): void | Promise<void> {
    const identity = session.identity!;
    // Errors about a schema-valid chat_message name its clientMsgId (docs/protocol.md §3).
    if (!permissionsFor(o.roles, identity.role).send) {
      return session.reject(frame.clientMsgId === undefined ? FORBIDDEN : reply('forbidden', { type: 'error', reason: 'forbidden', ...clientMsgIdOf(frame) }));
    }
    const content = processContent(frame.content, o.contentPolicy);
    if (!content.ok) {
      return session.reject(reply('invalid_content', { type: 'error', reason: 'invalid_content', ...clientMsgIdOf(frame) }, true, content.rule));
    }
    let attachments;
    if (frame.attachments !== undefined) {
      attachments = [];
      for (const a of frame.attachments) {
        const name = sanitizeDisplayName(a.name);
        if (!name.ok) return session.reject(reply('invalid_content', { type: 'error', reason: 'invalid_content', ...clientMsgIdOf(frame) }, true, `attachments.name:${name.rule}`));
        const url = sanitizeAttachmentUrl(a.url);
        if (!url.ok) return session.reject(reply('invalid_content', { type: 'error', reason: 'invalid_content', ...clientMsgIdOf(frame) }, true, `attachments.url:${url.rule}`));
        attachments.push({ type: a.type, url: url.url, name: name.name });
      }
    }
    const processed: ProcessedMessage = { content: content.content, mentions: content.mentions, hashtags: content.hashtags, links: content.links };
    if (attachments !== undefined) processed.attachments = attachments;
    // Not awaited: storing is batched per turn; acks and deliveries follow commit order.
    void chat.sendMessage(identity, session, frame, processed);
  }

  /** Edits and deletes: the role's `send`; an edit's content passes the same policy and sanitizer as a new message. */
  function messageChange(session: Session, frame: EditMessageFrame | DeleteMessageFrame): void {
    const identity = session.identity!;
    const ids = {
      ...(frame.clientMsgId !== undefined ? { clientMsgId: frame.clientMsgId } : {}),
      ...(frame.requestId !== undefined ? { requestId: frame.requestId } : {}),
    };
    if (!permissionsFor(o.roles, identity.role).send) return session.reject(reply('forbidden', { type: 'error', reason: 'forbidden', ...ids }));
    if (frame.type === 'delete_message') {
      void o.changes.delete(identity, session, frame);
      return;
    }
    const content = processContent(frame.content, o.contentPolicy);
    if (!content.ok) return session.reject(reply('invalid_content', { type: 'error', reason: 'invalid_content', ...ids }, true, content.rule));
    void o.changes.edit(identity, session, frame, { content: content.content, mentions: content.mentions, hashtags: content.hashtags, links: content.links });
  }

  /** create_group needs the role's `createGroup`; the other changes need `send` (leaving never needs anything). */
  function groupChange(session: Session, frame: GroupChangeFrame): void {
    const identity = session.identity!;
    const permissions = permissionsFor(o.roles, identity.role);
    const creating = frame.type === 'create_group';
    // A create's refusals name its key, as a message's do (the only group change that has one).
    const clientMsgId = creating ? frame.clientMsgId : undefined;
    if (creating ? !permissions.createGroup : frame.type !== 'leave_group' && !permissions.send) {
      return session.reject(clientMsgId === undefined ? forbidden(frame.requestId) : reply('forbidden', withRequestId({ type: 'error', reason: 'forbidden', clientMsgId }, frame.requestId)));
    }
    let name: string | undefined;
    if (frame.type === 'create_group' || frame.type === 'rename_group') {
      const clean = sanitizeDisplayName(frame.name);
      if (!clean.ok) return session.reject(reply('invalid_content', withRequestId({ type: 'error', reason: 'invalid_content', ...clientMsgIdOf({ clientMsgId }) }, frame.requestId), true, `name:${clean.rule}`));
      name = clean.name;
    }
    const key = creating ? `gc:${session.userKey}` : `gm:${session.userKey}`;
    onUserDecision(session, limiter.consume(key, creating ? rules.groupCreates : rules.membershipChanges), (d) => {
      if (!d.allowed) return session.reject(rateLimited(d, clientMsgId, frame.requestId));
      void o.groups.change(identity, session, frame, name);
    });
  }

  const maxPendingRequests = o.maxPendingRequests ?? 32;
  /** Only connections with requests in flight have an entry. */
  const pendingRequests = new WeakMap<Session, PendingRequests>();

  /** Reads and position moves: the role's `read`, and the per-user request budget. */
  function request(session: Session, requestId: string | undefined, run: () => Promise<void>): void | Promise<void> {
    let pending = pendingRequests.get(session);
    if (pending !== undefined && pending.count >= maxPendingRequests) {
      // Replies wait for a socket the client does not read: this frame, and the session's next
      // ones (queued, maxQueuedFrames, then 4029), wait until one of the requests before it ends.
      const entry = pending;
      return new Promise<void>((resolve) => {
        entry.wake = resolve;
      }).then(() => (session.isOpen ? request(session, requestId, run) : undefined));
    }
    if (!permissionsFor(o.roles, session.identity!.role).read) return session.reject(forbidden(requestId));
    if (pending === undefined) pendingRequests.set(session, (pending = { count: 0, wake: undefined }));
    const entry = pending;
    // Counted before the rate decision: a Redis answer comes later, and the frames before it must see this one.
    entry.count++;
    const release = (): void => {
      entry.count--;
      const wake = entry.wake;
      if (wake !== undefined) {
        entry.wake = undefined;
        wake();
      } else if (entry.count === 0 && pendingRequests.get(session) === entry) pendingRequests.delete(session);
    };
    onUserDecision(
      session,
      limiter.consume(keysOf(session).requests, rules.requests),
      (d) => {
        if (!d.allowed) {
          release();
          return session.reject(rateLimited(d, undefined, requestId));
        }
        run().then(release, release);
      },
      release,
    );
  }

  function ack(session: Session, upTo: number): void {
    const identity = session.identity!;
    if (!permissionsFor(o.roles, identity.role).read) return session.reject(FORBIDDEN);
    const judge = (d: RateDecision): boolean => {
      if (!d.allowed && session.isOpen) session.reject(rateLimited(d));
      return d.allowed;
    };
    const decision = limiter.consume(keysOf(session).requests, rules.requests);
    // Unlike other frames, an ack still counts if its session closed while Redis decided: it
    // reports what the device received (the SDK acks, then closes; see ChatService.ack).
    const allowed =
      decision instanceof Promise
        ? decision.then(judge, () => {
            session.sendFrame({ type: 'error', reason: 'internal_error' });
            return false;
          })
        : judge(decision);
    // Capped at what this session's stream sent: a client acking ahead (mid-replay, buggy or
    // hostile) would move the user's resume point past events no device received.
    chat
      .ack(identity, session.deviceId, Math.min(upTo, session.ackablePos), allowed)
      .catch(() => session.sendFrame({ type: 'error', reason: 'storage_unavailable' }));
  }

  /**
   * A frame that was still queued when its socket closed (it arrived while the session was busy:
   * a token refresh, a request past its bound). Only an `ack` still acts — it reports what the
   * device received, and the client that acked, then closed, must not be replayed that (see
   * ChatService.ack); everything else is dropped unanswered, as after a close.
   */
  function afterClose(session: Session, data: Buffer, isBinary: boolean): void {
    if (isBinary || session.identity === undefined) return;
    const frame = decode(data);
    // Nothing is answered or struck on a closed session: a refused ack is just dropped.
    if (frame instanceof Rejection || frame.type !== 'ack' || !permissionsFor(o.roles, session.identity.role).read) return;
    o.countFrame(frame.type);
    // Acks are cumulative: the session hands its whole queue back in one synchronous loop
    // (Session.handBackQueue), and only the highest ack is written, charged once. One by one, a
    // nearly spent budget would write the lower ones and drop the last, replaying the device the rest.
    const queued = closingAcks.get(session);
    closingAcks.set(session, Math.max(queued ?? 0, frame.upTo));
    if (queued !== undefined) return;
    queueMicrotask(() => {
      const upTo = closingAcks.get(session)!;
      closingAcks.delete(session);
      ack(session, upTo);
    });
  }
  /** The highest `upTo` of the acks a closing session is handing back (see afterClose). */
  const closingAcks = new WeakMap<Session, number>();

  function active(session: Session, frame: ClientFrame): void | Promise<void> {
    const identity = session.identity!;
    switch (frame.type) {
      case 'auth':
        return o.authenticator.refresh(session, frame.token);
      case 'chat_message':
        return onUserDecision(session, limiter.consume(keysOf(session).messages, rules.messages), (d) =>
          d.allowed ? chatMessage(session, frame) : session.reject(rateLimited(d, frame.clientMsgId)),
        );
      case 'typing_indicator':
        if (!permissionsFor(o.roles, identity.role).send) return session.reject(FORBIDDEN);
        return onUserDecision(session, limiter.consume(keysOf(session).typing, rules.typing), (d) => {
          if (!d.allowed) return session.reject(TYPING_DROPPED);
          chat.typing(identity, session, frame).catch(() => session.sendFrame({ type: 'error', reason: 'storage_unavailable' }));
        });
      case 'ack':
        return ack(session, frame.upTo);
      case 'history':
        return request(session, frame.requestId, () => chat.history(identity, session, frame));
      case 'list_conversations':
        return request(session, frame.requestId, () => chat.listConversations(identity, session, frame));
      case 'read':
        return request(session, frame.requestId, () => chat.markRead(identity, session, frame));
      case 'edit_message':
      case 'delete_message':
        // Count against the same per-user budget as messages.
        return onUserDecision(session, limiter.consume(keysOf(session).messages, rules.messages), (d) =>
          d.allowed ? messageChange(session, frame) : session.reject(rateLimited(d, frame.clientMsgId, frame.requestId)),
        );
      case 'presence':
        return request(session, frame.requestId, () => o.presence.query(identity, session, frame));
      case 'set_presence':
        return request(session, frame.requestId, () => o.presence.setVisible(identity, session, frame));
      case 'create_group':
      case 'add_members':
      case 'remove_members':
      case 'leave_group':
      case 'rename_group':
      case 'set_role':
        return groupChange(session, frame);
      case 'ping':
        // Costs the frame budget only (already spent above): liveness must not starve on a busy user's request budget.
        return session.sendFrame(withRequestId({ type: 'pong' as const }, frame.requestId));
      case 'list_sessions':
      case 'end_session': {
        // A user's own sessions: no role permission needed, only the request budget.
        const handler = o.userSessions;
        if (handler === undefined) return session.reject(UNKNOWN_TYPE);
        return onUserDecision(session, limiter.consume(keysOf(session).requests, rules.requests), (d) =>
          d.allowed ? void handler(session, frame) : session.reject(rateLimited(d, undefined, frame.requestId)),
        );
      }
    }
  }

  const frameRules = [rules.frames];
  const connectionLimiter = o.connectionLimiter ?? limiter;

  function afterAuth(session: Session, data: Buffer, isBinary: boolean): void | Promise<void> {
    // Every frame, valid or not, spends the per-connection frame budget first.
    return onDecision(connectionLimiter.consume(keysOf(session).frames, frameRules), (d) => {
      if (!d.allowed) return session.reject(rateLimited(d));
      if (isBinary) return session.reject(BINARY);
      const frame = decode(data);
      if (frame instanceof Rejection) return session.reject(frame);
      o.countFrame(frame.type);
      return active(session, frame);
    });
  }

  return (session, data, isBinary) =>
    session.state === 'active'
      ? afterAuth(session, data, isBinary)
      : session.state === 'closing'
        ? afterClose(session, data, isBinary)
        : beforeAuth(session, data, isBinary);
}
