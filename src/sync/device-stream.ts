/**
 * One session's view of its user's timeline: a strictly increasing, contiguous stream of `pos`.
 *
 * Events reach a session two ways: read from storage (the replay after `auth`, and every gap) and
 * live over the bus. Live frames can arrive twice (a resent nudge), late (the replay already
 * covered them) or out of order (two nodes wrote events of the same user at once and their
 * publishes crossed). The stream sends a live frame only when it is the next position; anything
 * ahead of that is held and the gap is read from storage — safe because a committed position
 * implies every lower position of that user is committed (the user's counter row is locked by
 * each write). Frames at or below the last position sent are dropped.
 *
 * Held frames count against `maxHeldBytes` (the slow-consumer bound, in UTF-8 bytes as the
 * socket counts them): a client that stops reading during a long replay is closed instead of
 * growing server memory. Held frames always go out paced, like the replay, whatever released them.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { TimelinePage } from '../store/store.js';
import { eventBody, timelineFrame } from '../chat/timeline-frames.js';
import { sendPaced, type PacedOutlet } from './paced-send.js';

/** The user's timeline, as storage has it (`outlet`: the stream's own, so one reader can serve a node). */
export type TimelineReader = (after: number, limit: number, outlet: PacedOutlet) => Promise<TimelinePage>;

export interface DeviceStreamOptions {
  /** Entries per storage read, at most. */
  pageSize: number;
  /**
   * About how many bytes of frames one read may bring (unset: no bound). A page is held until it
   * is sent, and a client that stops reading stops it mid-page: the count alone (200 maximal
   * messages are 13 MB) would let a stalled replay pin far more than `maxHeldBytes`. The first
   * read takes `FIRST_PAGE` entries; later ones as many as fit, at the previous page's frame size.
   */
  pageBytes?: number;
  /** Replay pacing: wait while the socket holds more unsent bytes than this. */
  drainBelow: number;
  /** Bytes of live frames that may be held while a read runs. */
  maxHeldBytes: number;
  /**
   * Storage reads per gap before giving up for a while, and the first retry delay (doubling). After
   * a give-up the stream tries again by itself, the delay still doubling up to `maxRetryMs`, until
   * a read succeeds or the session closes: a quiet user's stream must not wait for the next event.
   */
  readAttempts: number;
  retryMs: number;
  maxRetryMs: number;
  /** Held frames passed `maxHeldBytes` (the outlet is this stream's; one options object serves a node). */
  onOverflow(outlet: PacedOutlet): void;
  /** A read failed (logged; it is retried). */
  onReadFailed(err: unknown): void;
  /** Every attempt of a read failed (once per outage, not per retry): the client is told `storage_unavailable`. */
  onGiveUp(outlet: PacedOutlet): void;
}

/** Consecutive reads that brought nothing new while a gap remained: then wait for the next event. */
const MAX_IDLE_READS = 3;
/** Entries in a replay's first read under `pageBytes`, before any frame size is known. */
const FIRST_PAGE = 16;

/** A live frame ahead of the stream. `reply`: this session's own `message_sent`, never dropped. */
interface Held {
  frame: string;
  bytes: number;
  reply: boolean;
}

