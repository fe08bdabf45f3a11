/** Every `reason` string a server frame can carry. Stable: clients switch on them. */
export const ErrorReason = {
  INVALID_JSON: 'invalid_json',
  INVALID_FORMAT: 'invalid_format',
  UNKNOWN_TYPE: 'unknown_type',
  VALIDATION_FAILED: 'validation_failed',
  FORBIDDEN: 'forbidden',
  INVALID_CONTENT: 'invalid_content',
  INBOX_FULL: 'inbox_full',
  /** A group would have more than `chat.maxGroupMembers` members. */
  TOO_MANY_MEMBERS: 'too_many_members',
  /** A user would be in more than `chat.maxGroupsPerUser` groups. */
  TOO_MANY_GROUPS: 'too_many_groups',
  STORAGE_UNAVAILABLE: 'storage_unavailable',
  BINARY_NOT_SUPPORTED: 'binary_not_supported',
  INTERNAL: 'internal_error',
} as const;
export type ErrorReasonValue = (typeof ErrorReason)[keyof typeof ErrorReason];

export const AuthFailureReason = {
  INVALID_TOKEN: 'invalid_token',
  TOKEN_EXPIRED: 'token_expired',
  TOKEN_TOO_LARGE: 'token_too_large',
  IDENTITY_CHANGE: 'identity_change',
  TOO_MANY_SESSIONS: 'too_many_sessions',
  LOCKED_OUT: 'locked_out',
  PENALISED: 'penalised',
  UNAVAILABLE: 'unavailable',
  /** An operator banned the user (admin API); the ban lasts the duration the operator chose. */
  BANNED: 'banned',
} as const;
export type AuthFailureReasonValue = (typeof AuthFailureReason)[keyof typeof AuthFailureReason];

export const RateLimitReason = {
  BURST: 'burst_limit',
  MINUTE: 'minute_limit',
  HOUR: 'hour_limit',
  FRAMES: 'frame_limit',
  /** `create_group` and membership changes: `limits.groupCreates` and `limits.membershipChanges`. */
  GROUP_CHANGES: 'group_limit',
} as const;
export type RateLimitReasonValue = (typeof RateLimitReason)[keyof typeof RateLimitReason];
