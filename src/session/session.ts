/**
 * One object per socket, with an explicit state machine:
 *
 *   awaiting_auth ──auth frame──► authenticating ──ok──► active ──► closing
 *         └──────────── timeout / bad frame / bad token ────────────┘
 *
 * The session owns every per-socket timer (auth, heartbeat, token expiry, close grace) and the
 * outbound path (corking, back-pressure). It does not interpret frames: the pipeline does.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket, RawData } from 'ws';
import type { Identity } from '../auth/token-verifier.js';
import type { ServerFrame } from '../protocol/server-frames.js';
import { CloseCode } from '../protocol/close-codes.js';
import type { FlushScheduler, Flushable } from './flush-scheduler.js';
import { closeWith, type Rejection } from '../pipeline/rejection.js';
import type { SecurityEventSink } from '../observability/security-events.js';
import type { TimerWheel, WheelEntry } from './timer-wheel.js';
import { limitIncomingMessages } from './incoming-limit.js';

/** What the session needs from its timeline stream (src/sync/device-stream.ts). */
export interface TimelineStream {
  /** The last position the stream sent, or its resume point (-1 before it started). */
  readonly lastPos: number;
  offer(pos: number, frame: string, isReply?: boolean): void;
  catchUp(): void;
  close(): void;
}

export type SessionState = 'awaiting_auth' | 'authenticating' | 'active' | 'closing';

export interface SessionTimings {
  authTimeout: number;
  heartbeatInterval: number;
  heartbeatTimeout: number;
  maxBufferedBytes: number;
  maxQueuedFrames: number;
  /** Frames before the session is active are refused above this size, from their header (1009). */
  maxPreAuthMessageSize: number;
  /** Once the session is active, the cap is this instead. */
  maxMessageSize: number;
  /**
   * `jwt.clockTolerance` in ms: a token is accepted until this long past its `exp`, so a session
   * lives as long — else one accepted inside the tolerance would be expired at once.
   */
  tokenExpiryGraceMs: number;
  maxViolations: number;
  violationWindowMs: number;
  /** Pongs owed to a pinging client (written, not yet flushed) before further pings are ignored. */
  maxPendingAutoPongs: number;
}

/** What the session needs from the rest of the server. */
export interface SessionHooks {
  /** The message pipeline. A returned promise holds later frames of this socket until it settles. */
  handleFrame(session: Session, data: Buffer, isBinary: boolean): void | Promise<void>;
  /** Too many strikes: the server decides the penalty and closes. */
  onAbuse(session: Session): void;
  /** Called exactly once, after the socket closed, whatever the path. */
  onClosed(session: Session, code: number): void;
  flush: FlushScheduler;
  security: SecurityEventSink;
  /** The node's timer wheel: every deadline of every session (src/session/timer-wheel.ts). */
  timers: TimerWheel;
}

let nextSessionId = 1;
type QueuedFrame = { data: Buffer; isBinary: boolean };
/** Shared, immutable: the rejection for a session whose frame queue overflowed. */
const QUEUE_OVERFLOW = closeWith('queue_overflow', CloseCode.RATE_LIMIT_ABUSE);
const PRE_AUTH_TOO_BIG = closeWith('pre_auth_too_large', CloseCode.MESSAGE_TOO_BIG);
const AUTH_TIMEOUT = closeWith('auth_timeout', CloseCode.AUTH_TIMEOUT);
const TOKEN_EXPIRED = closeWith('token_expired', CloseCode.TOKEN_EXPIRED, { type: 'auth_failure', reason: 'token_expired' });

// The socket's listeners are shared functions, not four closures per session: ws calls them with
// `this` = the WebSocket, which points back at its session.
const SESSION = Symbol('rampart.session');
/** A heartbeat ping's payload (random, see Session.onPong). */
const PING_NONCE_BYTES = 8;
type SessionSocket = WebSocket & { [SESSION]: Session };
const sessionOf = (ws: WebSocket): Session => (ws as SessionSocket)[SESSION];
function onSocketMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  sessionOf(this).onMessage(data, isBinary);
}
function onSocketPong(this: WebSocket, data: Buffer): void {
  sessionOf(this).onPong(data);
}
function onSocketPing(this: WebSocket, data: Buffer): void {
  sessionOf(this).onPing(data);
}
function onSocketClose(this: WebSocket, code: number): void {
  sessionOf(this).onClose(code);
}
function onSocketError(this: WebSocket, err: Error & { code?: string }): void {
  sessionOf(this).onError(err);
}