export class DeviceStream {
  /** Last position sent; -1 until `start`. */
  #lastPos = -1;
  /** Mean frame size in bytes of the last page read (the next page's estimate under `pageBytes`); 0: none yet. */
  #frameBytes = 0;
  /** Live frames ahead of the stream; created on first use (an idle session never holds any). */
  #heldMap: Map<number, Held> | undefined;
  #heldBytes = 0;
  /** True while storage is being read (live frames are held meanwhile). Starts true: nothing goes out before `start`. */
  #reading = true;
  /** A catch-up was asked for while reading. */
  #again = false;
  /** A live frame was held while a read ran (reset at each read): an event a gap may wait for. */
  #offeredWhileReading = false;
  /** Give-ups since the last read that succeeded, and the timer of the next try (storage outages only). */
  #giveUps = 0;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly outlet: PacedOutlet,
    private readonly read: TimelineReader,
    private readonly options: DeviceStreamOptions,
  ) {}

  get lastPos(): number {
    return this.#lastPos;
  }

  get #held(): Map<number, Held> {
    return (this.#heldMap ??= new Map());
  }

  /**
   * Replay everything after `after`, then go live. Never rejects. `lastPos`: the user's last
   * position, read after this stream was subscribed; when `after` is already there, storage has
   * nothing to replay and the first read is skipped — anything committed since reaches the stream
   * live (held until `start`), and a gap among held frames is read as usual.
   */
  start(after: number, lastPos?: number): Promise<void> {
    this.#lastPos = after;
    if (lastPos !== undefined && after >= lastPos && !this.#again) return this.#releaseHeld();
    return this.#readLoop();
  }

  /**
   * A live timeline frame at `pos`. `isReply`: the frame answers this session's own request (its
   * `message_sent`); if a storage read already delivered that position, it still goes out — the
   * client is waiting for it — and the client recognises the position it has.
   */
  offer(pos: number, frame: string, isReply = false): void {
    if (!this.outlet.isOpen) return;
    if (pos <= this.#lastPos) {
      if (isReply) this.outlet.send(frame);
      return;
    }
    if (!this.#reading && pos === this.#lastPos + 1) {
      this.outlet.send(frame);
      this.#lastPos = pos;
      // Held frames continue the stream from here (an earlier read gave up, and this event filled
      // its gap); those beyond a gap make the release read storage again.
      if (this.#heldMap !== undefined && this.#heldMap.size > 0) void this.#releaseHeld();
      return;
    }
    const previous = this.#held.get(pos);
    if (previous !== undefined) {
      if (!isReply) return; // a repeat of a held position
      this.#unhold(pos, previous); // the reply takes the place of the copy
    }
    const bytes = Buffer.byteLength(frame);
    this.#held.set(pos, { frame, bytes, reply: isReply });
    this.#heldBytes += bytes;
    if (this.#heldBytes > this.options.maxHeldBytes) {
      this.options.onOverflow(this.outlet);
      return;
    }
    if (!this.#reading) void this.#readLoop();
    else this.#offeredWhileReading = true;
  }

  /** Something may have been missed (the bus was away): read storage after the last position. */
  catchUp(): void {
    if (!this.outlet.isOpen) return;
    // Before start (the resume point is still being read) or during a read: read again after it.
    // Before start this also rules out start's no-read fast path — the resume point may predate
    // what the bus lost.
    if (this.#lastPos < 0 || this.#reading) {
      this.#again = true;
      return;
    }
    void this.#readLoop();
  }

  /** Drop what is held (the session closed). */
  close(): void {
    this.#heldMap = undefined;
    this.#heldBytes = 0;
    this.#closed = true;
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    this.#retry = undefined;
  }

  async #readLoop(): Promise<void> {
    this.#reading = true;
    try {
      let idle = 0;
      while (this.outlet.isOpen) {
        this.#again = false;
        this.#offeredWhileReading = false;
        const before = this.#lastPos;
        if (!(await this.#readToEnd())) {
          // What arrived live and continues the stream still goes out (paced) while storage is away.
          await this.#drainHeld();
          if (this.#again && this.outlet.isOpen) {
            // A resync asked while the held frames drained: read now, not when the retry is due
            // (counted as a give-up, so the client is told once and the next retry still backs off).
            this.#giveUps++;
            continue;
          }
          this.#retryLater();
          return;
        }
        this.#giveUps = 0;
        await this.#drainHeld();
        this.#sendHeld();
        const gap = this.#heldMap !== undefined && this.#heldMap.size > 0;
        if (!this.#again && !gap) return;
        idle = this.#lastPos === before ? idle + 1 : 0;
        // A gap storage could not fill in a few reads waits for the next event — unless one came
        // (a catch-up, a live frame) while the last read ran: that is the event it waits for.
        if (gap && idle >= MAX_IDLE_READS && !this.#again && !this.#offeredWhileReading) return;
      }
    } finally {
      this.#reading = false;
      this.#sendHeld();
    }
  }

  /** Pages through storage until it has nothing after the last position. False when storage failed. */
  async #readToEnd(): Promise<boolean> {
    for (;;) {
      const step = await this.#readStep();
      if (step === 'failed') return false;
      if (step === 'end') return true;
      // The socket is full: wait without holding the page, then read on from the last position sent.
      if (step !== 'more') await step;
    }
  }

  /**
   * One storage read, sent paced. 'end': nothing after it (or the session closed); 'more': read
   * on; a promise: the socket is full in the middle of a page far larger than estimated — wait for
   * it, then read again from the last position sent, so that a client that stops reading does not
   * pin that page (see #oversized).
   */
  async #readStep(): Promise<'failed' | 'end' | 'more' | Promise<void>> {
    const limit = this.#pageLimit();
    const page = await this.#readPage(limit);
    if (page === undefined) return 'failed';
    if (this.#lastPos + 1 < page.firstPos) {
      // Retention deleted what this device had not seen: say so, then continue after the hole.
      this.#pruned(page.firstPos);
    }
    const { entries } = page;
    let bytes = 0;
    let frames = 0;
    let wait: Promise<void> | undefined;
    for (let i = 0; i < entries.length; i++) {
      if (wait !== undefined) {
        await wait; // the page is about the size it was read for: kept across the wait
        wait = undefined;
      }
      const entry = entries[i]!;
      if (!this.outlet.isOpen) return 'end';
      if (entry.pos <= this.#lastPos) continue;
      if (entry.pos !== this.#lastPos + 1) {
        // Positions commit contiguously (one writer per user at a time), so a hole in what
        // storage returns is retention at work: an event pruned by its id while a younger one
        // at a lower position stayed (ids come from the clock at arrival, positions at commit).
        this.#pruned(entry.pos);
      }
      const held = this.#heldMap?.get(entry.pos);
      if (held !== undefined) this.#unhold(entry.pos, held);
      this.#lastPos = entry.pos;
      const frame = held?.frame ?? timelineFrame(entry.pos, eventBody(entry.event));
      bytes += Buffer.byteLength(frame);
      frames++;
      wait = sendPaced(this.outlet, frame, this.options.drainBelow);
      if (wait !== undefined && i < entries.length - 1 && this.#oversized(bytes / frames, entries.length)) {
        this.#frameBytes = Math.ceil(bytes / frames);
        return wait;
      }
    }
    if (frames > 0) this.#frameBytes = Math.ceil(bytes / frames);
    // Rows the page left out after the last entry (a former member's): report them, go past them.
    const scanned = page.scanned;
    if (scanned !== undefined && scanned.toPos > this.#lastPos && this.outlet.isOpen) this.#pruned(scanned.toPos + 1);
    if ((scanned?.count ?? entries.length) < limit) {
      // The end of the timeline: positions up to the page's lastPos were all committed when it
      // was read, so any not returned were pruned (a younger event at a lower position outlived
      // them). Said, so the device can acknowledge past them and is not left below lastPos.
      if (page.lastPos > this.#lastPos && this.outlet.isOpen) this.#pruned(page.lastPos + 1);
      if (wait !== undefined) await wait;
      return 'end';
    }
    return wait ?? 'more';
  }

  /**
   * A page far larger than `pageBytes` at the frame size seen so far in it (its estimate came from
   * the previous page: small entries, then large ones). One the socket is full for is let go
   * while it waits, rather than pinned; one about its estimate is kept (a slow reader would
   * otherwise cost a storage read per frame).
   */
  #oversized(meanBytes: number, entries: number): boolean {
    const { pageBytes } = this.options;
    return pageBytes !== undefined && meanBytes * entries > 2 * pageBytes;
  }

  /** Entries for the next read: `pageSize`, or fewer under `pageBytes` (see there). */
  #pageLimit(): number {
    const { pageSize, pageBytes } = this.options;
    if (pageBytes === undefined) return pageSize;
    if (this.#frameBytes === 0) return Math.min(pageSize, FIRST_PAGE);
    return Math.max(1, Math.min(pageSize, Math.floor(pageBytes / this.#frameBytes)));
  }

  async #readPage(limit: number): Promise<TimelinePage | undefined> {
    const { readAttempts } = this.options;
    for (let attempt = 1, delay = this.options.retryMs; this.outlet.isOpen && !this.#closed; attempt++, delay *= 2) {
      try {
        return await this.read(this.#lastPos, limit, this.outlet);
      } catch (err) {
        // Closed while the read ran: nothing more to report or retry.
        if (this.#closed) return undefined;
        this.options.onReadFailed(err);
        if (attempt >= readAttempts) {
          if (this.#giveUps === 0) this.options.onGiveUp(this.outlet);
          return undefined;
        }
        await sleep(delay, undefined, { ref: false });
      }
    }
    return undefined;
  }

  /** Storage failed every attempt: read again later (the delay keeps doubling, up to maxRetryMs). */
  #retryLater(): void {
    const { retryMs, readAttempts, maxRetryMs } = this.options;
    const delay = Math.min(maxRetryMs, retryMs * 2 ** Math.min(readAttempts + this.#giveUps, 30));
    this.#giveUps++;
    if (this.#retry !== undefined || this.#closed || !this.outlet.isOpen) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.catchUp();
    }, delay);
    // Housekeeping: never keeps the process alive (the session's socket does).
    this.#retry.unref();
  }

  /**
   * Outside a read (start without a replay, or a live frame that filled a gap): the held frames
   * that continue the stream, paced, in reading mode so that arrivals queue behind them; then a
   * read if a gap remains.
   */
  async #releaseHeld(): Promise<void> {
    this.#reading = true;
    try {
      await this.#drainHeld();
    } finally {
      this.#reading = false;
      this.#sendHeld();
    }
    // A gap remains, or a catch-up was asked for during the drain (it found the stream reading).
    const gap = this.#heldMap !== undefined && this.#heldMap.size > 0;
    if ((gap || this.#again) && this.outlet.isOpen) await this.#readLoop();
  }

  /**
   * The held live frames that continue the stream, paced like the replay (they can be up to
   * `maxHeldBytes`; sent at once on top of a replay's unsent bytes they could push a client that
   * reads over the slow-consumer bound). The caller keeps the stream in reading mode, so frames
   * that arrive meanwhile are held behind them and go out in turn.
   */
  async #drainHeld(): Promise<void> {
    const { drainBelow } = this.options;
    while (this.outlet.isOpen) {
      const next = this.#takeNextHeld();
      if (next === undefined) return;
      const wait = sendPaced(this.outlet, next, drainBelow);
      if (wait !== undefined) await wait;
    }
  }

  /**
   * After a paced drain (nothing arrived since, so at most what the drain's last check left):
   * send held frames that continue the stream; drop the ones it already passed.
   */
  #sendHeld(): void {
    if (this.#heldMap === undefined || this.#heldMap.size === 0) return;
    for (let next = this.#takeNextHeld(); next !== undefined; next = this.#takeNextHeld()) this.outlet.send(next);
    this.#dropPassed();
  }

  /** Held frames at or below the last position: dropped, but a reply still goes out (its client waits for it). */
  #dropPassed(): void {
    if (this.#heldMap === undefined) return;
    for (const [pos, held] of this.#heldMap) {
      if (pos > this.#lastPos) continue;
      this.#unhold(pos, held);
      if (held.reply) this.outlet.send(held.frame);
    }
  }

  /** The held frame at the next position, out of the hold, the stream moved to it; undefined when there is none. */
  #takeNextHeld(): string | undefined {
    const next = this.#heldMap?.get(this.#lastPos + 1);
    if (next === undefined) return undefined;
    this.#unhold(this.#lastPos + 1, next);
    this.#lastPos++;
    return next.frame;
  }

  /** Retention deleted what follows the last position, up to `firstPos`: say so and continue there. */
  #pruned(firstPos: number): void {
    this.outlet.send(`{"type":"timeline_pruned","after":${this.#lastPos},"firstPos":${firstPos}}`);
    this.#skipTo(firstPos - 1);
  }

  #skipTo(pos: number): void {
    this.#lastPos = pos;
    this.#dropPassed();
  }

  #unhold(pos: number, held: Held): void {
    this.#held.delete(pos);
    this.#heldBytes -= held.bytes;
  }
}
