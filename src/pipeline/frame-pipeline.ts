/**
 * The message pipeline. Every frame crosses it in design.md's order:
 *
 *   size (ws maxPayload; pre-auth cap here) → frame budget → JSON parse → schema →
 *   per-type rate limit → authorization → content policy → sanitize → handler
 *
 * Each step returns the next value or a `Rejection`; `Session.reject` turns a rejection into one
 * reply or close. Steps stay synchronous while the adapters are (memory limiter). Token
 * verification makes the session hold later frames until it settles; per-user Redis limits keep
 * order through Redis' FIFO replies instead (see `onUserDecision`); storage is batched and acked
 * in commit order.
 */
import { CloseCode } from '../protocol/close-codes.js';
import type { ClientFrame, ChatMessageFrame } from '../protocol/client-frames.js';
import type { RateLimitReasonValue } from '../protocol/reasons.js';
import type { Limiter, RateDecision, RateRule } from '../limits/limiter.js';
import type { Session } from '../session/session.js';
import type { ChatService } from '../chat/chat-service.js';
import { permissionsFor, type RolePolicy } from '../chat/authorization.js';
import { processContent, sanitizeAttachmentName } from '../chat/process-content.js';
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
}

export interface FramePipelineOptions {
  maxPreAuthMessageSize: number;
  contentPolicy: ContentPolicy;
  roles: RolePolicy;
  rules: PipelineRules;
  limiter: Limiter;
  /** Per-connection budgets (frames); node-local. Defaults to `limiter`. */
  connectionLimiter?: Limiter;
  chat: ChatService;
  authenticator: Authenticator;
  countFrame(type: string): void;
  /** `list_sessions` / `end_session` (src/pipeline/user-sessions.ts); unknown_type without it. */
  userSessions?: UserSessionsHandler;
}

const RULE_REASON: Record<string, RateLimitReasonValue> = {
  burst: 'burst_limit',
  minute: 'minute_limit',
  hour: 'hour_limit',
  frames: 'frame_limit',
};

export function rateRules(config: {
  rateLimit: { messagesPerMinute: number; messagesPerHour: number; burstLimit: number; burstWindow: number };
  limits: { frames: { limit: number; windowMs: number }; typing: { limit: number; windowMs: number }; requests: { limit: number; windowMs: number } };
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
  };
}

// Replies without variable parts are built once.
const INVALID_JSON = reply('invalid_json', { type: 'error', reason: 'invalid_json' });
const INVALID_FORMAT = reply('invalid_format', { type: 'error', reason: 'invalid_format' });
const UNKNOWN_TYPE = reply('unknown_type', { type: 'error', reason: 'unknown_type' });
const BINARY = reply('binary_frame', { type: 'error', reason: 'binary_not_supported' });
const FORBIDDEN = reply('forbidden', { type: 'error', reason: 'forbidden' });
const TYPING_DROPPED = drop('typing_throttled');
const PRE_AUTH_TOO_BIG = closeWith('pre_auth_too_large', CloseCode.MESSAGE_TOO_BIG);
const NOT_AUTHENTICATED = closeWith('not_authenticated', CloseCode.NOT_AUTHENTICATED);

function rateLimited(decision: Extract<RateDecision, { allowed: false }>, clientMsgId?: string): Rejection {
  const reason = RULE_REASON[decision.rule] ?? 'frame_limit';
  const frame = clientMsgId === undefined
    ? { type: 'rate_limited' as const, reason, retryAfter: decision.retryAfter }
    : { type: 'rate_limited' as const, reason, retryAfter: decision.retryAfter, clientMsgId };
  return reply('rate_limited', frame, true, decision.rule);
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
): void {
  if (!(result instanceof Promise)) {
    void then(result);
    return;
  }
  result.then(then).catch(() => session.sendFrame({ type: 'error', reason: 'internal_error' }));
}

export type FrameHandler = (session: Session, data: Buffer, isBinary: boolean) => void | Promise<void>;