export class Session implements Flushable, WheelEntry {
  readonly id: string;
  state: SessionState = 'awaiting_auth';
  identity: Identity | undefined;
  /** `tenant:userId`: the key for the bus, registry and per-user limits. */
  userKey = '';
  /** True while this session holds a slot of `maxConnectionsPerUser` in the registry. */
  holdsUserSlot = false;
  /** The device named in `auth`, if any. */
  deviceId: string | undefined;
  /**
   * `auth_success` is out. The session joins the registry before its resume point is read (so no
   * live frame falls in between); frames without a position (typing, receipts, read_updated) wait
   * for this, so nothing precedes `auth_success` on the wire.
   */
  announced = false;
  /** When the session authenticated (ms since the epoch; 0 before): its `since` in the session directory. */
  authenticatedAt = 0;
  private stream: TimelineStream | undefined;

  // Deadlines (ms since the epoch; 0: none). The session is scheduled on the node's wheel at the
  // earliest of them; `onWheel` decides what each one means.
  private authDueAt = 0;
  private heartbeatDueAt = 0;
  private expiryDueAt = 0;
  private terminateDueAt = 0;
  /** Maintained by the timer wheel. */
  wheelDue = 0;
  wheelSlot = -1;
  /** When the oldest ping still unanswered was sent (0: none outstanding). */
  private pingSentAt = 0;
  /** The unanswered pings' payload: random, so that only a client that read one can answer it. */
  private pingNonce: Buffer | undefined = undefined;
  /** Pongs to the client's pings not yet written out (ws's autoPong is off: see onPing). */
  private owedPongs = 0;
  private busy = false;
  /** Frames that arrived while the pipeline was busy; created on first use (most sessions never need it). */
  private queue: QueuedFrame[] | undefined;
  private corked = false;
  private violations = 0;
  private violationWindowStart = 0;
  private closeCode = 0;

  constructor(
    readonly ws: WebSocket,
    private readonly socket: Duplex,
    /** The per-IP limit key: the client's address, an IPv6 client's network (logs name it too). */
    readonly ip: string,
    /** The client's address itself (the session listings show it); the same string for IPv4. */
    readonly address: string,
    private readonly timings: SessionTimings,
    private readonly hooks: SessionHooks,
  ) {
    this.id = `s${nextSessionId++}`;
    (ws as SessionSocket)[SESSION] = this;
    ws.on('message', onSocketMessage);
    ws.on('pong', onSocketPong);
    ws.on('ping', onSocketPing);
    ws.on('close', onSocketClose);
    // Without an error listener a malformed frame would throw from the emitter and crash the
    // process; ws closes the socket itself (1002/1007/1009) after emitting it.
    ws.on('error', onSocketError);
    // Before any byte is parsed (ws reads the socket on a later turn): a header declaring more is refused at once.
    limitIncomingMessages(ws, timings.maxPreAuthMessageSize);
    this.authDueAt = hooks.timers.now() + timings.authTimeout;
    this.rearm();
  }

  get isOpen(): boolean {
    return this.state !== 'closing';
  }

  // ── inbound ────────────────────────────────────────────────────────────────────────────────

  /** @internal the socket's 'message' (see onSocketMessage). */
  onMessage(data: RawData, isBinary: boolean): void {
    if (this.state === 'closing') return;
    // With default binaryType ws hands us one Buffer per message.
    const buf = data as Buffer;
    // Checked on arrival, not at dispatch: frames sent while the token is being verified wait in
    // the queue, and an unauthenticated socket must not park maxQueuedFrames × maxMessageSize there.
    // ws refuses them from the header already (limitIncomingMessages); this holds if it cannot.
    if (this.state !== 'active' && buf.length > this.timings.maxPreAuthMessageSize) {
      this.reject(PRE_AUTH_TOO_BIG);
      return;
    }
    if (this.busy) {
      const queue = (this.queue ??= []);
      // The overflowing frame joins the queue the close hands back: were it the client's latest
      // ack, dropping it would replay the device what it acknowledged.
      queue.push({ data: buf, isBinary });
      if (queue.length > this.timings.maxQueuedFrames) this.reject(QUEUE_OVERFLOW);
      return;
    }
    this.dispatch(buf, isBinary);
  }

