/**
 * The configuration schema: every key, its rule and its default, in one place. The article's
 * names and defaults are kept; what the article lacks lives under `limits`, `chat` and friends.
 * Unknown keys are an error (strict objects), never silently ignored.
 */
import { z } from 'zod';

const positiveInt = z.number().int().min(1);
const ms = z.number().int().min(1);

/** An encryption key id: short and plain, so that an error may name it (a key put where its id belongs never is). */
export const CONTENT_KEY_ID = /^[A-Za-z0-9._-]{1,32}$/;

/** A bearer credential as an Authorization header can carry it (what the admin API and /metrics accept). */
const BEARER_TOKEN = /^[\x21-\x7e]+$/;
const BEARER_RULE = 'printable ASCII without spaces (it is sent as "Authorization: Bearer <token>")';

/** A budget of `limit` events per `windowMs`; each field has its own default, so one can be set alone. */
const rateRule = (limit: number, windowMs: number) =>
  z.strictObject({ limit: positiveInt.default(limit), windowMs: ms.default(windowMs) }).prefault({});

const JwtAlgorithmSchema = z.enum(['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']);
/** `typ` header values a token may carry (compared case-insensitively, `application/` prefix ignored). */
const JwtTypesSchema = z.array(z.string().min(1).max(64)).min(1);

/** One trusted token issuer besides (or instead of) the top-level `jwt` key: exactly one key source. */
const JwtIssuerSchema = z.strictObject({
  /** Matched exactly against the token's `iss` before any key is fetched. */
  issuer: z.string().min(1),
  secret: z.string().min(1).optional(),
  publicKeyFile: z.string().min(1).optional(),
  jwksUrl: z.url().optional(),
  /** Default: `jwt.audience`. */
  audience: z.string().min(1).optional(),
  /** Default: by key type, as for the top-level key. */
  algorithms: z.array(JwtAlgorithmSchema).min(1).optional(),
  /** Default: `jwt.types`. */
  types: JwtTypesSchema.optional(),
  /** Tenants (`tid`; `default` without one) this issuer may speak for. Default: any. */
  tenants: z.array(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/)).min(1).optional(),
});

/** Forward-secret AEAD suites only: the TLS 1.3 suites, and ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2. */
export const DEFAULT_TLS_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
].join(':');

