/**
 * What a close means for reconnecting. Some refusals cannot heal by retrying (a bad token, a
 * forbidden origin, an identity change, a ban): the client stops and says why. A server shutdown
 * (1001) is honoured with a randomized delay; everything else backs off.
 */
import { CloseCode } from '../protocol/close-codes.js';
import { AuthFailureReason } from '../protocol/reasons.js';

export type CloseVerdict =
  | { kind: 'permanent'; reason: string }
  | { kind: 'shutdown' }
  /** Reconnect at once with a fresh token (the old one expired). */
  | { kind: 'fresh_token' }
  | { kind: 'backoff' };

// Codes and reasons that only some protocol versions define are looked up by name, so the
// protocol module stays the single source and this file compiles against either.
const codes = CloseCode as Readonly<Record<string, number>>;
const reasons = AuthFailureReason as Readonly<Record<string, string>>;
/** An operator banned the user. */
const BANNED = codes.BANNED;
/** The user ended this session from another of their sessions: coming back would undo that. */
const ENDED_BY_USER = codes.ENDED_BY_USER;

const PERMANENT_AUTH_REASONS: ReadonlySet<string> = new Set(
  [AuthFailureReason.INVALID_TOKEN, AuthFailureReason.TOKEN_TOO_LARGE, AuthFailureReason.IDENTITY_CHANGE, reasons.BANNED].filter((r): r is string => r !== undefined),
);

export interface CloseFacts {
  code: number;
  /** The `auth_failure` reason that preceded the close, if any. */
  authFailure?: string;
  /** HTTP status of a refused handshake (Node's `ws` reports it; browsers cannot see it). */
  httpStatus?: number;
  /** Whether the token can be renewed (a `getToken()` callback, not a fixed string). */
  renewable: boolean;
  /**
   * Whether the socket reached `auth_success` before it closed. A 1009 before it is the `auth`
   * frame over the server's pre-auth frame cap (`maxPreAuthMessageSize`): the token is too large.
   */
  authenticated?: boolean;
}

export function classifyClose(f: CloseFacts): CloseVerdict {
  if (f.httpStatus === 403) return { kind: 'permanent', reason: 'origin_not_allowed' };
  if (f.httpStatus === 401) return { kind: 'permanent', reason: 'handshake_unauthorized' };
  if (f.httpStatus === 404) return { kind: 'permanent', reason: 'not_found' };
  if (f.authFailure !== undefined && PERMANENT_AUTH_REASONS.has(f.authFailure)) return { kind: 'permanent', reason: f.authFailure };
  if (f.authFailure === AuthFailureReason.TOKEN_EXPIRED || f.code === CloseCode.TOKEN_EXPIRED) {
    return f.renewable ? { kind: 'fresh_token' } : { kind: 'permanent', reason: AuthFailureReason.TOKEN_EXPIRED };
  }
  // Every connection would send the same kind of token and be closed the same way.
  if (f.code === CloseCode.MESSAGE_TOO_BIG && f.authenticated === false) return { kind: 'permanent', reason: AuthFailureReason.TOKEN_TOO_LARGE };
  if (f.code === CloseCode.INVALID_TOKEN && f.authFailure === undefined) return { kind: 'permanent', reason: AuthFailureReason.INVALID_TOKEN };
  if (f.code === CloseCode.IDENTITY_CHANGE) return { kind: 'permanent', reason: AuthFailureReason.IDENTITY_CHANGE };
  if (BANNED !== undefined && f.code === BANNED) return { kind: 'permanent', reason: 'banned' };
  if (ENDED_BY_USER !== undefined && f.code === ENDED_BY_USER) return { kind: 'permanent', reason: 'ended_by_user' };
  if (f.code === CloseCode.GOING_AWAY) return { kind: 'shutdown' };
  return { kind: 'backoff' };
}

/**
 * A refusal's `details` (`[{path, rule}]`, validation_failed) as the `detail` string the SDK's
 * errors carry: `path: rule` joined by `; `. Undefined when there are none.
 */
export function detailOf(details: unknown): string | undefined {
  if (!Array.isArray(details) || details.length === 0) return undefined;
  return details.map((d: { path?: unknown; rule?: unknown }) => `${String(d?.path ?? '')}: ${String(d?.rule ?? '')}`).join('; ');
}
