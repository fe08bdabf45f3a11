/**
 * RampartClient: one logical connection to Rampart that survives reconnects. It composes the
 * pieces of this folder — transport with backoff, token source and refresh, the position tracker
 * and its store, the send queue and the request table — and turns frames into typed events, each
 * timeline event delivered to the application exactly once, in `pos` order.
 */
import type { ConversationInfo, HistoryItem, ReceiptsInfo } from '../protocol/server-frames.js';
import type { SessionInfo } from '../protocol/session-frames.js';
import { CloseCode } from '../protocol/close-codes.js';
import { ErrorReason } from '../protocol/reasons.js';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import { systemClock, TimerSlot, type Clock } from './clock.js';
import { Emitter, type Listener } from './emitter.js';
import type { ClientEvents, ConnectionState, SentEvent } from './events.js';
import { OwnMessages, PosTracker } from './pos-tracker.js';
import { ReceiptPositions } from './receipt-positions.js';
import { attachmentsProblem, clientMsgIdProblem, contentProblem, deviceIdProblem, isUuid, requestProblem, targetProblem } from './outgoing-checks.js';
import { classifyClose, detailOf } from './refusals.js';
import { DEFAULT_MAX_IN_FLIGHT_REQUESTS, Requests, RequestError } from './requests.js';
import { DEFAULT_REQUEST_BUDGET, DEFAULT_SEND_BUDGET, RequestPacer, type RequestBudget } from './request-pacing.js';
import { SendQueue, SendError, wireTarget, type ChangeReceipt, type OutgoingMessage, type SendReceipt, type Target } from './send-queue.js';
import { abandon, detach, globalWebSocketFactory, handshakeStatus, OPEN, type WebSocketFactory, type WebSocketLike } from './socket.js';
import { IllFormedSyncStateError, MemorySyncStore, newDeviceId, parseSyncState, STATE_BOUNDS, type SyncState, type SyncStore } from './sync-store.js';
import { newClientMsgId } from './client-msg-id.js';
import { DEFAULT_REFRESH, RefreshSchedule, tokenIdentity, tokenSubject, TokenSource, type RefreshOptions, type TokenProvider } from './token-source.js';

/** The longest server-requested wait honored before a reconnect (Retry-After); a longer one is clipped. */
const MAX_RETRY_AFTER_MS = 600_000;

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

/** The client stopped for good before it was ever ready. */
export class ConnectError extends Error {
  constructor(readonly reason: string) {
    super(`cannot connect: ${reason}`);
    this.name = 'ConnectError';
  }
}

type Frame = Record<string, unknown> & { type?: unknown };

const ILL_FORMED_STATE = `ill-formed state (${STATE_BOUNDS}): going on as a new device`;

/** Why sends and requests made as one user fail when the client finds itself signed in as another. */
const USER_CHANGED = 'user_changed';

/** How long a save of an asynchronous store may run before the newest position is saved beside it. */
const SAVE_WAIT_MS = 10_000;

export class RampartClient {
  private readonly events: Emitter<ClientEvents>;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly factory: WebSocketFactory;
  private readonly tokens: TokenSource;
  private readonly store: SyncStore;
  private readonly backoff: BackoffOptions;
  private readonly refresh: RefreshOptions;
  private readonly refreshSchedule: RefreshSchedule;
  private readonly queue: SendQueue;
  private readonly requests: Requests;
  private readonly pacer: RequestPacer;
  /** Paces sends, edits and deletes under the server's burst window for the user's messages. */
  private readonly sendPacer: RequestPacer;
  /** Which own messages were handed over (as `sent` or as a copy), so none is handed over twice. */
  private readonly ownMessages = new OwnMessages();
  private readonly timers: { reconnect: TimerSlot; refresh: TimerSlot; ack: TimerSlot; sends: TimerSlot; connect: TimerSlot; liveness: TimerSlot; save: TimerSlot };

  private tracker = new PosTracker();
  /** Receipt frames may arrive out of order: only positions that moved forward reach `receipt` listeners. */
  private readonly receiptPositions = new ReceiptPositions();
  /** True once the client has a position of its own (stored, or from an `auth_success`). */
  private positioned = false;
  /** Whose timeline the position is in (a `userId` of `auth_success`, or the stored state's). */
  private owner: string | undefined;
  /** … and the identity of the token it was named for (`tokenIdentity`: `sub` and tenant). */
  private ownerIdentity: string | undefined;
  /**
   * Who the last authenticated connection was (`auth_success`'s `userId`, the identity of its
   * token): sends and requests made since were made as them, and go out only as them.
   */
  private session: { userId: string | undefined; identity: string | undefined } | undefined;
  /** The token of the connection being made names the position's owner: `auth` resumes from it (`after`). */
  private resumeFromPosition = false;
  private device = '';
  private ws: WebSocketLike | undefined;
  private currentState: ConnectionState = 'idle';
  private user: string | undefined;
  private token = '';
  private attempt = 0;
  /** Expired-token closes since the last `auth_success`: the first goes again at the first backoff step. */
  private expiredInARow = 0;
  /** Counts connection attempts: a `getToken()` answer for an attempt given up meanwhile is dropped. */
  private connectAttempt = 0;
  /** When the current socket authenticated (clock ms); undefined while none is. */
  private authenticatedAt: number | undefined;
  private ackedPos = 0;
  /** When the last ack went out (clock ms): the next waits `ackDelayMs` after it. */
  private lastAckAt: number | undefined;
  /** When the ack timer fires (clock ms), while it runs. */
  private ackDueAt = 0;
  /** An ack is due but the request budget's pacing holds it: it takes the next free slot. */
  private ackHeld = false;
  /**
   * The highest position this socket's stream has reached (its resume point, then every event it
   * sent, replays of what we had included). An ack never goes past it: the server clamps an ack to
   * what the session's stream sent, and a clamped ack we took as done would never be repeated.
   */
  private streamPos = 0;
  private savedPos = -1;
  /** An asynchronous store's save is running; `saveAgain`: the position moved meanwhile. */
  private saving = false;
  private saveAgain = false;
  /** Saves are numbered in the order started; `settledSave`: the newest one settled so far. */
  private saveCount = 0;
  private settledSave = 0;
  /**
   * Every send waits until then (ms): the user's message budget (`rate_limited` naming a send), or
   * a `storage_unavailable` retry. The wait is the queue's, not one send's, so sends go out in the
   * order they were made. Read through `sendsWait()`.
   */
  private sendPausedUntil = 0;
  /** How long that wait was when it was last set (ms): what is left of it is never more. */
  private sendPauseMs = 0;
  /**
   * A `rate_limited` named a send: the user's message budget is spent (by other sessions of the
   * user too, or a budget smaller than `sendBudget`). After the wait one send at a time goes out,
   * until one of them is confirmed (`probeId`): refilling the whole in-flight window into a budget
   * that may still be spent would collect a strike per refusal, and 4029.
   */
  private sendProbation = false;
  /** The send put on the wire during the probation: its confirmation ends it. */
  private probeId: string | undefined;
  /**
   * Every frame the SDK can hold back (sends, requests, acks, typing, token refreshes, liveness
   * pings) waits until then (ms): the server dropped a frame without naming it and asked for a
   * wait (see `framesDropped`). Sending before it would only be refused again, each refusal a
   * strike towards close 4029. Read through `framesWait()`.
   */
  private framesPausedUntil = 0;
  /** How long that wait was when it was last set (ms): what is left of it is never more. */
  private framesPauseMs = 0;
  /** A token refresh (`auth`) on the open socket not yet answered by `auth_success`. */
  private refreshUnanswered = false;
  /** The current socket delivered a frame since the last liveness check: any frame proves it alive. */
  private heard = false;
  /** Facts about the current socket, read when it closes. */
  private socketFacts: { authFailure?: string; httpStatus?: number; retryAfterMs?: number; gap?: boolean } = {};
  private everReady = false;
  private readyWaiter: { promise: Promise<void>; resolve(): void; reject(err: Error): void } | undefined;