export const ConfigSchema = z.strictObject({
  /** `production` refuses weak secrets, wildcard origins and plaintext without `behindProxy`. */
  mode: z.enum(['development', 'production']).default('development'),
  port: z.number().int().min(0).max(65535).default(8080),
  host: z.string().min(1).default('127.0.0.1'),
  /** Exact origins (`https://chat.example.com`) or patterns (`https://*.example.com`). Empty = this server's own http origins. */
  allowedOrigins: z.array(z.string().min(1)).default([]),
  /** Non-browser clients send no Origin; allowed unless this is false. */
  allowMissingOrigin: z.boolean().default(true),
  maxMessageSize: positiveInt.max(16 * 1024 * 1024).default(65536),
  /** Frame cap before authentication: the `auth` frame needs only a few KB. */
  maxPreAuthMessageSize: positiveInt.max(1024 * 1024).default(8192),
  authTimeout: ms.default(10000),
  rateLimit: z
    .strictObject({
      messagesPerMinute: positiveInt.default(60),
      messagesPerHour: positiveInt.default(1000),
      burstLimit: positiveInt.default(10),
      burstWindow: ms.default(1000),
    })
    .prefault({}),
  maxConnectionsPerUser: positiveInt.default(5),
  maxConnectionsPerIP: positiveInt.default(100),
  /**
   * Connections the kernel may hold for the main listener before it accepts them (capped by
   * net.core.somaxconn). Node's default, 511, overflows in a reconnect storm: dropped handshakes
   * wait for TCP's retransmit (1, 3, 7, 15 s…), so a few thousand clients take tens of seconds to get back.
   */
  listenBacklog: positiveInt.max(65535).default(4096),
  heartbeatInterval: ms.default(30000),
  heartbeatTimeout: ms.default(60000),
  jwt: z
    .strictObject({
      secret: z.string().min(1).optional(),
      publicKeyFile: z.string().min(1).optional(),
      jwksUrl: z.url().optional(),
      /** Explicit allowlist; default HS256 for a secret; for a public key by its type (RS256, PS256, ES256/384/512, EdDSA/Ed25519), for a JWKS RS256/ES256/EdDSA/Ed25519. */
      algorithms: z.array(JwtAlgorithmSchema).min(1).optional(),
      issuer: z.string().min(1).optional(),
      audience: z.string().min(1).optional(),
      /** Seconds of clock skew tolerated for `exp`/`nbf`. */
      clockTolerance: z.number().int().min(0).max(300).default(5),
      /** Tokens longer than this are refused before any parsing. */
      maxTokenLength: positiveInt.max(65536).default(4096),
      /** How long a JWKS answer is trusted before it is fetched again. */
      jwksCacheMaxAge: ms.default(600000),
      /** A token whose `kid` is not cached refetches the JWKS at most once per this many ms (else `unavailable`). */
      jwksRefetchIntervalMs: z.number().int().min(0).default(30000),
      /** A JWKS fetch that takes longer fails (the token gets `unavailable`, 4503). */
      jwksTimeoutMs: ms.default(5000),
      /** Allowed `typ` header values; a token of another type (refresh, ID token) is `invalid_token`. */
      types: JwtTypesSchema.default(['JWT', 'at+jwt']),
      /** Refuse tokens without a `typ` header. */
      requireType: z.boolean().default(false),
      /** Tokens expiring further ahead are refused, so every accepted token can be revoked until its `exp`. */
      maxTokenLifetimeMs: ms.default(365 * 86_400_000),
      /** Tenants (`tid`; `default` without one) the top-level key may speak for. Default: any. */
      tenants: z.array(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/)).min(1).optional(),
      /** Further issuers, each with its own key; a token is routed by its exact `iss`. */
      issuers: z.array(JwtIssuerSchema).default([]),
    })
    .prefault({}),
  allowQueryToken: z.boolean().default(false),
  /** Production refuses `allowQueryToken` (tokens end up in proxy logs) unless this acknowledges it. */
  allowQueryTokenInProduction: z.boolean().default(false),
  tls: z
    .strictObject({
      certFile: z.string().min(1),
      keyFile: z.string().min(1),
      minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
      maxVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.3'),
      /** OpenSSL cipher list (TLS 1.2 names and TLS 1.3 suite names). */
      ciphers: z.string().min(1).default(DEFAULT_TLS_CIPHERS),
      /** The server's cipher order wins over the client's. */
      honorCipherOrder: z.boolean().default(true),
      /** PEM bundle of the CAs that sign client certificates. */
      caFile: z.string().min(1).optional(),
      /** Ask for a client certificate; one that is presented must verify against `caFile`. */
      requestClientCert: z.boolean().default(false),
      /** Refuse handshakes without a client certificate signed by `caFile`. */
      requireClientCert: z.boolean().default(false),
      /** `Strict-Transport-Security: max-age=…` on HTTPS responses; 0 sends none. */
      hstsMaxAge: z.number().int().min(0).default(31536000),
    })
    .optional(),
  /** `sqlite:PATH` (embedded default) or a `postgres://` URL. */
  storage: z
    .string()
    .regex(/^(sqlite:.+|postgres(ql)?:\/\/.+)$/, 'must be sqlite:PATH or a postgres:// URL')
    .default('sqlite:./data/rampart.db'),
  /** Set it and the node joins a cluster: Redis bus, limiter and connection registry. */
  redisUrl: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional(),
  /** Namespace of every Redis key and channel of this cluster (nodes of one cluster must agree). */
  redisKeyPrefix: z.string().min(1).max(64).regex(/^[\w.:-]+$/, 'letters, digits, _ . : - only').default('rampart:'),
  /**
   * Every Redis connection is PINGed this often (0: never); one unanswered for `redisPingTimeoutMs`
   * is dropped and reconnected: a path that died without a FIN or RST is otherwise never noticed.
   */
  redisPingIntervalMs: z.number().int().min(0).max(60_000).default(1000),
  redisPingTimeoutMs: z.number().int().min(100).max(60_000).default(3000),
  /** Where the development signing key lives. */
  dataDir: z.string().min(1).default('./data'),
  /** IPs of trusted reverse proxies: only their X-Forwarded-For is believed. */
  behindProxy: z.array(z.union([z.ipv4(), z.ipv6()])).default([]),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Security log lines per refusal reason per second; past it refusals are only counted (a flood of refusals must not flood the log). */
  securityLogLinesPerSecond: z.number().int().min(1).max(100_000).default(20),
  limits: z
    .strictObject({
      /** Every frame, valid or not, counts here (per connection). */
      frames: rateRule(30, 1000),
      /** Typing indicators per sender; excess is dropped silently. */
      typing: rateRule(5, 1000),
      /** Requests per user: `history`, `ack`, `list_conversations`, `read`, `presence`, `set_presence`, `list_sessions`, `end_session`. */
      requests: rateRule(20, 1000),
      /** `create_group` frames per user. */
      groupCreates: rateRule(10, 60000),
      /** `add_members`/`remove_members`/`leave_group`/`rename_group`/`set_role` frames per user. */
      membershipChanges: rateRule(30, 60000),
      /** Limit hits tolerated within `violationWindowMs` before the socket is closed (4029). */
      maxViolations: positiveInt.default(20),
      violationWindowMs: ms.default(10000),
      /** How long a user closed with 4029 may not authenticate again. */
      penaltyMs: ms.default(60000),
      /** Handshakes per IP per minute (HTTP 429 beyond). */
      connectionAttemptsPerMinute: positiveInt.default(300),
      /** Sockets that have not authenticated yet, node-wide and per IP. */
      maxUnauthenticated: positiveInt.default(2000),
      maxUnauthenticatedPerIP: positiveInt.default(50),
      /** Per-IP limits count an IPv6 client by its network of this many bits (128: by address). */
      ipv6PrefixLength: z.number().int().min(32).max(128).default(64),
      /** Failed `auth` attempts per IP within `authFailureWindowMs` before the IP is locked out. */
      maxAuthFailures: positiveInt.default(10),
      authFailureWindowMs: ms.default(300000),
      authLockoutMs: ms.default(300000),
      /**
       * A socket whose unsent output exceeds this is closed (4030). At least 256 KiB: a replay waits
       * at half of it (never below 64 KiB, where a socket signals it drained) and a frame can be
       * ~66 KB, so less would close a client that reads, for what the server sent on its own.
       */
      maxBufferedBytes: z.number().int().min(256 * 1024).default(1024 * 1024),
      /** What happens at `maxConnectionsPerUser`: refuse the new session, or close the oldest. */
      onUserLimit: z.enum(['reject', 'close_oldest']).default('reject'),
      /** Frames queued while a session awaits an async step (token verification). */
      maxQueuedFrames: positiveInt.default(32),
      /** Total open sockets on this node. */
      maxConnections: positiveInt.default(50000),
      /** With Redis: a node that stops refreshing its liveness key (crash) frees its IP/user slots after this, and its lapse makes every node resync its sessions from storage. */
      nodeLivenessMs: ms.min(300).default(15000),
      /** Fragments one message may arrive in (ws `maxFragments`; beyond → close 1008). */
      maxFragments: positiveInt.default(64),
      /** Partial-frame chunks ws may buffer per socket (ws `maxBufferedChunks`). */
      maxBufferedChunks: positiveInt.default(1024),
      /** Pongs owed to a pinging client before further pings are ignored (ping floods). */
      maxPendingAutoPongs: positiveInt.default(8),
      /** Slow or incomplete HTTP requests are cut off after this. */
      headersTimeout: ms.default(10000),
      /** Bytes of HTTP request headers (every listener: WebSocket, admin, metrics); larger is 431. */
      maxHeaderSize: z.number().int().min(1024).max(65536).default(16384),
    })
    .prefault({}),
  chat: z
    .strictObject({
      /** `strict` adds the article's legacy-system list (no newlines, `;`, `&&`, `|`, `<`, `>`, backquote, `$(`, backslash). */
      contentPolicy: z.enum(['standard', 'strict']).default('standard'),
      /** Timeline events no device of a user acknowledged; a direct message beyond it gets `error inbox_full` (group members at the bound are skipped). */
      maxInboxSize: positiveInt.default(10000),
      /** Current members a group may have (the creator included). */
      maxGroupMembers: positiveInt.max(100000).default(256),
      /** Groups a user may be a current member of. */
      maxGroupsPerUser: positiveInt.default(500),
      /** What a new group member sees: events from their joining on, or the whole group. */
      groupHistory: z.enum(['since_join', 'all']).default('since_join'),
      /** Timeline entries per storage read during a replay or a gap fill. */
      replayPageSize: positiveInt.max(10000).default(200),
      /** Messages older than this are deleted, acked or not. */
      retentionDays: positiveInt.default(30),
      /** Storage reads of the resume point (then `auth_failure unavailable`, 4503) and of each timeline gap (then `error storage_unavailable`). */
      inboxReplayAttempts: positiveInt.max(10).default(3),
      /** Wait before the second read; doubled before each later one. */
      inboxReplayRetryMs: ms.default(500),
      /** After a gap read gave up, the stream reads again by itself, the delay doubling up to this. */
      inboxReplayMaxRetryMs: ms.default(30_000),
      /** Role → permissions. A role not listed here has none (deny by default). */
      roles: z
        // A permission left out is not given (deny by default): `{read: true}` reads only.
        .record(z.string().min(1), z.strictObject({ send: z.boolean().default(false), read: z.boolean().default(false), createGroup: z.boolean().default(false) }))
        .default({ user: { send: true, read: true, createGroup: true }, muted: { send: false, read: true, createGroup: false } }),
      /** Role of a token without a `role` claim. */
      defaultRole: z.string().min(1).default('user'),
      /** Read/delivered receipts to the other members (`off`: none sent, none listed). */
      receipts: z.enum(['on', 'off']).default('on'),
      /** At most one `receipt` per member per conversation per this many ms (per node). */
      receiptCoalesceMs: z.number().int().min(0).default(250),
      /** `receipts.members` lists each other member up to this many (above: only the minimums). */
      receiptMembersMax: z.number().int().min(0).max(1000).default(32),
      /** How long after sending a message its sender may edit it; 0 disables editing. */
      editWindowMs: z.number().int().min(0).default(900000),
      /** Online/offline changes are published once they held this long (a reconnect does not flap). */
      presenceDebounceMs: z.number().int().min(0).default(2000),
      /**
       * A member's presence and receipts reach a conversation only once they have written in it
       * (one message to a stranger, or a group made with them in it, must not let its sender watch
       * them). `false`: every member shares at once (e.g. a workspace where everyone sees everyone).
       */
      strangerPrivacy: z.boolean().default(true),
      /**
       * Device positions kept per user. A client that names a new device each time (an SDK with its
       * memory sync store) would otherwise grow storage without end; past the bound, the
       * least-advanced other devices are forgotten and resume as new devices do.
       */
      maxDevicesPerUser: positiveInt.max(100000).default(100),
    })
    .prefault({}),
  /** Presence: whether users are shown online by default (each user may change theirs with `set_presence`). */
  presence: z
    .strictObject({
      visible: z.boolean().default(true),
    })
    .prefault({}),
  /** Encryption at rest of message content (AES-256-GCM). Keys are base64 of 32 bytes. */
  encryption: z
    .strictObject({
      activeKeyId: z.string().min(1).max(32),
      keys: z.record(
        z.string().regex(CONTENT_KEY_ID, 'a key id is 1–32 of A–Z a–z 0–9 . _ -'),
        z.string().refine((b64) => Buffer.from(b64, 'base64').length === 32, 'must be base64 of 32 bytes'),
      ),
    })
    .optional(),
  /**
   * Admin API (docs/operations.md): off unless a credential is set. `tokenSha256` (hex SHA-256 of
   * the bearer token) is preferred: the secret itself never sits in the config.
   */
  admin: z
    .strictObject({
      token: z.string().min(32).max(1024).regex(BEARER_TOKEN, BEARER_RULE).optional(),
      tokenSha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits (SHA-256)').optional(),
      /** Who the credential is, in audit records. */
      name: z.string().min(1).max(64).regex(/^[\w.@-]+$/, 'letters, digits, _ . @ - only').default('admin'),
      /** Serve the API on its own port (bound to `host`); unset = under `/admin/` on the main port. */
      port: z.number().int().min(0).max(65535).optional(),
      host: z.string().min(1).default('127.0.0.1'),
      /** Requests per IP per minute, authenticated or not (429 beyond). */
      requestsPerMinute: positiveInt.default(60),
      /** Request bodies larger than this are refused (413). */
      maxBodyBytes: positiveInt.max(1024 * 1024).default(4096),
      /** Longest ban an operator may set. */
      maxBanMs: ms.default(365 * 86_400_000),
      /**
       * How long a disconnect or `end_session` aimed at another node is kept in Redis for a node
       * that was cut from it when the command passed (it closes the session once it is back).
       */
      pendingCloseMs: ms.default(3_600_000),
    })
    .refine((a) => a.token === undefined || a.tokenSha256 === undefined, { message: 'set only one of token, tokenSha256', path: ['token'] })
    .prefault({}),
  /** How long shutdown waits for sockets to close after 1001 before it destroys them. */
  shutdownGraceMs: ms.default(5000),
  /**
   * `/metrics` is never public by default: served on its own `port` (on `host`, loopback by
   * default), and/or only to requests bearing `token`. With neither, it is not served at all.
   */
  metrics: z
    .strictObject({
      /** Dedicated metrics listener (0 = an ephemeral port); `/metrics` is then 404 on the main port. */
      port: z.number().int().min(0).max(65535).optional(),
      host: z.string().min(1).default('127.0.0.1'),
      /** Bearer token required on every scrape (main port or `port`). */
      token: z.string().min(16).max(1024).regex(BEARER_TOKEN, BEARER_RULE).optional(),
    })
    .prefault({}),
  /** SIGTERM drain: sessions are closed with 1001 in batches so clients do not reconnect all at once. */
  shutdown: z
    .strictObject({
      batchSize: positiveInt.default(500),
      batchIntervalMs: z.number().int().min(0).default(50),
    })
    .prefault({}),
});

export type RampartConfig = z.infer<typeof ConfigSchema>;
export type RampartConfigInput = z.input<typeof ConfigSchema>;