  /**
   * Frames that arrive while `work` runs wait behind it, as behind an async frame: a session
   * admitted by its handshake's token handles nothing before its `auth_success` is out.
   */
  holdFramesWhile(work: Promise<void>): void {
    this.busy = true;
    // Closures per async frame (short-lived), not a bound `drain` per session (held while idle).
    work.then(
      () => this.drain(),
      (err: unknown) => {
        this.internalError(err);
        this.drain();
      },
    );
  }

  private dispatch(data: Buffer, isBinary: boolean): void {
    let result: void | Promise<void>;
    try {
      result = this.hooks.handleFrame(this, data, isBinary);
    } catch (err) {
      this.internalError(err);
      return;
    }
    if (result !== undefined) this.holdFramesWhile(result);
  }

  private drain(): void {
    this.busy = false;
    const queue = this.queue;
    while (!this.busy && queue !== undefined && queue.length > 0 && this.state !== 'closing') {
      const next = queue.shift() as QueuedFrame;
      this.dispatch(next.data, next.isBinary);
    }
  }

  /** A bug behind a frame: one security line (the error's class only) and `internal_error` to the client. */
  internalError(err: unknown): void {
    this.hooks.security('internal_error', { sessionId: this.id, ip: this.ip, detail: err instanceof Error ? err.name : 'unknown' });
    this.sendFrame({ type: 'error', reason: 'internal_error' });
  }

  // ── outbound ───────────────────────────────────────────────────────────────────────────────

