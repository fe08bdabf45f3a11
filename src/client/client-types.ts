/**
 * The client's public option and reply types: what `new RampartClient(…)` accepts and what its
 * requests resolve with. Types only (erased at compile time); re-exported from rampart-client.ts
 * and index.ts.
 */
import type { ConversationInfo, HistoryItem, ReceiptsInfo } from '../protocol/server-frames.js';
import type { BackoffOptions } from './backoff.js';
import type { Clock } from './clock.js';
import type { RequestBudget } from './request-pacing.js';
import type { WebSocketFactory, WebSocketLike } from './socket.js';
import type { SyncStore } from './sync-store.js';
import type { RefreshOptions, TokenProvider } from './token-source.js';

export interface RampartClientOptions {
  /** `ws(s)://host:port/ws`. */
  url: string;
  /** A token, or a callback asked on every connect and before the token expires. */
  token: string | TokenProvider;
  /** Sync state (deviceId + last processed pos); memory by default. */
  store?: SyncStore;
  /**
   * Overrides the stored/generated device id: 1..64 printable ASCII characters (0x21–0x7e), as the
   * `auth` frame requires; anything else makes the constructor throw (a `TypeError` for a
   * non-string, a `RangeError` for a string out of bounds).
   */
  deviceId?: string;
  /** A WebSocket constructor (browser API shape); default: the global one. */
  WebSocket?: new (url: string) => WebSocketLike;
  /** Or a factory, for options such as Node's `ws` `{ origin }`. */
  createSocket?: WebSocketFactory;
  backoff?: Partial<BackoffOptions>;
  /**
   * A connection that stayed authenticated this long (ms) starts the reconnect backoff over when it
   * closes; one closed sooner counts as another failed attempt, so a server that closes right
   * after `auth_success` (a crash loop, an overloaded node) sees the delays grow instead of every
   * client back within `backoff.baseMs`. Default 10000.
   */
  stableConnectionMs?: number;
  /** After a server shutdown (1001), reconnect after a random delay in [0, this) ms. Default 5000. */
  shutdownDelayMaxMs?: number;
  refresh?: Partial<RefreshOptions>;
  /**
   * Acknowledge processed events at most this long after the first unacknowledged one (ms); also
   * the least time between two acks (each spends the server's request budget). Default 250.
   */
  ackDelayMs?: number;
  /** … or as soon as this many are unacknowledged, but still not sooner than `ackDelayMs` after the last ack. Default 100. */
  ackEvery?: number;
  /**
   * The frames that spend the server's per-user request budget (`history`, `list_conversations`,
   * `read`, `presence`, `set_presence`, `list_sessions`, `end_session`, `ack`) go out at most
   * `limit` per `windowMs` (each counted a tenth of the window longer, as the server's bucketed
   * windows may); the others wait, in order. Set it at or under the server's `limits.requests`.
   * Default 10 per 1000 ms, half the server's default 20: two windows' requests bunched up on
   * the way still fit in one of the server's.
   */
  requestBudget?: Partial<RequestBudget>;
  /**
   * Sends, edits and deletes (what spends the server's per-user message budget) go out at most
   * `limit` per `windowMs` (each counted a tenth of the window longer, as the server's bucketed
   * windows may), resends included; the others wait, in order. Set it at or under the server's
   * `rateLimit.burstLimit` / `burstWindow`, better at half of it: two of these windows' sends
   * bunched up on the way then still fit in one of the server's. Default 5 per 1000 ms (the
   * server's default is 10).
   */
  sendBudget?: Partial<RequestBudget>;
  /** Unconfirmed sends kept (bounded queue). Default 1000. */
  maxPendingSends?: number;
  /**
   * Sends on the wire at once, unconfirmed. Default 8. After a `rate_limited` naming a send, 1
   * (once the wait is over) until a send made since is confirmed: the budget has room again.
   */
  maxInFlightSends?: number;
  /** `storage_unavailable` retries per send. Default 5. */
  maxSendRetries?: number;
  /**
   * The server's `maxMessageSize` (bytes of one frame). A send whose frame is larger is
   * refused at once (`message_too_big`): the server would close the connection on it. Default 65536.
   */
  maxFrameBytes?: number;
  /** A request without a reply fails after this long (ms). Default 15000. */
  requestTimeoutMs?: number;
  /**
   * Reads, `read` and presence requests on the wire at once, unanswered; the rest wait in order
   * (their `requestTimeoutMs` running). Default 8: the server answers at most
   * `limits.maxQueuedFrames` (32) of them per connection at a time; later frames wait in its queue,
   * and past another 32 the connection is closed 4029. Group changes and session requests are not held.
   */
  maxInFlightRequests?: number;
  /**
   * A connection attempt that has not reached `auth_success` this long after it started (ms; the
   * `getToken()` call included) is given up and the client reconnects with backoff: a token
   * provider that never answers, or a handshake or an `auth` lost on a half-open connection, must
   * not leave the client waiting forever. Default 15000.
   */
  connectTimeoutMs?: number;
  /**
   * After a period this long (ms) with nothing received on an open connection, the client sends
   * `ping` (so after between one and two periods of silence); 0 turns liveness checks off. A
   * browser cannot see WebSocket pings, so without this a connection that died silently (a phone
   * changing networks, a NAT that forgot it) looks open forever and sends go nowhere. A ping due
   * while the server asked for a wait (a refusal that names no frame) goes when the wait ends.
   * Default 25000.
   */
  pingIntervalMs?: number;
  /** … and when still nothing arrived this long after the `ping` was sent (ms), the connection is given up and the client reconnects with backoff. Default 10000. */
  pongTimeoutMs?: number;
  /** Reads of `store` at start before a failing store is given up and the client goes on as a new device. Default 3. */
  storeLoadAttempts?: number;
  clock?: Clock;
  random?: () => number;
}

export interface HistoryReply {
  conversationId?: string;
  peerId?: string;
  /** Newest first; edited messages show their latest content (`editedAt`), deleted ones their tombstone. */
  messages: HistoryItem[];
  /** The other members' receipt positions (absent with `chat.receipts: "off"`). */
  receipts?: ReceiptsInfo;
  /** The page was cut short by the reply size bound: ask again with the last message's `seq` as `beforeSeq`. */
  more?: true;
}
export interface PresenceReply {
  conversationId: string;
  /** The members shown online now (this user included when visible). */
  online: string[];
}
export interface ConversationsReply {
  conversations: ConversationInfo[];
  nextCursor?: string;
}
export interface GroupReply {
  conversationId: string;
  changed: boolean;
  seq?: number;
}

/** A parsed server frame, its fields still unchecked. */
export type Frame = Record<string, unknown> & { type?: unknown };
