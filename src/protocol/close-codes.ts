/**
 * WebSocket close codes Rampart sends. 1xxx are RFC 6455; 4xxx are ours and documented in
 * docs/protocol.md (which also lists 1007 and 1008, sent by `ws` itself). Server and client SDK import this one table so they can never disagree.
 */
export const CloseCode = {
  /** Server is shutting down (RFC 6455 "going away"). */
  GOING_AWAY: 1001,
  /** Protocol error detected by `ws` (malformed frame). Binary frames get `error binary_not_supported`, not a close. */
  PROTOCOL_ERROR: 1002,
  /** Frame over `maxMessageSize` (or the pre-auth cap). */
  MESSAGE_TOO_BIG: 1009,
  /** No pong within `heartbeatTimeout`. */
  HEARTBEAT_TIMEOUT: 4000,
  /** No `auth` frame within `authTimeout`. */
  AUTH_TIMEOUT: 4001,
  /** Some other frame arrived before `auth`. */
  NOT_AUTHENTICATED: 4002,
  /** The token was invalid (after an `auth_failure` frame). */
  INVALID_TOKEN: 4003,
  /** The token expired and no fresh `auth` arrived in time. */
  TOKEN_EXPIRED: 4005,
  /** `maxConnectionsPerUser` reached (or this session was the oldest and got replaced). */
  TOO_MANY_SESSIONS: 4008,
  /** The client kept flooding after `rate_limited`; the user is penalised for `penaltyMs`. */
  RATE_LIMIT_ABUSE: 4029,
  /** The client does not read: its outbound buffer passed `maxBufferedBytes`. */
  SLOW_CONSUMER: 4030,
  /** A later `auth` tried to switch to another identity. */
  IDENTITY_CHANGE: 4009,
  /** The user is banned (after `auth_failure banned`): at `auth`, or an open session when the ban is set. */
  BANNED: 4010,
  /** The user ended this session from another of their sessions (`end_session`). */
  ENDED_BY_USER: 4011,
  /** An operator disconnected this session through the admin API. */
  DISCONNECTED_BY_ADMIN: 4012,
  /** A backend is unavailable: Redis (cluster), the JWKS endpoint or an unknown `kid`, or storage for the resume point. */
  SERVICE_UNAVAILABLE: 4503,
} as const;

export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];
