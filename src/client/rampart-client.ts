/**
 * RampartClient: one logical connection to Rampart that survives reconnects. Here: the public API
 * and the connection lifecycle (connect, authenticate, close, reconnect with backoff). Composed
 * from the pieces of this folder: the timeline stream (timeline.ts) and its acks (ack-schedule.ts),
 * the sync state (state-persistence.ts), liveness (liveness.ts), the token and its refresh
 * (token-refresh.ts), whose the position is (identity.ts), the send queue and gate (send-queue.ts,
 * flow-control.ts), the request table (requests.ts) and the server's answers (server-answers.ts).
 * Frames become typed events, each timeline event delivered exactly once, in `pos` order.
 */
import type { SessionInfo } from '../protocol/session-frames.js';
import { CloseCode } from '../protocol/close-codes.js';
import { ErrorReason } from '../protocol/reasons.js';
import { AckSchedule } from './ack-schedule.js';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import type { ConversationsReply, Frame, GroupReply, HistoryReply, PresenceReply, RampartClientOptions } from './client-types.js';
import { systemClock, TimerSlot, type Clock } from './clock.js';
import { Emitter, type Listener } from './emitter.js';
import type { ClientEvents, ConnectionState } from './events.js';
import { SendGate, ServerWait } from './flow-control.js';
import { IdentityTracker } from './identity.js';
import { Liveness } from './liveness.js';
import { ReceiptPositions } from './receipt-positions.js';
import { attachmentsProblem, clientMsgIdProblem, contentProblem, deviceIdProblem, isUuid, requestProblem, targetProblem } from './outgoing-checks.js';
import { classifyClose } from './refusals.js';
import { DEFAULT_MAX_IN_FLIGHT_REQUESTS, Requests, RequestError } from './requests.js';
import { DEFAULT_REQUEST_BUDGET, DEFAULT_SEND_BUDGET, RequestPacer } from './request-pacing.js';
import { ServerAnswers } from './server-answers.js';
import { SendQueue, SendError, wireTarget, type ChangeReceipt, type OutgoingMessage, type SendReceipt, type Target } from './send-queue.js';
import { abandon, detach, globalWebSocketFactory, handshakeStatus, OPEN, type WebSocketFactory, type WebSocketLike } from './socket.js';
import { StatePersistence } from './state-persistence.js';
import { Timeline } from './timeline.js';
import { MemorySyncStore, newDeviceId } from './sync-store.js';
import { newClientMsgId } from './client-msg-id.js';
import { DEFAULT_REFRESH, tokenIdentity, TokenSource } from './token-source.js';
import { TokenRefresher } from './token-refresh.js';

export type { ConversationsReply, GroupReply, HistoryReply, PresenceReply, RampartClientOptions } from './client-types.js';

/** The longest server-requested wait honored before a reconnect (Retry-After); a longer one is clipped. */
const MAX_RETRY_AFTER_MS = 600_000;

/** Why sends and requests made as one user fail when the client finds itself signed in as another. */
const USER_CHANGED = 'user_changed';

/** The client stopped for good before it was ever ready. */
export class ConnectError extends Error {
  constructor(readonly reason: string) {
    super(`cannot connect: ${reason}`);
    this.name = 'ConnectError';
  }
}

export class RampartClient {
  private readonly events: Emitter<ClientEvents>;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly factory: WebSocketFactory;
  private readonly tokens: TokenSource;
  private readonly backoff: BackoffOptions;
  private readonly timers: { reconnect: TimerSlot; refresh: TimerSlot; ack: TimerSlot; sends: TimerSlot; connect: TimerSlot; liveness: TimerSlot; save: TimerSlot };

  /** The incoming timeline, in `pos` order, and the position. */
  private readonly timeline: Timeline;
  /** When processed positions are acknowledged. */
  private readonly acks: AckSchedule;
  /** Reading the stored sync state and saving the position. */
  private readonly persistence: StatePersistence;
  /** Ping/pong checks of the open connection. */
  private readonly liveness: Liveness;
  /** The current token and its refresh on the open socket. */
  private readonly refresher: TokenRefresher;
  /** Whose the position and the pending work are. */
  private readonly identity: IdentityTracker;
  /** Confirmations and refusals of what we sent. */
  private readonly answers: ServerAnswers;
  private readonly queue: SendQueue;
  private readonly requests: Requests;
  private readonly pacer: RequestPacer;
  /** The sends' wait, in-flight window and pacing (the user's message budget). */
  private readonly sends: SendGate;
  /**
   * Every frame the SDK can hold back (sends, requests, acks, typing, token refreshes, liveness
   * pings) waits until it ends: the server dropped a frame without naming it and asked for a
   * wait (see server-answers.ts `framesDropped`). Sending before it would only be refused again,
   * each refusal a strike towards close 4029. Read through `framesWait()`.
   */
  private readonly framesPause: ServerWait;
  /** Receipt frames may arrive out of order: only positions that moved forward reach `receipt` listeners. */
  private readonly receiptPositions = new ReceiptPositions();

