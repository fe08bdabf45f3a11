/**
 * A fake clock and fake WebSockets for the client SDK's unit tests: time moves only when the test
 * says so, and every timer and socket the client creates can be inspected.
 */
import type { Clock } from '../../src/client/clock.js';
import { RampartClient, type RampartClientOptions } from '../../src/client/rampart-client.js';
import type { WebSocketLike } from '../../src/client/socket.js';

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private t = 1_700_000_000_000;
  private seq = 0;
  private timers: FakeTimer[] = [];

  private jump = 0;

  now(): number {
    const v = this.t;
    this.t += this.jump;
    this.jump = 0;
    return v;
  }
  /** The next read returns the time, then the clock moves `ms` (Date.now() crossing a millisecond between two reads). */
  jumpAfterNextRead(ms: number): void {
    this.jump = ms;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { id: ++this.seq, at: this.t + ms, fn };
    this.timers.push(timer);
    return timer.id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }
  /** Timers not yet fired, as delays from now. */
  get pending(): number[] {
    return this.timers.map((t) => t.at - this.t).sort((a, b) => a - b);
  }
  /** Moves time forward by `ms`, firing due timers in order (and letting promises settle between). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const next = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!next) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

/** Lets pending promise callbacks run (the client awaits its token provider and store). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

export class FakeSocket implements WebSocketLike {
  readyState = 0;
  readonly sent: Record<string, unknown>[] = [];
  closedWith: { code?: number; reason?: string } | undefined;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;

  constructor(readonly url: string) {}

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(code?: number, reason?: string): void {
    this.closedWith = { ...(code !== undefined ? { code } : {}), ...(reason !== undefined ? { reason } : {}) };
    this.readyState = 2;
  }
  // ── the "server" side ──
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop(code = 1006, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  refuse(status: number): void {
    this.onerror?.({ message: `Unexpected server response: ${status}` });
    this.drop(1006);
  }
  framesOf(type: string): Record<string, unknown>[] {
    return this.sent.filter((f) => f.type === type);
  }
  /** True when the client left no handler that could still run. */
  get detached(): boolean {
    return this.onopen === null && this.onmessage === null && this.onclose === null;
  }
}

/** A JWT-shaped token with this `exp` (seconds); the client reads `exp`, the server would verify. */
export function fakeJwt(expMs: number, sub = 'u'): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub, exp: Math.floor(expMs / 1000) })}.sig`;
}

/** A deterministic PRNG (mulberry32) for jitter statistics. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A client on fake sockets and this module's fake clock: no client pings, no jitter. `token(clock)`
 * answers each getToken() (default: a one-hour token of `userId`); `accept` opens the newest
 * socket and answers its `auth` with `auth_success`.
 */
export function fakeClient(o: { userId?: string; token?: (clock: FakeClock) => string; options?: Partial<RampartClientOptions> } = {}) {
  const clock = new FakeClock();
  const sockets: FakeSocket[] = [];
  const userId = o.userId ?? '11111111-1111-4111-8111-111111111111';
  const token = o.token ?? ((c: FakeClock) => fakeJwt(c.now() + 3_600_000, userId));
  const client = new RampartClient({
    url: 'ws://rampart.test/ws',
    token: () => token(clock),
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    clock,
    random: () => 0.5,
    pingIntervalMs: 0,
    ...o.options,
  });
  const last = (): FakeSocket => sockets[sockets.length - 1]!;
  const accept = async (resumeAfter = 0, lastPos = resumeAfter): Promise<void> => {
    await settle();
    last().open();
    last().receive({ type: 'auth_success', userId, resumeAfter, lastPos });
    await settle();
  };
  return { clock, client, sockets, last, accept };
}

/** A frame a socket sent, with the clock time it went out. */
export interface TimedFrame {
  f: Record<string, unknown>;
  at: number;
}

/** Records every frame (or every one `keep` accepts) a socket sends from now on, with the clock time it went out. */
export function timedFrames(socket: FakeSocket, clock: FakeClock, keep: (f: Record<string, unknown>) => boolean = () => true): TimedFrame[] {
  const out: TimedFrame[] = [];
  const send = socket.send.bind(socket);
  socket.send = (data: string) => {
    send(data);
    const f = JSON.parse(data) as Record<string, unknown>;
    if (keep(f)) out.push({ f, at: clock.now() });
  };
  return out;
}

/** The most frames in any interval of `windowMs` (times sorted). */
export function busiest(times: number[], windowMs: number): number {
  let most = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= windowMs) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}
