/**
 * DeviceStream's test harness (src/sync/device-stream.ts): a fake outlet and an in-memory timeline
 * whose reader answers in microtasks (or when a test releases it), so every wait is on an event,
 * never on time. Shared by the DeviceStream unit tests.
 */
import { DeviceStream, type DeviceStreamOptions } from '../../src/sync/device-stream.js';
import type { PacedOutlet } from '../../src/sync/paced-send.js';
import type { StoredMessage, TimelineEntry, TimelinePage } from '../../src/store/store.js';
import { eventBody, framePos, timelineFrame } from '../../src/chat/timeline-frames.js';

export const ALICE = '6f1c0c52-4a4e-4a59-9b7e-2f4f8a3f6a10';
export const BOB = '0b8a3b1e-6d7c-4f2a-8e1b-3c4d5e6f7a8b';
export const CONV = '11111111-2222-4333-8444-555555555555';

export function message(n: number): StoredMessage {
  return {
    kind: 'message',
    id: `00000000-0000-7000-8000-${String(n).padStart(12, '0')}`,
    tenantId: 'default',
    conversationId: CONV,
    conversationKind: 'direct',
    seq: n,
    senderId: BOB,
    recipientId: ALICE,
    content: `message ${n}`,
    mentions: [],
    hashtags: [],
    links: [],
    timestamp: 1_700_000_000_000 + n,
  };
}

/** The frame storage yields for `pos` (and the bus carries, unless a test says otherwise). */
export const frameAt = (pos: number): string => timelineFrame(pos, eventBody(message(pos)));
/** The sending session's own `message_sent`, offered in place of its copy. */
export const sentAt = (pos: number): string => JSON.stringify({ type: 'message_sent', id: message(pos).id, timestamp: 1, conversationId: CONV, seq: pos, pos });

/** Position of any frame the stream sent (timeline frames, message_sent, timeline_pruned → -1). */
export function posOf(frame: string): number {
  const p = framePos(frame);
  if (p !== undefined) return p;
  const parsed = JSON.parse(frame) as { type: string; pos?: number };
  return parsed.type === 'message_sent' ? (parsed.pos as number) : -1;
}

export class FakeOutlet implements PacedOutlet {
  readonly sent: string[] = [];
  isOpen = true;
  buffered = 0;
  drainWaits: { bytes: number; resolve: () => void }[] = [];
  private waiters: { ok: () => boolean; resolve: () => void }[] = [];

  send(frame: string): void {
    this.sent.push(frame);
    this.waiters = this.waiters.filter((w) => (w.ok() ? (w.resolve(), false) : true));
  }
  bufferedBytes(): number {
    return this.buffered;
  }
  waitForDrain(bytes: number): Promise<void> {
    return new Promise((resolve) => this.drainWaits.push({ bytes, resolve }));
  }
  /** Resolves once `n` frames were sent. */
  count(n: number): Promise<void> {
    return this.until(() => this.sent.length >= n);
  }
  until(ok: () => boolean): Promise<void> {
    if (ok()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ ok, resolve }));
  }
  positions(): number[] {
    return this.sent.map(posOf);
  }
}

/** A user's timeline in memory; reads can be made to fail or to wait for the test. */
export class FakeTimeline {
  entries: TimelineEntry[] = [];
  /** Oldest retained position (retention). */
  firstPos = 1;
  reads: { after: number; limit: number }[] = [];
  failNext = 0;
  /** Positions the store reads but leaves out of a page (entries a former member may not read). */
  hidden = new Set<number>();
  private gate: { opened: Promise<void>; open: () => void } | undefined;
  private readStarted: (() => void)[] = [];

  append(...positions: number[]): void {
    for (const pos of positions) this.entries.push({ pos, event: message(pos) });
  }

  /** Reads started from now on wait until `release()`. */
  hold(): void {
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    this.gate = { opened, open };
  }
  release(): void {
    const gate = this.gate;
    this.gate = undefined;
    gate?.open();
  }
  /** Resolves when the next read starts (the snapshot it answers with is taken at that moment). */
  nextRead(): Promise<void> {
    return new Promise((resolve) => this.readStarted.push(resolve));
  }

  readonly read = async (after: number, limit: number): Promise<TimelinePage> => {
    this.reads.push({ after, limit });
    const started = this.readStarted.splice(0);
    const lastPos = this.entries.at(-1)?.pos ?? 0;
    const rows = this.entries.filter((e) => e.pos > after && e.pos >= this.firstPos).slice(0, limit);
    const page: TimelinePage = {
      entries: rows.filter((e) => !this.hidden.has(e.pos)),
      firstPos: this.entries.some((e) => e.pos >= this.firstPos) ? this.firstPos : lastPos + 1,
      lastPos,
    };
    if (page.entries.length < rows.length) page.scanned = { count: rows.length, toPos: rows.at(-1)!.pos };
    const fail = this.failNext > 0;
    if (fail) this.failNext--;
    for (const s of started) s();
    if (this.gate) await this.gate.opened;
    if (fail) throw new Error('storage unavailable');
    return page;
  };
}

export interface Calls {
  overflow: number;
  readFailed: number;
  giveUp: number;
}

export function stream(outlet: FakeOutlet, timeline: FakeTimeline, opts: Partial<DeviceStreamOptions> = {}): { s: DeviceStream; calls: Calls; gaveUp: Promise<void> } {
  const calls: Calls = { overflow: 0, readFailed: 0, giveUp: 0 };
  let gaveUpResolve!: () => void;
  const gaveUp = new Promise<void>((r) => (gaveUpResolve = r));
  const s = new DeviceStream(outlet, timeline.read, {
    pageSize: 100,
    drainBelow: 0,
    maxHeldBytes: 1_000_000,
    readAttempts: 3,
    retryMs: 1,
    // Long: a test that wants the stream to retry by itself sets it.
    maxRetryMs: 3_600_000,
    onOverflow: () => calls.overflow++,
    onReadFailed: () => calls.readFailed++,
    onGiveUp: () => {
      calls.giveUp++;
      gaveUpResolve();
    },
    ...opts,
  });
  return { s, calls, gaveUp };
}

/** Lets every pending microtask and immediate run (the fake reader never uses timers). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/**
 * The stream's retry delay is an unref'd timer (it must not keep a server process alive); while a
 * test waits on it, a ref'd interval keeps the event loop running. Not a wait: cleared at the end.
 */
export async function keepingAlive<T>(run: () => Promise<T>): Promise<T> {
  const alive = setInterval(() => {}, 1000);
  try {
    return await run();
  } finally {
    clearInterval(alive);
  }
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