  private device = '';
  private ws: WebSocketLike | undefined;
  private currentState: ConnectionState = 'idle';
  private user: string | undefined;
  private attempt = 0;
  /** Expired-token closes since the last `auth_success`: the first goes again at the first backoff step. */
  private expiredInARow = 0;
  /** Counts connection attempts: a `getToken()` answer for an attempt given up meanwhile is dropped. */
  private connectAttempt = 0;
  /** When the current socket authenticated (clock ms); undefined while none is. */
  private authenticatedAt: number | undefined;
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
    const store = options.store ?? new MemorySyncStore();
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.queue = new SendQueue(options.maxPendingSends ?? 1000, options.maxSendRetries ?? 5, options.maxFrameBytes ?? 65_536);
    // A request held for a rate limit's wait goes out when it ends.
    this.requests = new Requests(this.clock, options.requestTimeoutMs ?? 15_000, () => this.pump(), options.maxInFlightRequests ?? DEFAULT_MAX_IN_FLIGHT_REQUESTS);
    this.pacer = new RequestPacer(this.clock, { ...DEFAULT_REQUEST_BUDGET, ...options.requestBudget });
    const sendPacer = new RequestPacer(this.clock, { ...DEFAULT_SEND_BUDGET, ...options.sendBudget }, DEFAULT_SEND_BUDGET);
    this.sends = new SendGate(this.clock, this.queue, sendPacer, () => this.options.maxInFlightSends ?? 8);
    this.framesPause = new ServerWait(this.clock);
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
    const framesWait = (): number => this.framesWait();
    const transmit = (frame: Record<string, unknown>): boolean => this.transmit(frame);
    const stopped = (): boolean => this.stopped();
    this.persistence = new StatePersistence({
      store,
      events: this.events,
      backoff: this.backoff,
      random: this.random,
      options,
      retryTimer: this.timers.reconnect,
      saveTimer: this.timers.save,
      current: () => {
        const whose = this.identity.saveable();
        return whose === undefined || this.device === '' ? undefined : { deviceId: this.device, pos: this.timeline.pos, ...whose };
      },
      connecting: () => this.currentState === 'connecting',
      stopped,
    });
    this.acks = new AckSchedule(this.clock, this.timers.ack, this.pacer, options, { pos: () => this.timeline.pos, framesWait, transmit, persist: () => this.persistence.persist(), stopped });
    this.timeline = new Timeline({
      events: this.events,
      acks: this.acks,
      resuming: () => this.socketFacts.gap === true,
      gap: (after, got) => {
        // The stream skipped a position: resume from the last one we have (on a fresh socket).
        this.socketFacts.gap = true;
        this.events.emit('gap', { after, got });
        this.ws?.close(1000, 'gap');
      },
      user: () => this.user,
      sendsPending: () => this.queue.size > 0,
    });
    this.liveness = new Liveness(this.timers.liveness, options, {
      open: () => this.ws !== undefined && this.currentState === 'open',
      framesWait,
      transmit,
      dead: () => {
        const ws = this.ws;
        if (ws === undefined) return;
        abandon(ws, 'heartbeat_timeout');
        this.onClose(ws, 1006, 'heartbeat_timeout');
      },
    });
    this.refresher = new TokenRefresher({
      clock: this.clock,
      tokens: this.tokens,
      timer: this.timers.refresh,
      options: { ...DEFAULT_REFRESH, ...options.refresh },
      socket: () => this.ws,
      open: () => this.currentState === 'open',
      framesWait,
      transmit,
    });
    this.answers = new ServerAnswers({
      events: this.events,
      queue: this.queue,
      sends: this.sends,
      requests: this.requests,
      acks: this.acks,
      timeline: this.timeline,
      refresher: this.refresher,
      framesPause: this.framesPause,
      backoff: this.backoff,
      random: this.random,
      pump: () => this.pump(),
    });
    this.identity = new IdentityTracker({ positionDropped: () => this.persistence.forget(), userChanged: () => this.userChanged() });
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
    return this.timeline.pos;
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
      if (reply.conversationId !== undefined) this.receiptPositions.seed(reply.conversationId, reply.receipts);
      return reply;
    });
  }
  listConversations(query: { limit?: number; before?: string } = {}): Promise<ConversationsReply> {
    return (this.request({ type: 'list_conversations', limit: query.limit, before: query.before }) as Promise<unknown> as Promise<ConversationsReply>).then((reply) => {
      for (const c of reply.conversations ?? []) this.receiptPositions.seed(c.conversationId, c.receipts);
      return reply;
    });
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
    this.acks.flush(true);
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
    const stored = await this.persistence.load();
    if ((this.currentState as ConnectionState) !== 'connecting') return; // closed meanwhile
    this.device = this.options.deviceId ?? stored?.deviceId ?? newDeviceId();
    // A state that does not say whose it is — no user (an older SDK's), or a user without the
    // identity that tells tenants apart (this SDK's previous one) — may hold another user's
    // position: only its device id is used, and the server's record of that device says where to resume.
    if (stored?.userId !== undefined && stored.identity !== undefined) {
      this.timeline.restore(stored.pos);
      this.identity.restore(stored.userId, stored.identity);
      this.persistence.saved(stored.pos);
    }
    await this.openSocket();
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
    this.refresher.connecting(token);
    this.identity.checkToken(token);
    this.socketFacts = {};
    // A wait asked for dropped frames belongs to the socket it was asked on (the frame budget is
    // per connection; an internal error does not outlive it either): the next one starts free.
    this.framesPause.clear();
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
      if (this.identity.resumes) auth.after = this.timeline.pos;
      ws.send(JSON.stringify(auth));
    };
    ws.onmessage = (ev) => {
      this.liveness.frameArrived();
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
    this.acks.flush(true); // persists; the ack itself cannot go out any more
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
    for (const [name, t] of Object.entries(this.timers)) if (name !== 'save' || !this.persistence.followUpPending) t.stop();
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
        return this.timeline.event(f);
      case 'message_sent':
        return this.answers.sent(f);
      case 'message_changed':
        return this.answers.changed(f);
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
      case 'timeline_pruned':
        return this.timeline.pruned(f);
      case 'resync':
        this.events.emit('resync', {});
        return;
      case 'typing_indicator':
        this.events.emit('typing', { senderId: String(f.senderId), isTyping: f.isTyping === true, ...(typeof f.conversationId === 'string' ? { conversationId: f.conversationId } : {}) });
        return;
      case 'error':
      case 'rate_limited':
        return this.answers.refusal(f);
      case 'pong':
        return; // its arrival was the point (heard)
      default:
        this.requests.answer(f);
    }
  }

  private onAuthSuccess(f: Frame): void {
    this.expiredInARow = 0;
    if (this.currentState !== 'authenticating') {
      this.refresher.answered(); // the answer to a token refresh
      return;
    }
    this.timers.connect.stop();
    const resumeAfter = Number(f.resumeAfter ?? 0);
    const lastPos = Number(f.lastPos ?? resumeAfter);
    const userId = String(f.userId);
    this.identity.authenticated(userId, tokenIdentity(this.refresher.token));
    // The server's timeline is behind our position (it was reset): follow it rather than drop everything.
    if (!this.identity.positioned || lastPos < this.timeline.pos) this.timeline.reset(resumeAfter);
    this.identity.own(userId);
    this.user = userId;
    this.authenticatedAt = this.clock.now(); // the backoff starts over once this connection stayed up (onClose)
    this.acks.newStream(resumeAfter);
    this.setState('open');
    // A listener may have closed the client (here and after each event below): start nothing then.
    if (this.stopped()) return;
    this.refresher.schedule();
    this.liveness.start();
    const reconnect = this.everReady;
    this.everReady = true;
    this.events.emit('ready', { userId: this.user, resumeAfter, lastPos, reconnect });
    this.readyWaiter?.resolve();
    if (this.stopped()) return;
    if (this.timeline.pos > 0) this.acks.start(this.acks.delay());
    this.pump();
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
    this.sends.reset();
    this.pacer.reset();
    this.acks.forgetSpacing();
  }

  /** What is left of the server's wait for dropped frames (ms; 0: none). */
  private framesWait(): number {
    return this.framesPause.left();
  }

  /** close() ran — possibly from a listener of the event being handled. */
  private stopped(): boolean {
    return this.currentState === 'closed';
  }

  // ── sends and requests ──

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
    if (this.acks.held) this.acks.flush();
    const paceWait = this.requests.flush((f) => this.transmit(f), this.pacer);
    const sendsWait = this.sends.wait();
    const sendPaceWait = sendsWait > 0 ? 0 : this.sends.flush((text) => this.transmitText(text));
    const wake = Math.min(...[paceWait, sendsWait, sendPaceWait].map((w) => (w > 0 ? w : Infinity)));
    if (wake < Infinity) this.timers.sends.start(wake, () => this.pump());
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
}