export function createFramePipeline(o: FramePipelineOptions): FrameHandler {
  const { limiter, rules, chat } = o;

  /** JSON → schema: a frame or a rejection (the connection survives it). */
  function decode(data: Buffer): ClientFrame | Rejection {
    const parsed = parseSafeJson(data.toString('utf8'));
    if (!parsed.ok) return parsed.reason === 'invalid_json' ? INVALID_JSON : INVALID_FORMAT;
    const valid = validateFrame(parsed.value);
    if (valid.ok) return valid.frame;
    if (valid.reason === 'validation_failed') {
      return reply('validation_failed', { type: 'error', reason: 'validation_failed', details: valid.details }, true, valid.details.map((d) => `${d.path}:${d.rule}`).join(','));
    }
    return valid.reason === 'unknown_type' ? UNKNOWN_TYPE : INVALID_FORMAT;
  }

  function beforeAuth(session: Session, data: Buffer, isBinary: boolean): void | Promise<void> {
    if (session.state === 'authenticating') return session.reject(NOT_AUTHENTICATED);
    if (data.length > o.maxPreAuthMessageSize) return session.reject(PRE_AUTH_TOO_BIG);
    if (isBinary) return session.reject(NOT_AUTHENTICATED);
    const frame = decode(data);
    if (frame instanceof Rejection || frame.type !== 'auth') return session.reject(NOT_AUTHENTICATED);
    session.deviceId = frame.deviceId;
    return o.authenticator.authenticate(session, frame.token);
  }

  function chatMessage(session: Session, frame: ChatMessageFrame): void | Promise<void> {
    const identity = session.identity!;
    // Errors about a schema-valid chat_message name its clientMsgId (docs/protocol.md §3).
    const cid = frame.clientMsgId !== undefined ? { clientMsgId: frame.clientMsgId } : {};
    if (!permissionsFor(o.roles, identity.role).send) {
      return session.reject(frame.clientMsgId === undefined ? FORBIDDEN : reply('forbidden', { type: 'error', reason: 'forbidden', ...cid }));
    }
    const content = processContent(frame.content, o.contentPolicy);
    if (!content.ok) {
      return session.reject(reply('invalid_content', { type: 'error', reason: 'invalid_content', ...cid }, true, content.rule));
    }
    let attachments;
    if (frame.attachments !== undefined) {
      attachments = [];
      for (const a of frame.attachments) {
        const name = sanitizeAttachmentName(a.name);
        if (!name.ok) return session.reject(reply('invalid_content', { type: 'error', reason: 'invalid_content', ...cid }, true, `attachments.name:${name.rule}`));
        attachments.push({ type: a.type, url: a.url, name: name.name });
      }
    }
    const processed = { content: content.content, mentions: content.mentions, hashtags: content.hashtags, links: content.links, ...(attachments ? { attachments } : {}) };
    // Not awaited: storing is batched per turn; acks and deliveries follow commit order.
    void chat.sendMessage(identity, session, frame, processed);
  }

  function active(session: Session, frame: ClientFrame): void | Promise<void> {
    const identity = session.identity!;
    switch (frame.type) {
      case 'auth':
        return o.authenticator.refresh(session, frame.token);
      case 'chat_message':
        return onUserDecision(session, limiter.consume(`m:${session.userKey}`, rules.messages), (d) =>
          d.allowed ? chatMessage(session, frame) : session.reject(rateLimited(d, frame.clientMsgId)),
        );
      case 'typing_indicator':
        if (!permissionsFor(o.roles, identity.role).send) return session.reject(FORBIDDEN);
        return onUserDecision(session, limiter.consume(`t:${session.userKey}`, rules.typing), (d) =>
          d.allowed ? chat.typing(identity, frame.recipientId, frame.isTyping) : session.reject(TYPING_DROPPED),
        );
      case 'ack':
      case 'history':
        if (!permissionsFor(o.roles, identity.role).read) return session.reject(FORBIDDEN);
        return onUserDecision(session, limiter.consume(`r:${session.userKey}`, rules.requests), (d) => {
          if (!d.allowed) return session.reject(rateLimited(d));
          const done = frame.type === 'ack' ? chat.ack(identity, frame.messageIds) : chat.history(identity, session, frame);
          void done.catch(() => session.sendFrame({ type: 'error', reason: 'storage_unavailable' }));
        });
      case 'list_sessions':
      case 'end_session': {
        const handler = o.userSessions;
        if (handler === undefined) return session.reject(UNKNOWN_TYPE);
        return onUserDecision(session, limiter.consume(`r:${session.userKey}`, rules.requests), (d) =>
          d.allowed ? void handler(session, frame) : session.reject(rateLimited(d)),
        );
      }
    }
  }

  function afterAuth(session: Session, data: Buffer, isBinary: boolean): void | Promise<void> {
    // Every frame, valid or not, spends the per-connection frame budget first.
    return onDecision((o.connectionLimiter ?? limiter).consume(`f:${session.id}`, [rules.frames]), (d) => {
      if (!d.allowed) return session.reject(rateLimited(d));
      if (isBinary) return session.reject(BINARY);
      const frame = decode(data);
      if (frame instanceof Rejection) return session.reject(frame);
      o.countFrame(frame.type);
      return active(session, frame);
    });
  }

  return (session, data, isBinary) =>
    session.state === 'active' ? afterAuth(session, data, isBinary) : beforeAuth(session, data, isBinary);
}
