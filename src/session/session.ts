/**
 * One object per socket, with an explicit state machine:
 *
 *   awaiting_auth ──auth frame──► authenticating ──ok──► active ──► closing
 *         └──────────── timeout / bad frame / bad token ────────────┘
 *
 * The session owns every per-socket timer (auth, heartbeat, token expiry, close grace) and the
 * outbound path (corking, back-pressure). It does not interpret frames: the pipeline does.
 */
import type { Duplex } from 'node:stream';
import type { WebSocket, RawData } from 'ws';
import type { Identity } from '../auth/token-verifier.js';
import type { ServerFrame } from '../protocol/server-frames.js';
import { CloseCode } from '../protocol/close-codes.js';
import type { FlushScheduler, Flushable } from './flush-scheduler.js';
import { closeWith, type Rejection } from '../pipeline/rejection.js';
import type { SecurityEventSink } from '../observability/security-events.js';

export type SessionState = 'awaiting_auth' | 'authenticating' | 'active' | 'closing';

export interface SessionTimings {
  authTimeout: number;
  heartbeatInterval: number;
  heartbeatTimeout: number;
  maxBufferedBytes: number;
  maxQueuedFrames: number;
  maxViolations: number;
  violationWindowMs: number;
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
}

let nextSessionId = 1;
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Session implements Flushable {
  readonly id: string;
  state: SessionState = 'awaiting_auth';
  identity: Identity | undefined;
  /** `tenant:userId`: the key for the bus, registry and per-user limits. */
  userKey = '';
  readonly openedAt = Date.now();
  /** The client's device name from its `auth` frame, if it gave one (listed in `sessions`). */
  deviceId: string | undefined;
  /** True while this session holds a slot of `maxConnectionsPerUser` in the registry. */
  holdsUserSlot = false;
  /** Live frames held while the offline inbox is replayed (see `holdLive`). */
  private held: { frames: string[]; next: number; bytes: number } | undefined;

  private authTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private terminateTimer: NodeJS.Timeout | undefined;
  private lastPongAt = Date.now();
  private busy = false;
  private queue: { data: Buffer; isBinary: boolean }[] = [];
  private corked = false;
  private violations = 0;
  private violationWindowStart = 0;
  private closeCode = 0;

  constructor(
    readonly ws: WebSocket,
    private readonly socket: Duplex,
    readonly ip: string,
    private readonly timings: SessionTimings,
    private readonly hooks: SessionHooks,
  ) {
    this.id = `s${nextSessionId++}`;
    ws.on('message', this.onMessage);
    ws.on('pong', this.onPong);
    ws.on('close', this.onClose);
    // Without an error listener a malformed frame would throw from the emitter and crash the
    // process; ws closes the socket itself (1002/1007/1009) after emitting it.
    ws.on('error', this.onError);
    this.authTimer = setTimeout(this.onAuthTimeout, timings.authTimeout);
  }

  get isOpen(): boolean {
    return this.state !== 'closing';
  }

  // ── inbound ────────────────────────────────────────────────────────────────────────────────

  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    if (this.state === 'closing') return;
    // With default binaryType ws hands us one Buffer per message.
    const buf = data as Buffer;
    if (this.busy) {
      if (this.queue.length >= this.timings.maxQueuedFrames) {
        this.reject(this.queueOverflow);
        return;
      }
      this.queue.push({ data: buf, isBinary });
      return;
    }
    this.dispatch(buf, isBinary);
  };

  private readonly queueOverflow = closeWith('queue_overflow', CloseCode.RATE_LIMIT_ABUSE);

  private dispatch(data: Buffer, isBinary: boolean): void {
    let result: void | Promise<void>;
    try {
      result = this.hooks.handleFrame(this, data, isBinary);
    } catch (err) {
      this.internalError(err);
      return;
    }
    if (result !== undefined) {
      this.busy = true;
      result.then(this.drain, (err: unknown) => {
        this.internalError(err);
        this.drain();
      });
    }
  }

  private readonly drain = (): void => {
    this.busy = false;
    while (!this.busy && this.queue.length > 0 && this.state !== 'closing') {
      const next = this.queue.shift() as { data: Buffer; isBinary: boolean };
      this.dispatch(next.data, next.isBinary);
    }
  };

  private internalError(err: unknown): void {
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

  // ── live frames held during the inbox replay ───────────────────────────────────────────────

  /** From now on, `deliverLive` holds frames instead of sending them (inbox first). */
  holdLive(): void {
    this.held = { frames: [], next: 0, bytes: 0 };
  }

  /**
   * A live frame from the bus: sent, or held while the replay runs. Held bytes count against
   * `maxBufferedBytes` like unsent socket bytes: a client that stops reading during a long
   * replay is closed as a slow consumer instead of growing our memory.
   */
  deliverLive(frame: string): void {
    const held = this.held;
    if (held === undefined) return this.send(frame);
    held.frames.push(frame);
    held.bytes += frame.length;
    if (held.bytes > this.timings.maxBufferedBytes && this.state !== 'closing') this.closeSlowConsumer();
  }

  /** The next held frame in arrival order, or undefined when none is left. */
  takeHeldLive(): string | undefined {
    const held = this.held;
    if (held === undefined || held.next >= held.frames.length) return undefined;
    const frame = held.frames[held.next] as string;
    held.frames[held.next++] = '';
    held.bytes -= frame.length;
    return frame;
  }

  /** Stop holding: later live frames are sent at once. */
  releaseLive(): void {
    this.held = undefined;
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
    this.hooks.security('slow_consumer', { sessionId: this.id, ip: this.ip, userId: this.identity?.userId, code: CloseCode.SLOW_CONSUMER });
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

  reject(rejection: Rejection): void {
    const { action } = rejection;
    if (action.kind === 'drop') return;
    this.hooks.security(rejection.event, {
      ip: this.ip,
      sessionId: this.id,
      ...(this.identity ? { userId: this.identity.userId } : {}),
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

  /** Move to `active`: stop the auth timer, start heartbeat and the token-expiry timer. */
  activate(identity: Identity, userKey: string): void {
    this.identity = identity;
    this.userKey = userKey;
    this.state = 'active';
    clearTimeout(this.authTimer);
    this.authTimer = undefined;
    this.lastPongAt = Date.now();
    this.heartbeatTimer = setInterval(this.onHeartbeat, this.timings.heartbeatInterval);
    this.armExpiry(identity.expiresAt);
  }

  /**
   * A refreshed token of the same user and tenant (the caller checked): its claims replace the
   * old ones — a changed role applies from now on — and its `exp` moves the expiry.
   */
  refresh(identity: Identity): void {
    this.identity = identity;
    this.armExpiry(identity.expiresAt);
  }

  private armExpiry(expiresAt: number): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(this.onTokenExpired, Math.min(Math.max(expiresAt - Date.now(), 0), MAX_TIMER_MS));
  }

  /**
   * Close with `code`. `force`: the peer is not reading or not answering, so do not wait for its
   * close frame — destroy the socket after a short grace.
   */
  close(code: number, reason = '', force = false): void {
    if (this.state === 'closing') return;
    this.state = 'closing';
    this.closeCode = code;
    this.clearTimers();
    this.queue.length = 0;
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
    // Close reasons are fixed strings of ours (≤123 bytes), never client data.
    this.ws.close(code, reason.slice(0, 100));
    const grace = force ? 1000 : Math.min(this.timings.heartbeatTimeout, 5000);
    this.terminateTimer = setTimeout(() => this.ws.terminate(), grace);
    this.terminateTimer.unref();
  }

  /** Immediate teardown (server shutdown after its grace period). */
  terminate(): void {
    this.ws.terminate();
  }

  private clearTimers(): void {
    clearTimeout(this.authTimer);
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.expiryTimer);
    this.authTimer = this.heartbeatTimer = this.expiryTimer = undefined;
  }

  private readonly onAuthTimeout = (): void => {
    this.authTimer = undefined;
    if (this.state === 'awaiting_auth' || this.state === 'authenticating') {
      this.reject(closeWith('auth_timeout', CloseCode.AUTH_TIMEOUT));
    }
  };

  private readonly onHeartbeat = (): void => {
    if (Date.now() - this.lastPongAt > this.timings.heartbeatTimeout) {
      this.hooks.security('heartbeat_timeout', { sessionId: this.id, ip: this.ip, userId: this.identity?.userId, code: CloseCode.HEARTBEAT_TIMEOUT });
      this.close(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout', true);
      return;
    }
    this.ws.ping();
  };

  private readonly onPong = (): void => {
    this.lastPongAt = Date.now();
  };

  private readonly onTokenExpired = (): void => {
    this.expiryTimer = undefined;
    if (this.state !== 'active') return;
    this.reject(closeWith('token_expired', CloseCode.TOKEN_EXPIRED, { type: 'auth_failure', reason: 'token_expired' }));
  };

  private readonly onError = (err: Error & { code?: string }): void => {
    this.hooks.security('protocol_error', { sessionId: this.id, ip: this.ip, userId: this.identity?.userId, detail: err.code ?? 'ws_error' });
  };

  private readonly onClose = (code: number): void => {
    this.state = 'closing';
    this.clearTimers();
    clearTimeout(this.terminateTimer);
    this.queue.length = 0;
    this.held = undefined;
    this.ws.off('message', this.onMessage);
    this.hooks.onClosed(this, this.closeCode || code);
  };
}