  constructor(private readonly options: RampartClientOptions) {
    // A device id the server refuses fails every `auth` (close 4002): the client would reconnect
    // with backoff forever. Refused here, at once, instead.
    if (options.deviceId !== undefined) {
      const problem = deviceIdProblem(options.deviceId);
      if (problem !== undefined) throw typeof options.deviceId === 'string' ? new RangeError(`RampartClient: ${problem}`) : new TypeError(`RampartClient: ${problem}`);
    }
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.factory = options.createSocket ?? (options.WebSocket ? ((C) => (url: string) => new C(url))(options.WebSocket) : globalWebSocketFactory());
    this.tokens = new TokenSource(options.token);
    this.store = options.store ?? new MemorySyncStore();
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.refresh = { ...DEFAULT_REFRESH, ...options.refresh };
    this.refreshSchedule = new RefreshSchedule(this.refresh);
    this.queue = new SendQueue(options.maxPendingSends ?? 1000, options.maxSendRetries ?? 5, options.maxFrameBytes ?? 65_536);
    // A request held for a rate limit's wait goes out when it ends.
    this.requests = new Requests(this.clock, options.requestTimeoutMs ?? 15_000, () => this.pump(), options.maxInFlightRequests ?? DEFAULT_MAX_IN_FLIGHT_REQUESTS);
    this.pacer = new RequestPacer(this.clock, { ...DEFAULT_REQUEST_BUDGET, ...options.requestBudget });
    this.sendPacer = new RequestPacer(this.clock, { ...DEFAULT_SEND_BUDGET, ...options.sendBudget }, DEFAULT_SEND_BUDGET);
    this.events = new Emitter<ClientEvents>((err, event) => {
      // A throwing listener must not break the stream; report it (unless the error listener threw).
      if (event !== 'error') this.events.emit('error', { reason: 'listener_error', details: err instanceof Error ? err.message : String(err) });
    });
    this.timers = {
      reconnect: new TimerSlot(this.clock),
      refresh: new TimerSlot(this.clock),
      ack: new TimerSlot(this.clock),
      sends: new TimerSlot(this.clock),
      connect: new TimerSlot(this.clock),
      liveness: new TimerSlot(this.clock),
      save: new TimerSlot(this.clock),
    };
  }

  // ── public API ──

  get state(): ConnectionState {
    return this.currentState;
  }
  get userId(): string | undefined {
    return this.user;
  }
  get deviceId(): string {
    return this.device;
  }
  /** The last timeline position the application processed. */
  get pos(): number {
    return this.tracker.pos;
  }
  /** Sends not yet confirmed by the server. */
  get pendingSends(): number {
    return this.queue.size;
  }

