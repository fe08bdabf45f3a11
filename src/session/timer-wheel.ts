/**
 * One hashed timer wheel per node for the per-session deadlines (auth timeout, heartbeat, token
 * expiry, close grace). A `setTimeout`/`setInterval` per session costs a timer object, a closure
 * and a heap operation each time it is armed, for every one of tens of thousands of sockets; the
 * wheel costs one interval for the node and two numbers per session.
 *
 * Each session schedules itself once, at its earliest deadline (the session stays the owner of
 * what its deadlines mean). Slots are `tickMs` wide; a deadline fires on the first tick at or
 * after it, so at most `tickMs` late, never early. Entries further out than one revolution stay
 * in their slot and are skipped until their turn comes round.
 */

/** What the wheel schedules: the session itself (intrusive fields, so scheduling allocates nothing). */
export interface WheelEntry {
  /** Due time (ms, the wheel's clock); maintained by the wheel. */
  wheelDue: number;
  /** Slot index, or -1 when not scheduled; maintained by the wheel. */
  wheelSlot: number;
  /** Called once when the due time has passed (the entry is no longer scheduled). */
  onWheel(now: number): void;
}

export interface TimerWheelOptions {
  /** Slot width, ms (default 50). */
  tickMs?: number;
  /** Slots per revolution (default 4096: 204.8 s at 50 ms). */
  slots?: number;
  /**
   * The clock, ms. Default: whole ms of `performance.now()` — monotonic, and a small integer (a
   * V8 Smi for the first 12 days of the process), so a session's deadlines are not boxed numbers.
   */
  now?: () => number;
  /** Drive the wheel with an unref'd interval while anything is scheduled (default true; tests call `advance`). */
  autoTick?: boolean;
}

const monotonicMs = (): number => Math.floor(performance.now());

export class TimerWheel {
  readonly tickMs: number;
  readonly #slots: Set<WheelEntry>[];
  readonly #now: () => number;
  readonly #autoTick: boolean;
  /** Last tick processed (absolute tick number). */
  #lastTick: number;
  #size = 0;
  #interval: NodeJS.Timeout | undefined;
  /** Reused between ticks: the entries found due in one slot. */
  #due: WheelEntry[] = [];
  #advancing = false;

  constructor(options: TimerWheelOptions = {}) {
    this.tickMs = options.tickMs ?? 50;
    const n = options.slots ?? 4096;
    this.#slots = Array.from({ length: n }, () => new Set<WheelEntry>());
    this.#now = options.now ?? monotonicMs;
    this.#autoTick = options.autoTick ?? true;
    this.#lastTick = Math.floor(this.#now() / this.tickMs);
  }

  /** Entries scheduled. */
  get size(): number {
    return this.#size;
  }

  now(): number {
    return this.#now();
  }

  /** (Re)schedules `entry` at `dueAt`, replacing its previous deadline. */
  schedule(entry: WheelEntry, dueAt: number): void {
    if (entry.wheelSlot >= 0) this.#remove(entry);
    // Idle wheel (no interval ran): catch the processed tick up with the clock first.
    if (this.#size === 0 && this.#autoTick) this.#lastTick = Math.max(this.#lastTick, Math.floor(this.#now() / this.tickMs) - 1);
    // A deadline in a tick already processed goes in the next one, not a revolution later.
    const tick = Math.max(Math.ceil(dueAt / this.tickMs), this.#lastTick + 1);
    const slot = tick % this.#slots.length;
    entry.wheelDue = dueAt;
    entry.wheelSlot = slot;
    this.#slots[slot]!.add(entry);
    if (++this.#size === 1 && this.#autoTick && this.#interval === undefined) {
      this.#interval = setInterval(this.#onInterval, this.tickMs);
      this.#interval.unref();
    }
  }

  cancel(entry: WheelEntry): void {
    if (entry.wheelSlot >= 0) this.#remove(entry);
  }

  /** Processes every tick up to `now`, firing what is due. Returns how many fired. */
  advance(now: number = this.#now()): number {
    if (this.#advancing) return 0;
    this.#advancing = true;
    let fired = 0;
    try {
      const target = Math.floor(now / this.tickMs);
      const n = this.#slots.length;
      // More than a revolution behind (a long stall): one pass over every slot is enough.
      const from = target - this.#lastTick > n ? target - n + 1 : this.#lastTick + 1;
      for (let tick = from; tick <= target; tick++) {
        const slot = this.#slots[tick % n]!;
        if (slot.size === 0) continue;
        const due = this.#due;
        for (const entry of slot) if (entry.wheelDue <= now) due.push(entry);
        for (let i = 0; i < due.length; i++) {
          const entry = due[i]!;
          // An earlier callback may have rescheduled or cancelled it.
          if (entry.wheelSlot !== tick % n || entry.wheelDue > now) continue;
          this.#remove(entry);
          fired++;
          entry.onWheel(now);
        }
        due.length = 0;
      }
      this.#lastTick = Math.max(this.#lastTick, target);
    } finally {
      this.#advancing = false;
    }
    return fired;
  }

  /** Stops the interval and forgets every entry. */
  close(): void {
    if (this.#interval !== undefined) clearInterval(this.#interval);
    this.#interval = undefined;
    for (const slot of this.#slots) {
      for (const entry of slot) entry.wheelSlot = -1;
      slot.clear();
    }
    this.#size = 0;
  }

  #remove(entry: WheelEntry): void {
    this.#slots[entry.wheelSlot]!.delete(entry);
    entry.wheelSlot = -1;
    if (--this.#size === 0 && this.#interval !== undefined) {
      clearInterval(this.#interval);
      this.#interval = undefined;
    }
  }

  readonly #onInterval = (): void => {
    this.advance();
  };
}