  /** Send an already-serialized frame; corked until the end of this event-loop turn. */
  send(frame: string): void {
    if (this.state === 'closing') return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      this.hooks.flush.add(this);
    }
    this.ws.send(frame);
  }

  sendFrame(frame: ServerFrame): void {
    this.send(JSON.stringify(frame));
  }

  // ── the timeline stream ────────────────────────────────────────────────────────────────

  /** Attached at activation: orders this session's timeline frames (see DeviceStream). */
  /**
   * The highest timeline position this session can have delivered (0 before its stream started):
   * an `ack` never covers more, so no device can acknowledge what it was never sent.
   */
  get ackablePos(): number {
    return Math.max(0, this.stream?.lastPos ?? 0);
  }

  attachStream(stream: TimelineStream): void {
    this.stream = stream;
  }

  /** A timeline frame at `pos`, live from the bus. */
  offerTimeline(pos: number, frame: string): void {
    this.stream?.offer(pos, frame);
  }

  /** This session's own `message_sent`, which takes the place of its copy at `pos`. */
  replyInTimeline(pos: number, frame: string): void {
    if (this.stream === undefined) this.send(frame);
    else this.stream.offer(pos, frame, true);
  }

  /** Frames may have been lost on the bus: read the gap from storage. */
  catchUp(): void {
    this.stream?.catchUp();
  }

  /** Held timeline frames passed the slow-consumer bound. */
  overflow(): void {
    if (this.state !== 'closing') this.closeSlowConsumer();
  }

  /** Called once per turn by the flush scheduler. */
  flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
    // Back-pressure: a client that does not read is closed instead of growing our memory.
    if (this.state !== 'closing' && this.bufferedBytes() > this.timings.maxBufferedBytes) this.closeSlowConsumer();
  }

  private closeSlowConsumer(): void {
    this.hooks.security('slow_consumer', { sessionId: this.id, ip: this.ip, userId: this.identity?.userId, tenantId: this.identity?.tenantId, code: CloseCode.SLOW_CONSUMER });
    this.close(CloseCode.SLOW_CONSUMER, 'slow consumer', true);
  }

  bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  /**
   * Resolves when the socket's write buffer drained below `bytes` (inbox replay pacing), or the
   * session closes. 'drain' is the fast path; a 25 ms re-check is the safety net: one CI run saw
   * a replay wait forever for 'drain' (root cause not found), so the wait must not rely on it alone.
   */
  waitForDrain(bytes: number): Promise<void> {
    if (this.bufferedBytes() <= bytes || this.state === 'closing') return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.bufferedBytes() > bytes && this.state !== 'closing') return;
        clearInterval(poll);
        this.socket.off('drain', check);
        this.ws.off('close', check);
        resolve();
      };
      const poll = setInterval(check, 25);
      this.socket.on('drain', check);
      this.ws.on('close', check);
    });
  }

  // ── rejections, in one place ───────────────────────────────────────────────────────────────

  /**
   * `refused`: the verified identity a refusal at `auth` was decided on (a ban, a revoked token, the
   * user's session cap…), named in the security line; the session itself has none until it is
   * active. Never an identity from a token that did not verify.
   */
  reject(rejection: Rejection, refused?: Pick<Identity, 'userId' | 'tenantId'>): void {
    const { action } = rejection;
    if (action.kind === 'drop') return;
    const who = this.identity ?? refused;
    this.hooks.security(rejection.event, {
      ip: this.ip,
      sessionId: this.id,
      ...(who ? { userId: who.userId, tenantId: who.tenantId } : {}),
      ...(action.kind === 'close' ? { code: action.code } : {}),
      ...(rejection.detail !== undefined ? { detail: rejection.detail } : {}),
    });
    if (action.kind === 'close') {
      if (action.frame) this.sendFrame(action.frame);
      this.close(action.code, rejection.event);
      return;
    }
    this.sendFrame(action.frame);
    if (action.strike) this.strike();
  }

  /** Limit hits within `violationWindowMs`; past `maxViolations` the server penalises. */
  private strike(): void {
    const now = Date.now();
    if (now - this.violationWindowStart > this.timings.violationWindowMs) {
      this.violationWindowStart = now;
      this.violations = 0;
    }
    if (++this.violations > this.timings.maxViolations) this.hooks.onAbuse(this);
  }

  // ── lifecycle ──────────────────────────────────────────────────────────────────────────────

  /** Move to `active`: stop the auth timer, start heartbeat and the token-expiry timer, lift the frame cap. */
  activate(identity: Identity, userKey: string): void {
    this.identity = identity;
    this.userKey = userKey;
    this.state = 'active';
    this.authenticatedAt = Date.now();
    const now = this.hooks.timers.now();
    this.authDueAt = 0;
    this.pingSentAt = 0;
    this.pingNonce = undefined;
    this.heartbeatDueAt = now + this.timings.heartbeatInterval;
    this.expiryDueAt = this.expiryOf(identity, now);
    limitIncomingMessages(this.ws, this.timings.maxMessageSize);
    this.rearm();
  }

  /**
   * A refreshed token of the same user and tenant (the caller checked): its claims replace the
   * old ones — a changed role applies from now on — and its `exp` moves the expiry.
   */
  refresh(identity: Identity): void {
    this.identity = identity;
    this.expiryDueAt = this.expiryOf(identity, this.hooks.timers.now());
    this.rearm();
  }

  /** The token's expiry plus the verifier's clock tolerance, on the wheel's clock (never 0, which means "no deadline"). */
  private expiryOf(identity: Identity, now: number): number {
    const left = identity.expiresAt + this.timings.tokenExpiryGraceMs - Date.now();
    return Math.max(now + Math.max(left, 0), 1);
  }

  /** Schedules this session on the wheel at its earliest deadline (or takes it off). */
  private rearm(): void {
    let due = 0;
    for (const d of [this.authDueAt, this.heartbeatDueAt, this.expiryDueAt, this.terminateDueAt]) if (d > 0 && (due === 0 || d < due)) due = d;
    if (due === 0) this.hooks.timers.cancel(this);
    else if (this.wheelSlot < 0 || this.wheelDue !== due) this.hooks.timers.schedule(this, due);
  }

  /** The wheel says the earliest deadline passed: act on every deadline that did, then re-arm. */
  onWheel(now: number): void {
    if (this.terminateDueAt > 0 && this.terminateDueAt <= now) {
      this.terminateDueAt = 0;
      this.ws.terminate();
    }
    if (this.authDueAt > 0 && this.authDueAt <= now) {
      this.authDueAt = 0;
      if (this.state === 'awaiting_auth' || this.state === 'authenticating') this.reject(AUTH_TIMEOUT);
    }
    if (this.heartbeatDueAt > 0 && this.heartbeatDueAt <= now) {
      this.heartbeatDueAt = now + this.timings.heartbeatInterval;
      this.heartbeat(now);
    }
    if (this.expiryDueAt > 0 && this.expiryDueAt <= now) {
      this.expiryDueAt = 0;
      if (this.state === 'active') this.reject(TOKEN_EXPIRED);
    }
    this.rearm();
  }

  /**
   * Close with `code`. `force`: the peer is not reading or not answering, so do not wait for its
   * close frame — destroy the socket after a short grace.
   */
  close(code: number, reason = '', force = false): void {
    if (this.state === 'closing') return;
    const wasActive = this.state === 'active';
    this.state = 'closing';
    this.closeCode = code;
    this.clearTimers();
    this.handBackQueue(wasActive);
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
    // Close reasons are fixed strings of ours (≤123 bytes), never client data.
    this.ws.close(code, reason.slice(0, 100));
    const grace = force ? 1000 : Math.min(this.timings.heartbeatTimeout, 5000);
    this.terminateDueAt = this.hooks.timers.now() + grace;
    this.rearm();
  }

  /** Immediate teardown (server shutdown after its grace period). */
  terminate(): void {
    this.ws.terminate();
  }

  /** Every deadline but the close grace (which `close` arms after this). */
  private clearTimers(): void {
    this.authDueAt = this.heartbeatDueAt = this.expiryDueAt = 0;
    this.rearm();
  }

  /**
   * Closes only for a ping that went unanswered for `heartbeatTimeout`: a late tick (a busy
   * event loop, the wheel's granularity) must never close a peer that was not pinged in time.
   */
  private heartbeat(now: number): void {
    if (this.state === 'closing') return;
    if (this.pingSentAt === 0) {
      this.pingSentAt = now;
      this.pingNonce = randomBytes(PING_NONCE_BYTES);
    } else if (now - this.pingSentAt > this.timings.heartbeatTimeout) {
      this.hooks.security('heartbeat_timeout', { sessionId: this.id, ip: this.ip, userId: this.identity?.userId, tenantId: this.identity?.tenantId, code: CloseCode.HEARTBEAT_TIMEOUT });
      this.close(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout', true);
      return;
    }
    // Every ping until an answer carries the same payload: an echo of any of them answers.
    this.ws.ping(this.pingNonce);
  }

  /**
   * @internal Only an echo of our ping answers it: any client may send a pong unasked, and one that
   * stopped reading (its replay stalled behind a full socket) must not stay open by doing so — nor
   * by guessing (the payload is random, not the clock).
   */
  onPong(data: Buffer): void {
    if (this.pingNonce !== undefined && data.equals(this.pingNonce)) {
      this.pingSentAt = 0;
      this.pingNonce = undefined;
    }
  }

  /**
   * @internal A client's ping is answered here, not by ws: ws would terminate the connection once
   * `maxPendingAutoPongs` pongs are owed — as soon as a burst of pings arrives in one read (their
   * pongs are written only when the socket is flushed). Past the bound, pings are ignored.
   */
  onPing(data: Buffer): void {
    if (this.state === 'closing' || this.owedPongs >= this.timings.maxPendingAutoPongs) return;
    this.owedPongs++;
    // One small closure per ping answered: pings are rare (a client's keep-alive), sessions are many.
    this.ws.pong(data, false, () => {
      this.owedPongs--;
    });
  }

  /** @internal */
  onError(err: Error & { code?: string }): void {
    // Before activation ws refuses an oversize message from its header (limitIncomingMessages):
    // the pre-auth cap, reported as when a complete message is refused by it.
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' && this.state !== 'active') {
      this.hooks.security(PRE_AUTH_TOO_BIG.event, { sessionId: this.id, ip: this.ip, code: CloseCode.MESSAGE_TOO_BIG });
      return;
    }
    this.hooks.security('protocol_error', { sessionId: this.id, ip: this.ip, userId: this.identity?.userId, tenantId: this.identity?.tenantId, detail: err.code ?? 'ws_error' });
  }

  /**
   * Frames still queued when the session closes (they arrived while it was busy: a token refresh,
   * requests at their bound), whoever closed it, go to the pipeline once: it acts on acks only —
   * the device received what they acknowledge — and drops the rest unanswered.
   */
  private handBackQueue(wasActive: boolean): void {
    const queue = this.queue;
    this.queue = undefined;
    if (!wasActive || queue === undefined) return;
    for (const f of queue) {
      try {
        void this.hooks.handleFrame(this, f.data, f.isBinary);
      } catch (err) {
        this.internalError(err);
      }
    }
  }

  /** @internal */
  onClose(code: number): void {
    const wasActive = this.state === 'active';
    this.state = 'closing';
    this.terminateDueAt = 0;
    this.clearTimers();
    this.handBackQueue(wasActive);
    this.stream?.close();
    this.ws.off('message', onSocketMessage);
    this.hooks.onClosed(this, this.closeCode || code);
  }
}