  on<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): () => void {
    return this.events.on(event, listener);
  }
  off<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): void {
    this.events.off(event, listener);
  }

  /** Starts connecting; resolves when first authenticated, rejects if the client stops for good first. */
  connect(): Promise<void> {
    // A closed client stays closed: connect() after close() rejects, also when an earlier connect() had resolved.
    if (this.currentState === 'closed' && this.readyWaiter !== undefined) return Promise.reject(new ConnectError('closed'));
    if (this.readyWaiter) return this.readyWaiter.promise;
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {}); // callers that do not await must not see an unhandled rejection
    this.readyWaiter = { promise, resolve, reject };
    if (this.currentState === 'closed') {
      reject(new ConnectError('closed'));
      return promise;
    }
    void this.start();
    return promise;
  }

  /**
   * Sends a chat message to a conversation (direct or group) or, before a direct conversation
   * exists, to a user; resolves once it is durably stored (resent across reconnects until then).
   * A message the server could only refuse (a target that is not exactly one of `conversationId`
   * and `recipientId`, a UUID; a field out of the protocol's bounds; a `clientMsgId` that is not
   * 1..64 printable ASCII) rejects at once with `SendError('validation_failed')` and a `detail`:
   * the server's refusal would name no `clientMsgId`, so it could never be matched. Only the
   * target's id goes on the wire (a conversation object from `listConversations()` will do).
   */
  sendMessage(target: Target, message: string | OutgoingMessage, opts: { clientMsgId?: string } = {}): Promise<SendReceipt> {
    const body = typeof message === 'string' ? { content: message } : message;
    const problem =
      targetProblem(target) ??
      contentProblem(body.content) ??
      (body.replyTo === undefined || isUuid(body.replyTo) ? undefined : 'replyTo: a UUID') ??
      attachmentsProblem(body.attachments);
    return this.enqueue(opts.clientMsgId, (cid) => this.queue.add(cid, target, body), problem);
  }

  /**
   * Edits one of this user's messages (within the server's edit window); queued and resent like a
   * message, under its own `clientMsgId`. Resolves once stored; every session of every member,
   * this one included, then gets the `edited` event.
   */
  editMessage(messageId: string, content: string, opts: { clientMsgId?: string } = {}): Promise<ChangeReceipt> {
    const problem = (isUuid(messageId) ? undefined : 'messageId: a UUID') ?? contentProblem(content);
    return this.enqueue(opts.clientMsgId, (id) => this.queue.addChange(id, messageId, content), problem);
  }

  /** Deletes a message (the sender's own; in a group also the owner/admins): it becomes a tombstone. */
  deleteMessage(messageId: string, opts: { clientMsgId?: string } = {}): Promise<ChangeReceipt> {
    return this.enqueue(opts.clientMsgId, (id) => this.queue.addChange(id, messageId), isUuid(messageId) ? undefined : 'messageId: a UUID');
  }

  /**
   * Typing indicators are not queued: false when not connected, or while the server asked for a
   * wait (its frame budget): one more frame then would only be refused. Both are passing states:
   * the next keystroke tries again. A call the server could never accept — a target that is not exactly one
   * of `conversationId` and `recipientId`, a UUID, or an `isTyping` that is not a boolean — throws
   * a `TypeError` instead (`setTyping: <field>: <rule>`, never the value), connected or not: it is
   * the caller's mistake, as a message's `validation_failed` is, and `false` would hide it while
   * every indicator went out to be refused without a name, a strike towards close 4029. Only the
   * target's id goes on the wire.
   */
  setTyping(target: Target, isTyping: boolean): boolean {
    const problem = targetProblem(target) ?? (typeof isTyping === 'boolean' ? undefined : 'isTyping: a boolean');
    if (problem !== undefined) throw new TypeError(`setTyping: ${problem}`);
    if (this.framesWait() > 0) return false;
    return this.transmit({ type: 'typing_indicator', ...wireTarget(target), isTyping });
  }

  // Requests (history … endSession) resolve with the reply, or reject with a RequestError. One
  // whose fields are out of the protocol's bounds (`limit`, a group `name`, a member list, an id
  // that is not a UUID, …) rejects at once with `validation_failed` and a `detail`, and nothing is
  // sent: the server's refusal would carry no `requestId`, and the promise would wait for its
  // timeout. After a refusal that names no frame (the frame budget, a failed limiter), reads are
  // asked again after the server's wait and changes fail with `unconfirmed` (requests.ts).

  history(query: ({ conversationId: string } | { peerId: string }) & { beforeSeq?: number; limit?: number }): Promise<HistoryReply> {
    // The frame names only the fields the protocol has (strict: any other key is refused unnamed).
    const q = query as { conversationId?: string; peerId?: string; beforeSeq?: number; limit?: number };
    const frame = { type: 'history', conversationId: q.conversationId, peerId: q.peerId, beforeSeq: q.beforeSeq, limit: q.limit };
    return (this.request(frame) as Promise<unknown> as Promise<HistoryReply>).then((reply) => {
      if (reply.conversationId !== undefined) this.seedReceipts(reply.conversationId, reply.receipts);
      return reply;
    });
  }
  listConversations(query: { limit?: number; before?: string } = {}): Promise<ConversationsReply> {
    return (this.request({ type: 'list_conversations', limit: query.limit, before: query.before }) as Promise<unknown> as Promise<ConversationsReply>).then((reply) => {
      for (const c of reply.conversations ?? []) this.seedReceipts(c.conversationId, c.receipts);
      return reply;
    });
  }

  /** Positions a reply listed are known: a `receipt` frame below them, arriving late, is not passed on. */
  private seedReceipts(conversationId: string, receipts: ReceiptsInfo | undefined): void {
    for (const m of receipts?.members ?? []) this.receiptPositions.advance({ conversationId, userId: m.userId, delivered: m.delivered, read: m.read });
  }
  /**
   * Creates a group under a key (`clientMsgId`, made unless given): the server answers a repeat of
   * it with the group the first one made, so this create goes out again after a dropped frame or
   * a dropped connection, and after the group-create limit's wait (while that fits in its timeout).
   * A create that failed may have made its group all the same: its `RequestError` carries the key
   * (`clientMsgId`), and calling again with it is answered with that group, never a second one.
   */
  createGroup(name: string, memberIds: string[], options: { clientMsgId?: string } = {}): Promise<GroupReply> {
    const clientMsgId = options.clientMsgId ?? newClientMsgId(this.clock.now());
    return this.group({ type: 'create_group', name, memberIds, clientMsgId }).catch((err: unknown) => {
      throw err instanceof RequestError ? new RequestError(err.reason, err.retryAfter, err.detail, clientMsgId) : err;
    });
  }
  addMembers(conversationId: string, userIds: string[]): Promise<GroupReply> {
    return this.group({ type: 'add_members', conversationId, userIds });
  }
  removeMembers(conversationId: string, userIds: string[]): Promise<GroupReply> {
    return this.group({ type: 'remove_members', conversationId, userIds });
  }
  leaveGroup(conversationId: string): Promise<GroupReply> {
    return this.group({ type: 'leave_group', conversationId });
  }
  renameGroup(conversationId: string, name: string): Promise<GroupReply> {
    return this.group({ type: 'rename_group', conversationId, name });
  }
  setRole(conversationId: string, userId: string, role: 'admin' | 'member'): Promise<GroupReply> {
    return this.group({ type: 'set_role', conversationId, userId, role });
  }
  /**
   * Moves this user's read position (never backwards): the other members get a `receipt`, unless
   * `private` (then only this user's own unread counts move). Resolves with the new position.
   */
  async markRead(conversationId: string, upToSeq: number, opts: { private?: boolean } = {}): Promise<{ conversationId: string; readSeq: number }> {
    const reply = await this.request({ type: 'read', conversationId, upToSeq, ...(opts.private !== undefined ? { private: opts.private } : {}) });
    return { conversationId: String(reply.conversationId), readSeq: Number(reply.readSeq) };
  }

  /** The members of a conversation online now (`presence`); changes then arrive as `presence` events. */
  async getPresence(conversationId: string): Promise<PresenceReply> {
    const reply = await this.request({ type: 'presence', conversationId });
    return { conversationId: String(reply.conversationId), online: Array.isArray(reply.online) ? reply.online.map(String) : [] };
  }

  /** Shows (`true`) or hides this user's online status from everyone (`set_presence`, stored). */
  async setPresenceVisible(visible: boolean): Promise<boolean> {
    const reply = await this.request({ type: 'set_presence', visible });
    return reply.visible === true;
  }

  /** The user's sessions on every node (`list_sessions`). */
  async listSessions(): Promise<SessionInfo[]> {
    const reply = await this.request({ type: 'list_sessions' });
    return Array.isArray(reply.sessions) ? (reply.sessions as SessionInfo[]) : [];
  }
  /** Ends another session of this user (`end_session`); that client stops with `ended_by_user`. */
  async endSession(sessionId: string): Promise<void> {
    await this.request({ type: 'end_session', sessionId });
  }

  /**
   * Stops for good: no timer, socket or listener is left behind (but for an asynchronous save still
   * running, which the final save follows, at most SAVE_WAIT_MS). Unconfirmed sends reject with `closed`.
   */
  close(): void {
    if (this.currentState === 'closed') return;
    // Acknowledges and persists the last processed position: at once, or — a save still running —
    // once it settles (never beside it: the one written last would win, whichever is older).
    this.flushAck(true);
    this.stop('closed', false);
  }

  // ── connection ──

  private setState(state: ConnectionState): void {
    if (this.currentState === state) return;
    this.currentState = state;
    this.events.emit('state', { state });
  }

  private async start(): Promise<void> {
    if (this.currentState !== 'idle') return;
    this.setState('connecting');
    if (this.stopped()) return; // a state listener closed the client
    const stored = await this.loadState();
    if ((this.currentState as ConnectionState) !== 'connecting') return; // closed meanwhile
    this.device = this.options.deviceId ?? stored?.deviceId ?? newDeviceId();
    // A state that does not say whose it is — no user (an older SDK's), or a user without the
    // identity that tells tenants apart (this SDK's previous one) — may hold another user's
    // position: only its device id is used, and the server's record of that device says where to resume.
    if (stored?.userId !== undefined && stored.identity !== undefined) {
      this.tracker = new PosTracker(stored.pos);
      this.positioned = true;
      this.owner = stored.userId;
      this.ownerIdentity = stored.identity;
      this.savedPos = stored.pos;
    }
    await this.openSocket();
  }

  /**
   * The stored device id and position. A store that fails is retried with backoff
   * (`storeLoadAttempts` in all) before the client goes on as a new device: a transient failure
   * must not cost the device its position (a new device resumes where no device of the user
   * acknowledged, so what another device acknowledged would never reach this one), and a store
   * that never works must not keep the user offline. Every failure is reported as `store_failed`.
   * A state the server would refuse (a `deviceId` that is not 1..64 printable ASCII, a `pos` that
   * is not an integer ≥ 0: every `auth` would fail validation, close 4002, forever) is not used
   * either: reported as `store_failed`, the client goes on as a new device at once.
   */
  private async loadState(): Promise<SyncState | undefined> {
    const given = this.options.storeLoadAttempts ?? 3;
    const attempts = Number.isFinite(given) ? Math.max(1, Math.floor(given)) : 3;
    for (let attempt = 0; ; attempt++) {
      try {
        const state: unknown = await this.store.load();
        if (state === undefined || state === null) return undefined;
        const parsed = parseSyncState(state);
        if (parsed === undefined) this.events.emit('error', { reason: 'store_failed', details: ILL_FORMED_STATE });
        return parsed;
      } catch (err) {
        // Ill-formed data is not retried: the store would hand over the same again.
        const illFormed = err instanceof IllFormedSyncStateError;
        this.events.emit('error', { reason: 'store_failed', details: illFormed ? ILL_FORMED_STATE : err instanceof Error ? err.message : String(err) });
        if (illFormed || attempt + 1 >= attempts || this.currentState !== 'connecting') return undefined;
        const wait = backoffDelay(attempt, this.backoff, this.random);
        await new Promise<void>((resolve) => this.timers.reconnect.start(wait, resolve));
        if (this.currentState !== 'connecting') return undefined; // closed meanwhile (stop() cleared the timer)
      }
    }
  }

  private async openSocket(): Promise<void> {
    // Closed (by a listener of the event that led here): nothing may start again, nor the state move back.
    if (this.stopped()) return;
    this.setState(this.everReady ? 'reconnecting' : 'connecting');
    if (this.stopped()) return;
    const attempt = ++this.connectAttempt;
    // Started before getToken(): a provider that never answers must not leave the client waiting forever.
    this.timers.connect.start(this.options.connectTimeoutMs ?? 15_000, () => this.connectTimedOut(attempt));
    let token: string;
    try {
      token = await this.tokens.get();
    } catch (err) {
      if (this.stopped() || attempt !== this.connectAttempt) return;
      this.timers.connect.stop();
      this.events.emit('error', { reason: 'token_unavailable', details: err instanceof Error ? err.message : String(err) });
      this.scheduleReconnect(backoffDelay(this.attempt++, this.backoff, this.random));
      return;
    }
    if (this.stopped() || attempt !== this.connectAttempt) return; // closed, or given up (connect timeout) meanwhile
    this.token = token;
    this.refreshSchedule.got(token, this.clock.now());
    this.checkIdentity(token);
    this.socketFacts = {};
    this.refreshUnanswered = false;
    // A wait asked for dropped frames belongs to the socket it was asked on (the frame budget is
    // per connection; an internal error does not outlive it either): the next one starts free.
    this.framesPausedUntil = 0;
    this.framesPauseMs = 0;
    let ws: WebSocketLike;
    try {
      ws = this.factory(this.options.url);
    } catch (err) {
      this.timers.connect.stop();
      this.events.emit('error', { reason: 'socket_failed', details: err instanceof Error ? err.message : String(err) });
      this.scheduleReconnect(backoffDelay(this.attempt++, this.backoff, this.random));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.setState('authenticating');
      if (this.stopped()) return; // a state listener closed the client (and this socket)
      const auth: Record<string, unknown> = { type: 'auth', token, deviceId: this.device };
      if (this.positioned && this.resumeFromPosition) auth.after = this.tracker.pos;
      ws.send(JSON.stringify(auth));
    };
    ws.onmessage = (ev) => {
      this.heard = true;
      if (typeof ev.data !== 'string') return;
      let frame: unknown;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (typeof frame === 'object' && frame !== null && typeof (frame as Frame).type === 'string') this.onFrame(frame as Frame);
    };
    ws.onerror = (ev) => {
      const status = ws.refusal?.status ?? handshakeStatus(ev);
      if (status !== undefined) this.socketFacts.httpStatus = status;
      if (ws.refusal?.retryAfterMs !== undefined) this.socketFacts.retryAfterMs = ws.refusal.retryAfterMs;
    };
    ws.onclose = (ev) => this.onClose(ws, ev.code, ev.reason);
  }

  /** No `auth_success` within `connectTimeoutMs` of the attempt's start. */
  private connectTimedOut(attempt: number): void {
    if (this.stopped() || attempt !== this.connectAttempt) return;
    const ws = this.ws;
    if (ws !== undefined) {
      // Treated as a dropped connection (dropped here, so a socket the network never answers
      // cannot keep us waiting for its close event).
      abandon(ws, 'connect_timeout');
      this.onClose(ws, 1006, 'connect_timeout');
      return;
    }
    // Still waiting for getToken(): this attempt is given up, and its late answer dropped.
    this.connectAttempt++;
    this.events.emit('error', { reason: 'token_unavailable', details: 'getToken() did not answer within connectTimeoutMs' });
    this.scheduleReconnect(backoffDelay(this.attempt++, this.backoff, this.random));
  }

  private onClose(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.ws) return;
    detach(ws);
    this.ws = undefined;
    // The backoff starts over only after a connection that stayed up: one closed soon after
    // `auth_success` (a crash loop, a gap on every replay) counts as another failed attempt.
    const upSince = this.authenticatedAt;
    this.authenticatedAt = undefined;
    if (upSince !== undefined && this.clock.now() - upSince >= (this.options.stableConnectionMs ?? 10_000)) this.attempt = 0;
    this.timers.connect.stop();
    this.timers.refresh.stop();
    this.timers.sends.stop();
    this.timers.liveness.stop();
    this.flushAck(true); // persists; the ack itself cannot go out any more
    this.requests.disconnected();
    // Over the server's maxMessageSize (1009): the largest send in flight is the one (a larger one
    // read before it would have closed the socket itself), and it would close every socket it is
    // resent on — refuse it; the others go again under their clientMsgId (the server stored each
    // at most once).
    if (code === CloseCode.MESSAGE_TOO_BIG) this.queue.rejectLargestInFlight('message_too_big');
    this.queue.requeueAll();
    if (this.currentState === 'closed') return;
    const facts = this.socketFacts;
    if (facts.gap) {
      // Jittered and counted like any reconnect: a server that sends a gap on every replay must
      // not bring its clients back at 0 ms, all at once, forever.
      const delay = backoffDelay(this.attempt++, this.backoff, this.random);
      this.events.emit('disconnected', { code, reason: 'gap', retryInMs: delay });
      this.scheduleReconnect(delay);
      return;
    }
    const verdict = classifyClose({ code, renewable: this.tokens.renewable, authenticated: upSince !== undefined, ...(facts.authFailure !== undefined ? { authFailure: facts.authFailure } : {}), ...(facts.httpStatus !== undefined ? { httpStatus: facts.httpStatus } : {}) });
    if (verdict.kind === 'permanent') {
      this.events.emit('disconnected', { code, reason: verdict.reason });
      this.stop(verdict.reason, true);
      return;
    }
    // An expired token: the first retry goes at once with a fresh one; a provider that keeps
    // handing out expired tokens backs off like any failure (each one counts towards the IP lockout).
    let delay =
      verdict.kind === 'shutdown'
        ? Math.floor(this.random() * (this.options.shutdownDelayMaxMs ?? 5000))
        : verdict.kind === 'fresh_token' && this.expiredInARow++ === 0
          ? backoffDelay(0, this.backoff, this.random)
          : backoffDelay(this.attempt, this.backoff, this.random);
    // A refusal that says how long it lasts (an IP lockout's 429): no retry before then, plus a
    // little jitter so the clients behind one address do not all come back at once.
    if (facts.retryAfterMs !== undefined) delay = Math.max(delay, Math.min(facts.retryAfterMs, MAX_RETRY_AFTER_MS) + Math.floor(this.random() * 1000));
    this.attempt++;
    const httpReason = facts.httpStatus !== undefined ? `http_${facts.httpStatus}` : reason;
    this.events.emit('disconnected', { code, reason: facts.authFailure ?? (verdict.kind === 'shutdown' ? 'server_shutdown' : httpReason), retryInMs: delay });
    this.scheduleReconnect(delay);
  }

  private scheduleReconnect(delay: number): void {
    if (this.stopped()) return;
    this.setState('reconnecting');
    if (this.stopped()) return; // a state listener closed the client
    this.timers.reconnect.start(delay, () => void this.openSocket());
  }

  /** Ends everything: timers, socket, pending work, listeners. */
  private stop(reason: string, permanent: boolean): void {
    this.setState('closed');
    // The save timer runs only while an asynchronous save does, and ends with it. It stays only
    // when close()'s save waits behind a running one (at most SAVE_WAIT_MS, never beside it);
    // nothing follows close()'s own save, so nothing needs to give up on it.
    for (const [name, t] of Object.entries(this.timers)) if (name !== 'save' || !this.saveAgain) t.stop();
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      detach(ws);
      try {
        ws.close(1000, 'client closed');
      } catch {
        // already closing
      }
    }
    this.queue.rejectAll(reason);
    this.requests.rejectAll(reason);
    this.readyWaiter?.reject(new ConnectError(reason));
    this.events.emit('closed', { reason, permanent });
    this.events.removeAll();
  }

  private transmit(frame: Record<string, unknown>): boolean {
    return this.transmitText(JSON.stringify(frame));
  }

  private transmitText(text: string): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN || this.currentState !== 'open') return false;
    ws.send(text);
    return true;
  }

  // ── incoming ──

  private onFrame(f: Frame): void {
    switch (f.type) {
      case 'auth_success':
        return this.onAuthSuccess(f);
      case 'auth_failure':
        this.socketFacts.authFailure = String(f.reason);
        return;
      case 'chat_message':
      case 'membership':
      case 'message_edited':
      case 'message_deleted':
        return this.onTimeline(f);
      case 'message_sent':
        return this.onSent(f);
      case 'message_changed':
        return this.onChanged(f);
      case 'receipt': {
        const moved = this.receiptPositions.advance({
          conversationId: String(f.conversationId),
          userId: String(f.userId),
          ...(typeof f.delivered === 'number' ? { delivered: f.delivered } : {}),
          ...(typeof f.read === 'number' ? { read: f.read } : {}),
        });
        if (moved !== undefined) this.events.emit('receipt', moved);
        return;
      }
      case 'presence_changed':
        this.events.emit('presence', { userId: String(f.userId), online: f.online === true });
        return;
      case 'read_updated':
        // With our requestId: the answer to markRead. Without: the position moved (any session of ours).
        if (!this.requests.answer(f)) this.events.emit('read', { conversationId: String(f.conversationId), readSeq: Number(f.readSeq) });
        return;
      case 'timeline_pruned': {
        const after = Number(f.after);
        const firstPos = Number(f.firstPos);
        if (this.socketFacts.gap || !Number.isSafeInteger(firstPos)) return; // this socket is being replaced
        // `after` past our position: we missed events before the hole — resume, as for any gap.
        if (after > this.tracker.pos) {
          this.admit(after + 1);
          return;
        }
        // The server counts the skipped positions as sent on this socket: they may be acknowledged
        // (else the same hole would come back at every reconnect).
        if (firstPos - 1 > this.streamPos) this.streamPos = firstPos - 1;
        if (firstPos - 1 <= this.tracker.pos) return this.processed(); // all of it at or below our position: nothing skipped
        this.tracker.skipTo(firstPos);
        this.events.emit('pruned', { after, firstPos });
        this.processed();
        return;
      }
      case 'resync':
        this.events.emit('resync', {});
        return;
      case 'typing_indicator':
        this.events.emit('typing', { senderId: String(f.senderId), isTyping: f.isTyping === true, ...(typeof f.conversationId === 'string' ? { conversationId: f.conversationId } : {}) });
        return;
      case 'error':
      case 'rate_limited':
        return this.onRefusal(f);
      case 'pong':
        return; // its arrival was the point (heard)
      default:
        this.requests.answer(f);
    }
  }

  private onAuthSuccess(f: Frame): void {
    this.expiredInARow = 0;
    if (this.currentState !== 'authenticating') {
      this.refreshUnanswered = false; // the answer to a token refresh
      return;
    }
    this.timers.connect.stop();
    const resumeAfter = Number(f.resumeAfter ?? 0);
    const lastPos = Number(f.lastPos ?? resumeAfter);
    const userId = String(f.userId);
    const identity = tokenIdentity(this.token);
    // Another user (a token whose user could not be read counts as one): the position is not theirs.
    if (userId !== this.owner || identity === undefined || identity !== this.ownerIdentity) this.dropPosition();
    // Found out only now (a token that could not be read): what was made as the last user fails.
    if (this.session?.userId !== undefined && userId !== this.session.userId) this.userChanged();
    this.session = { userId, identity };
    this.ownerIdentity = identity;
    // The server's timeline is behind our position (it was reset): follow it rather than drop everything.
    if (!this.positioned || lastPos < this.tracker.pos) this.tracker.reset(resumeAfter);
    this.positioned = true;
    this.owner = userId;
    this.user = userId;
    this.authenticatedAt = this.clock.now(); // the backoff starts over once this connection stayed up (onClose)
    this.ackedPos = 0;
    this.streamPos = resumeAfter;
    this.setState('open');
    // A listener may have closed the client (here and after each event below): start nothing then.
    if (this.stopped()) return;
    this.scheduleRefresh();
    this.startLiveness();
    const reconnect = this.everReady;
    this.everReady = true;
    this.events.emit('ready', { userId: this.user, resumeAfter, lastPos, reconnect });
    this.readyWaiter?.resolve();
    if (this.stopped()) return;
    if (this.tracker.pos > 0) this.startAck(this.ackDelay());
    this.pump();
  }

  /**
   * The position is another user's (a store left by the last user of this browser or machine, a
   * token provider that changed users): resuming from it would drop that many of this user's
   * events as replays, and acknowledge them. The server's record of the device decides instead
   * (`auth` without `after`), and the position starts at its `resumeAfter`.
   */
  private dropPosition(): void {
    if (!this.positioned) return;
    this.positioned = false;
    this.owner = undefined;
    this.ownerIdentity = undefined;
    this.savedPos = -1;
  }

  /**
   * The token for the next connection is read (unverified): a position is resumed from only by the
   * identity it was saved for (one that cannot be read is not trusted), and what the last
   * connection's user left unsent must not go out as someone else.
   */
  private checkIdentity(token: string): void {
    const identity = tokenIdentity(token);
    // Not another user's position to resume from; kept until another user's auth_success (this
    // attempt may never authenticate, and the next token may be the owner's again).
    this.resumeFromPosition = identity !== undefined && identity === this.ownerIdentity;
    if (identity === undefined) return; // a token that cannot be read: found out at auth_success
    const userId = tokenSubject(token);
    const s = this.session;
    const other = s !== undefined && (s.identity !== undefined ? identity !== s.identity : userId !== s.userId);
    if (other) this.userChanged();
    // What the app does from now on is this user's (the token's `sub` is the server's `userId`): not
    // failed again at their auth_success or a later attempt of theirs, but failed if another user
    // — even one whose token cannot be read — authenticates instead.
    if (s === undefined || other) this.session = { userId, identity };
  }

  /**
   * The client is signed in as another user than the last connection's (a token provider that
   * changed users): sends and requests made as that user fail with `user_changed` instead of
   * going out as the new one (a create repeated under its key would make the new user a group,
   * and hand it to the old one's promise). Whether they happened is the old user's to look up.
   * The waits and windows kept for the old user's budgets are theirs too (the server's message and
   * request budgets are per user): the new user starts with none of them — no message-budget or
   * storage wait, no probation, empty pacing windows, no ack spacing.
   */
  private userChanged(): void {
    this.queue.rejectAll(USER_CHANGED);
    this.requests.rejectAll(USER_CHANGED);
    this.sendPausedUntil = 0;
    this.sendPauseMs = 0;
    this.sendProbation = false;
    this.probeId = undefined;
    this.pacer.reset();
    this.sendPacer.reset();
    this.lastAckAt = undefined;
    this.ackHeld = false;
  }

  /**
   * Liveness of an open connection, decided by timers and a flag: a period of `pingIntervalMs` with
   * nothing received → `ping`; nothing received `pongTimeoutMs` after the ping → the connection is
   * dead: closed here (its close event may never come) and handled as a drop, so sends and acks
   * move to a new connection. A timer that fires late (a throttled background tab, a laptop waking
   * up) can only delay a verdict, never give up a connection that answered: it is given up only
   * when the ping it sent went unanswered. The one clock read, what is left of a server-requested
   * wait (`framesWait`), is capped at that wait, so a clock step cannot stretch it.
   */
  private startLiveness(): void {
    this.heard = false;
    const interval = this.options.pingIntervalMs ?? 25_000;
    if (!(interval > 0) || !Number.isFinite(interval)) return; // off
    this.timers.liveness.start(interval, () => this.livenessTick());
  }

  private livenessTick(held = false): void {
    if (this.ws === undefined || this.currentState !== 'open') return;
    if (this.heard) return this.startLiveness();
    // During the server's wait a ping would only be refused (a strike towards 4029): it goes when
    // the wait ends, and the pong timeout starts then, with the ping on the wire — one the SDK held
    // back never counts against the connection. Held once only: a wait grows only with a refusal,
    // a frame, and a frame heard meanwhile starts a new period instead. So a dead connection is
    // found at most one wait later than without it.
    const wait = held ? 0 : this.framesWait();
    if (wait > 0) return this.timers.liveness.start(wait, () => this.livenessTick(true));
    this.transmit({ type: 'ping' });
    const given = this.options.pongTimeoutMs ?? 10_000;
    const timeout = given > 0 && Number.isFinite(given) ? given : 10_000;
    this.timers.liveness.start(timeout, () => this.awaitPong(false));
  }

  private awaitPong(confirming: boolean): void {
    const ws = this.ws;
    if (ws === undefined || this.currentState !== 'open') return;
    if (this.heard) return this.startLiveness();
    // One more turn first: a pong already received but not yet read (timers run before socket
    // reads in an event-loop turn) is handled before the verdict.
    if (!confirming) return this.timers.liveness.start(0, () => this.awaitPong(true));
    abandon(ws, 'heartbeat_timeout');
    this.onClose(ws, 1006, 'heartbeat_timeout');
  }

  /** Checks `pos`: true when the event is the next one; handles duplicates and gaps. */
  private admit(pos: number): boolean {
    if (pos > this.streamPos) this.streamPos = pos;
    const verdict = this.tracker.check(pos);
    if (verdict === 'deliver') return true;
    // A replay of what we had (the server resumed at what this device acknowledged): it may be
    // acknowledged now, up to here.
    if (verdict === 'duplicate') {
      if (this.ackable() > this.ackedPos) this.processed();
      return false;
    }
    if (verdict === 'gap' && !this.socketFacts.gap) {
      // The stream skipped a position: resume from the last one we have (on a fresh socket).
      this.socketFacts.gap = true;
      this.events.emit('gap', { after: this.tracker.pos, got: pos });
      this.ws?.close(1000, 'gap');
    }
    return false;
  }

  private onTimeline(f: Frame): void {
    const pos = Number(f.pos);
    if (!Number.isSafeInteger(pos) || this.socketFacts.gap || !this.admit(pos)) return;
    // The position moves before the event is handed over: a listener that closes the client saves
    // and acknowledges it with this event (not handed over again after a restart), and nothing
    // runs between the two that could save it without.
    this.tracker.advance(pos);
    if (f.type === 'chat_message') {
      const { type: _type, ...message } = f;
      const own = f.senderId === this.user;
      // Our own message may already have reached the application as `sent` (its confirmation
      // after a resend arrived before the replayed copy).
      if (!own || this.ownMessages.copy(String(f.id), this.queue.size > 0)) this.events.emit('message', { ...(message as unknown as ClientEvents['message']), pos, own });
    } else {
      const { type: _type, ...event } = f;
      if (f.type === 'membership') this.events.emit('membership', { ...(event as unknown as ClientEvents['membership']), pos });
      else if (f.type === 'message_edited') this.events.emit('edited', { ...(event as unknown as ClientEvents['edited']), pos });
      else this.events.emit('deleted', { ...(event as unknown as ClientEvents['deleted']), pos });
    }
    this.processed();
  }

  private onSent(f: Frame): void {
    const sent: SentEvent = {
      id: String(f.id),
      conversationId: String(f.conversationId),
      seq: Number(f.seq),
      timestamp: Number(f.timestamp),
      ...(typeof f.clientMsgId === 'string' ? { clientMsgId: f.clientMsgId } : {}),
      ...(typeof f.pos === 'number' ? { pos: f.pos } : {}),
    };
    // Confirmed before the event: a listener that closes the client must not reject this very send.
    const confirmed = sent.clientMsgId !== undefined && this.queue.confirm({ id: sent.id, clientMsgId: sent.clientMsgId, conversationId: sent.conversationId, seq: sent.seq, timestamp: sent.timestamp });
    // Without `pos` (a repeat the server had stored): handed over once, for the send it confirms
    // (a second answer to one send confirms nothing), unless its copy was handed over already.
    if (confirmed) this.sendConfirmed(sent.clientMsgId!);
    const emit = sent.pos === undefined ? confirmed && this.ownMessages.confirmedWithoutPos(sent.id) : this.placeSent(sent.id, sent.pos);
    if (emit) this.events.emit('sent', sent);
    if (sent.pos !== undefined) this.processed();
    this.pump();
  }

  /**
   * A confirmation with `pos` takes the place of our own copy in the stream: it is that position's
   * event, handed over only as the next one. Not while a gap is being resumed (this socket's
   * events are not handed over any more): the replay brings its copy again, in order, as a `message`.
   * The position moves either way, but the message is handed over only if it was not already: a
   * send repeated after a dropped frame may have been confirmed first by its repeat's answer
   * (without `pos`, at once), the original's answer coming later in its place.
   */
  private placeSent(id: string, pos: number): boolean {
    if (this.socketFacts.gap || !this.admit(pos)) return false;
    this.tracker.advance(pos);
    return this.ownMessages.placed(id);
  }

  /** The answer to an edit or delete: confirms the queued change (a repeat finds nothing queued). */
  private onChanged(f: Frame): void {
    const clientMsgId = typeof f.clientMsgId === 'string' ? f.clientMsgId : undefined;
    const confirmed =
      clientMsgId !== undefined &&
      this.queue.confirm({
        action: f.action === 'deleted' ? 'deleted' : 'edited',
        messageId: String(f.messageId),
        clientMsgId,
        conversationId: String(f.conversationId),
        ...(typeof f.seq === 'number' ? { seq: f.seq } : {}),
      });
    if (confirmed) {
      this.sendConfirmed(clientMsgId);
      this.pump();
    } else this.requests.answer(f);
  }

  private onRefusal(f: Frame): void {
    const clientMsgId = typeof f.clientMsgId === 'string' ? f.clientMsgId : undefined;
    if (clientMsgId !== undefined && this.queue.has(clientMsgId)) {
      if (f.type === 'rate_limited') {
        this.queue.rateLimited(clientMsgId);
        this.pauseSends(Math.max(0, Number(f.retryAfter) || 0));
        this.sendProbation = true;
        this.probeId = undefined;
      } else if (this.queue.failed(clientMsgId, String(f.reason), detailOf(f.details))) {
        this.pauseSends(this.retryDelay());
      }
      this.pump();
      return;
    }
    if (this.requests.answer(f)) return;
    if (clientMsgId === undefined && f.requestId === undefined) this.onUnnamedRefusal(f);
    this.events.emit('error', { reason: String(f.reason), ...(f.details !== undefined ? { details: f.details } : {}) });
  }

  /**
   * A refusal that names no frame. The frame budget (`rate_limited frame_limit`; also the user's
   * request budget refusing an `ack`, which carries no `requestId`) and a failed limiter or handler
   * (`error internal_error`) dropped one of our frames unread, we cannot tell which: everything
   * that may have been it goes again after the wait (`framesDropped`). `error storage_unavailable`
   * without ids answers an `ack` (or a typing indicator, or the server's own replay): the ack is
   * sent again. A `validation_failed` is not retried: it would be refused again, and the SDK checks
   * what it sends against the same bounds first (outgoing-checks.ts).
   */
  private onUnnamedRefusal(f: Frame): void {
    if (f.type === 'rate_limited') this.framesDropped(Math.max(0, Number(f.retryAfter) || 0));
    else if (f.reason === ErrorReason.INTERNAL) this.framesDropped(this.retryDelay());
    else if (f.reason === ErrorReason.STORAGE_UNAVAILABLE) this.ackAgain(this.retryDelay());
  }

  /**
   * The server dropped one of our frames unread and wants `wait` ms before the next. Nothing goes
   * out until then; after it: sends in flight go again (their `clientMsgId` makes a repeat
   * harmless), repeatable requests are asked again and changes fail with `unconfirmed` unless
   * answered (requests.ts), the latest ack is sent again (cumulative, so always safe), and an
   * unanswered token refresh is made again (else the session would end at the old token's `exp`).
   */
  private framesDropped(wait: number): void {
    const now = this.clock.now();
    // max(the wait still running, this one), from now.
    this.framesPauseMs = Math.max(this.framesWait(), wait);
    this.framesPausedUntil = now + this.framesPauseMs;
    this.queue.resendInFlight();
    this.requests.maybeDropped(wait);
    this.ackAgain(wait);
    if (this.refreshUnanswered) this.timers.refresh.start(wait, () => void this.refreshToken());
    this.pump();
  }

  /**
   * Acks are never answered: after a refusal that may have been an ack's, none is known to have
   * arrived, and the position is acknowledged again after `wait` (`ack {upTo}` is cumulative and
   * idempotent) instead of only when it next moves.
   */
  private ackAgain(wait: number): void {
    if (this.ackedPos === 0) return; // nothing acknowledged on this socket yet
    this.ackedPos = 0;
    this.startAck(wait);
  }

  /**
   * What is left of the server's wait (ms; 0: none). Never more than the wait was when set: a clock
   * stepped back cannot hold frames (liveness pings among them) longer than the server asked.
   */
  private framesWait(): number {
    return Math.max(0, Math.min(this.framesPausedUntil - this.clock.now(), this.framesPauseMs));
  }

  /**
   * Holds every send for `wait` ms (a send to retry keeps its place in the queue, and the sends
   * behind it wait with it: none overtakes it, so an older edit never lands after a newer one).
   * Unlike the wait for dropped frames, it does not end with the socket: the user's message budget
   * and the storage are the server's, not the connection's, so a new connection would be refused
   * the same way; and a wait every send shares cannot reorder them across a reconnect.
   */
  private pauseSends(wait: number): void {
    this.sendPauseMs = Math.max(this.sendsWait(), wait);
    this.sendPausedUntil = this.clock.now() + this.sendPauseMs;
  }

  /** A send was confirmed: one put on the wire since a `rate_limited` ends the one-at-a-time window. */
  private sendConfirmed(clientMsgId: string): void {
    if (this.sendProbation && clientMsgId === this.probeId) {
      this.sendProbation = false;
      this.probeId = undefined;
    }
  }

  /** What is left of the sends' wait (ms; 0: none), never more than it was when set (a clock stepped back). */
  private sendsWait(): number {
    return Math.max(0, Math.min(this.sendPausedUntil - this.clock.now(), this.sendPauseMs));
  }

  /** A server-side failure's retry delay (no `retryAfter` given): jittered, about one backoff base. */
  private retryDelay(): number {
    return backoffDelay(1, this.backoff, this.random) + this.backoff.baseMs;
  }

  // ── acks and persistence ──

  /** close() ran — possibly from a listener of the event being handled. */
  private stopped(): boolean {
    return this.currentState === 'closed';
  }

  private processed(): void {
    if (this.stopped()) return; // a listener closed the client
    const unacked = this.ackable() - this.ackedPos;
    if (unacked >= (this.options.ackEvery ?? 100)) {
      // Enough to acknowledge at once — but acks spend the request budget: a fast replay must not
      // send one every `ackEvery` events, so never sooner than `ackDelayMs` after the last.
      const spacing = this.ackSpacing();
      if (spacing === 0) this.flushAck();
      else if (!this.timers.ack.active || this.ackDueAt > this.clock.now() + spacing) this.startAck(spacing);
    } else if (!this.timers.ack.active) this.startAck(this.ackDelay());
  }

  private ackDelay(): number {
    return this.options.ackDelayMs ?? 250;
  }

  /** Ms until the next ack may go (0: now): `ackDelayMs` after the last (a clock stepped back waits no longer). */
  private ackSpacing(): number {
    if (this.lastAckAt === undefined) return 0;
    const delay = this.ackDelay();
    return Math.max(0, Math.min(this.lastAckAt + delay - this.clock.now(), delay));
  }

  private startAck(ms: number): void {
    this.ackDueAt = this.clock.now() + ms;
    this.timers.ack.start(ms, () => this.flushAck());
  }

  /** What an ack may cover: what we processed, as far as this socket's stream has reached. */
  private ackable(): number {
    return Math.min(this.tracker.pos, this.streamPos);
  }

  /**
   * Acknowledges the position, unless the server asked for a wait, the last ack went less than
   * `ackDelayMs` ago, or the request budget's pacing has no slot (then after that); `now`:
   * regardless (closing).
   */
  private flushAck(now = false): void {
    this.timers.ack.stop();
    this.ackHeld = false;
    const pos = this.ackable();
    if (pos > this.ackedPos) {
      // The server's wait, the spacing between acks, then a slot of the request budget.
      const wait = now ? 0 : Math.max(this.framesWait(), this.ackSpacing());
      const paced = now || wait > 0 ? 0 : this.pacer.wait();
      if (wait > 0) this.startAck(wait);
      else if (paced > 0) {
        this.ackHeld = true; // the pump lets it go first when a slot frees
        this.startAck(paced);
      } else if (this.transmit({ type: 'ack', upTo: pos })) {
        this.ackedPos = pos;
        this.lastAckAt = this.clock.now();
        this.pacer.spend();
      }
    }
    this.persist();
  }

  private persist(): void {
    if (!this.positioned || this.owner === undefined || this.tracker.pos === this.savedPos || this.device === '') return;
    // An asynchronous save still running: the newest position is saved after it, never beside it
    // (two saves at once may finish in either order, and an older position written last would replay).
    if (this.saving) {
      this.saveAgain = true;
      return;
    }
    const pos = this.tracker.pos;
    this.savedPos = pos;
    // A failed save leaves the position unsaved: the next persist (close() among them) tries again.
    const failed = (): void => {
      if (this.savedPos === pos) this.savedPos = -1;
      this.events.emit('error', { reason: 'store_failed' });
    };
    try {
      const done = this.store.save({ deviceId: this.device, pos, userId: this.owner, ...(this.ownerIdentity !== undefined ? { identity: this.ownerIdentity } : {}) });
      if (done instanceof Promise) this.awaitSave(done.catch(failed));
    } catch {
      failed();
    }
  }

  /**
   * Holds later saves until this one settles (they follow it, after close() too). A save that never
   * settles must not hold them forever: after SAVE_WAIT_MS the newest position goes anyway — and
   * should the hung save then settle after it, possibly writing last, the newest goes once more.
   * A save started after close() is the last (or that once more): no later one waits for it, so
   * no timer is started for it — close() leaves no timer but the one it found running.
   */
  private awaitSave(done: Promise<void>): void {
    const number = ++this.saveCount;
    this.saving = true;
    let over = false;
    const next = (): void => {
      if (over) return;
      over = true;
      this.timers.save.stop();
      this.saving = false;
      if (this.saveAgain) {
        this.saveAgain = false;
        this.persist();
      }
    };
    if (!this.stopped()) this.timers.save.start(SAVE_WAIT_MS, next);
    void done.finally(() => {
      const overtaken = number < this.settledSave;
      this.settledSave = Math.max(this.settledSave, number);
      next();
      if (!overtaken) return;
      this.savedPos = -1; // this older state may be the one written last
      this.persist();
    });
  }

  // ── sends, requests, refresh ──

  /** Puts requests and sends on the wire, sends in the order they were made, after the waits; a timer comes back when one ends. */
  private pump(): void {
    this.timers.sends.stop();
    if (this.currentState !== 'open') return;
    const wait = this.framesWait();
    if (wait > 0) {
      this.timers.sends.start(wait, () => this.pump());
      return;
    }
    // An ack held by the pacing goes before the requests: it is cumulative, and late it holds the
    // server's record of this device back (a reconnect would replay what it covers).
    if (this.ackHeld) this.flushAck();
    const paceWait = this.requests.flush((f) => this.transmit(f), this.pacer);
    const sendsWait = this.sendsWait();
    const sendPaceWait = sendsWait > 0 ? 0 : this.flushSends();
    const wake = Math.min(...[paceWait, sendsWait, sendPaceWait].map((w) => (w > 0 ? w : Infinity)));
    if (wake < Infinity) this.timers.sends.start(wake, () => this.pump());
  }

  /**
   * Puts waiting sends on the wire, oldest first: at most `maxInFlightSends` unanswered (1 during
   * a probation after `rate_limited`), and only while the send budget's window has a slot (every
   * frame spends one, a resend too: the server counts it). Returns the ms until the next slot
   * frees when a send waits for one (0: none does).
   */
  private flushSends(): number {
    const maxInFlight = this.sendProbation ? 1 : (this.options.maxInFlightSends ?? 8);
    let inFlight = this.queue.inFlight;
    for (const p of this.queue.waiting()) {
      if (inFlight >= maxInFlight) return 0; // an answer pumps again
      const paced = this.sendPacer.wait();
      if (paced > 0) return paced;
      if (!this.transmitText(p.text)) return 0; // the socket is gone: the next one pumps
      this.sendPacer.spend();
      p.inFlight = true;
      if (this.sendProbation) this.probeId = p.clientMsgId;
      inFlight++;
    }
    return 0;
  }

  /** Queues a message or change under its idempotency key (generated unless given). */
  private enqueue<T>(given: string | undefined, add: (clientMsgId: string) => Promise<T>, fieldProblem?: string): Promise<T> {
    const clientMsgId = given === undefined ? newClientMsgId(this.clock.now()) : given;
    // Never queued: the server could only refuse it, naming no clientMsgId (and would, on every reconnect).
    const problem = (given === undefined ? undefined : clientMsgIdProblem(given)) ?? fieldProblem;
    if (problem !== undefined) return Promise.reject(new SendError(ErrorReason.VALIDATION_FAILED, String(clientMsgId), problem));
    if (this.currentState === 'closed') return Promise.reject(new SendError('closed', clientMsgId));
    if (this.queue.has(clientMsgId)) return Promise.reject(new SendError('duplicate_client_msg_id', clientMsgId));
    const promise = add(clientMsgId);
    this.pump();
    return promise;
  }

  private async group(frame: Record<string, unknown>): Promise<GroupReply> {
    const reply = await this.request(frame);
    return { conversationId: String(reply.conversationId), changed: reply.changed === true, ...(typeof reply.seq === 'number' ? { seq: reply.seq } : {}) };
  }

  private request(frame: Record<string, unknown>): Promise<Record<string, unknown>> {
    // Never sent: the server could only refuse it, naming no requestId (the promise would wait for its timeout).
    const problem = requestProblem(frame);
    if (problem !== undefined) return Promise.reject(new RequestError(ErrorReason.VALIDATION_FAILED, undefined, problem));
    if (this.currentState === 'closed') return Promise.reject(new RequestError('closed'));
    const promise = this.requests.add(frame);
    this.pump();
    return promise;
  }

  private scheduleRefresh(): void {
    this.timers.refresh.stop();
    if (!this.tokens.renewable) return;
    const delay = this.refreshSchedule.delay(this.token, this.clock.now());
    if (delay === undefined) return;
    this.timers.refresh.start(delay, () => void this.refreshToken());
  }

  private async refreshToken(): Promise<void> {
    const ws = this.ws;
    let token: string;
    try {
      token = await this.tokens.get();
    } catch {
      if (this.ws === ws && this.currentState === 'open') this.timers.refresh.start(this.refresh.minDelayMs * 5, () => void this.refreshToken());
      return;
    }
    if (this.ws !== ws || this.currentState !== 'open') return;
    this.refreshSchedule.got(token, this.clock.now(), this.token);
    this.token = token;
    this.sendRefresh();
  }

  /**
   * Sends the current token as `auth` on the open socket — during the server's wait, right after
   * it instead: sent into the wait it would only be refused (a strike) and have to be made again.
   * A close stops the refresh timer, so a held token never reaches another socket.
   */
  private sendRefresh(): void {
    const wait = this.framesWait();
    if (wait > 0) return this.timers.refresh.start(wait, () => this.sendRefresh());
    if (this.transmit({ type: 'auth', token: this.token })) this.refreshUnanswered = true;
    this.scheduleRefresh();
  }
}
