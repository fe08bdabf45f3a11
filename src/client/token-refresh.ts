/**
 * Token refresh on the open socket: the current token, when a fresh one is asked of the provider
 * before it expires, and its `auth` frame on the same socket (held during the server's wait,
 * made again when it may have been dropped).
 */
import type { Clock, TimerSlot } from './clock.js';
import { RefreshSchedule, type RefreshOptions, type TokenSource } from './token-source.js';

/** What the refresh needs of the client. */
export interface RefreshContext {
  clock: Clock;
  tokens: TokenSource;
  timer: TimerSlot;
  options: RefreshOptions;
  /** The current socket (a refresh started on one goes out only on it). */
  socket(): unknown;
  /** The client is `open` (authenticated). */
  open(): boolean;
  /** What is left of the server's wait for dropped frames (ms; 0: none). */
  framesWait(): number;
  /** Sends a frame on the open socket; false when there is none. */
  transmit(frame: Record<string, unknown>): boolean;
}

export class TokenRefresher {
  private readonly refreshSchedule: RefreshSchedule;
  /** The token of the connection being made or open (refreshed on it). */
  private current = '';
  /** A token refresh (`auth`) on the open socket not yet answered by `auth_success`. */
  private refreshUnanswered = false;

  constructor(private readonly ctx: RefreshContext) {
    this.refreshSchedule = new RefreshSchedule(ctx.options);
  }

  get token(): string {
    return this.current;
  }

  /** A connection is made with `token` (just got from the provider): no refresh on it is unanswered. */
  connecting(token: string): void {
    this.current = token;
    this.refreshSchedule.got(token, this.ctx.clock.now());
    this.refreshUnanswered = false;
  }

  /** An `auth_success` on the open socket: the answer to a token refresh. */
  answered(): void {
    this.refreshUnanswered = false;
  }

  /** The server dropped a frame unnamed: an unanswered refresh is made again after `wait` (else the session would end at the old token's `exp`). */
  dropped(wait: number): void {
    if (this.refreshUnanswered) this.ctx.timer.start(wait, () => void this.refreshToken());
  }

  schedule(): void {
    this.ctx.timer.stop();
    if (!this.ctx.tokens.renewable) return;
    const delay = this.refreshSchedule.delay(this.current, this.ctx.clock.now());
    if (delay === undefined) return;
    this.ctx.timer.start(delay, () => void this.refreshToken());
  }

  private async refreshToken(): Promise<void> {
    const ws = this.ctx.socket();
    let token: string;
    try {
      token = await this.ctx.tokens.get();
    } catch {
      if (this.ctx.socket() === ws && this.ctx.open()) this.ctx.timer.start(this.ctx.options.minDelayMs * 5, () => void this.refreshToken());
      return;
    }
    if (this.ctx.socket() !== ws || !this.ctx.open()) return;
    this.refreshSchedule.got(token, this.ctx.clock.now(), this.current);
    this.current = token;
    this.sendRefresh();
  }

  /**
   * Sends the current token as `auth` on the open socket — during the server's wait, right after
   * it instead: sent into the wait it would only be refused (a strike) and have to be made again.
   * A close stops the refresh timer, so a held token never reaches another socket.
   */
  private sendRefresh(): void {
    const wait = this.ctx.framesWait();
    if (wait > 0) return this.ctx.timer.start(wait, () => this.sendRefresh());
    if (this.ctx.transmit({ type: 'auth', token: this.current })) this.refreshUnanswered = true;
    this.schedule();
  }
}
