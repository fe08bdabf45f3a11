/**
 * The client's use of its SyncStore: reading the stored state at start (retried with backoff,
 * checked before use) and saving the position as it moves — one asynchronous save at a time,
 * the newest position after it, so an older position is never the one written last.
 */
import { backoffDelay, type BackoffOptions } from './backoff.js';
import type { TimerSlot } from './clock.js';
import type { RampartClientOptions } from './client-types.js';
import type { Emitter } from './emitter.js';
import type { ClientEvents } from './events.js';
import { IllFormedSyncStateError, parseSyncState, STATE_BOUNDS, type SyncState, type SyncStore } from './sync-store.js';

const ILL_FORMED_STATE = `ill-formed state (${STATE_BOUNDS}): going on as a new device`;

/** How long a save of an asynchronous store may run before the newest position is saved beside it. */
export const SAVE_WAIT_MS = 10_000;

/** What persistence needs of the client. */
export interface PersistenceContext {
  store: SyncStore;
  events: Emitter<ClientEvents>;
  backoff: BackoffOptions;
  random: () => number;
  /** `storeLoadAttempts`: reads of the store at start. */
  options: Pick<RampartClientOptions, 'storeLoadAttempts'>;
  /** Runs the wait between two failed reads (the reconnect timer: stop() clears it). */
  retryTimer: TimerSlot;
  /** Runs while an asynchronous save does (SAVE_WAIT_MS). */
  saveTimer: TimerSlot;
  /** The state to save now; undefined while there is none (no position of its own, no owner or device id yet). */
  current(): SyncState | undefined;
  /** Still starting (not closed meanwhile). */
  connecting(): boolean;
  /** close() ran. */
  stopped(): boolean;
}

export class StatePersistence {
  private savedPos = -1;
  /** An asynchronous store's save is running; `saveAgain`: the position moved meanwhile. */
  private saving = false;
  private saveAgain = false;
  /** Saves are numbered in the order started; `settledSave`: the newest one settled so far. */
  private saveCount = 0;
  private settledSave = 0;

  constructor(private readonly ctx: PersistenceContext) {}

  /** A save waits behind a running one: close() leaves the save timer running for it. */
  get followUpPending(): boolean {
    return this.saveAgain;
  }

  /** The stored state's position is the saved one. */
  saved(pos: number): void {
    this.savedPos = pos;
  }

  /** The position is not known to be saved any more (another user's, dropped): the next persist writes it. */
  forget(): void {
    this.savedPos = -1;
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
  async load(): Promise<SyncState | undefined> {
    const given = this.ctx.options.storeLoadAttempts ?? 3;
    const attempts = Number.isFinite(given) ? Math.max(1, Math.floor(given)) : 3;
    for (let attempt = 0; ; attempt++) {
      try {
        const state: unknown = await this.ctx.store.load();
        if (state === undefined || state === null) return undefined;
        const parsed = parseSyncState(state);
        if (parsed === undefined) this.ctx.events.emit('error', { reason: 'store_failed', details: ILL_FORMED_STATE });
        return parsed;
      } catch (err) {
        // Ill-formed data is not retried: the store would hand over the same again.
        const illFormed = err instanceof IllFormedSyncStateError;
        this.ctx.events.emit('error', { reason: 'store_failed', details: illFormed ? ILL_FORMED_STATE : err instanceof Error ? err.message : String(err) });
        if (illFormed || attempt + 1 >= attempts || !this.ctx.connecting()) return undefined;
        const wait = backoffDelay(attempt, this.ctx.backoff, this.ctx.random);
        await new Promise<void>((resolve) => this.ctx.retryTimer.start(wait, resolve));
        if (!this.ctx.connecting()) return undefined; // closed meanwhile (stop() cleared the timer)
      }
    }
  }

  persist(): void {
    const state = this.ctx.current();
    if (state === undefined || state.pos === this.savedPos) return;
    // An asynchronous save still running: the newest position is saved after it, never beside it
    // (two saves at once may finish in either order, and an older position written last would replay).
    if (this.saving) {
      this.saveAgain = true;
      return;
    }
    const pos = state.pos;
    this.savedPos = pos;
    // A failed save leaves the position unsaved: the next persist (close() among them) tries again.
    const failed = (): void => {
      if (this.savedPos === pos) this.savedPos = -1;
      this.ctx.events.emit('error', { reason: 'store_failed' });
    };
    try {
      const done = this.ctx.store.save(state);
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
      this.ctx.saveTimer.stop();
      this.saving = false;
      if (this.saveAgain) {
        this.saveAgain = false;
        this.persist();
      }
    };
    if (!this.ctx.stopped()) this.ctx.saveTimer.start(SAVE_WAIT_MS, next);
    void done.finally(() => {
      const overtaken = number < this.settledSave;
      this.settledSave = Math.max(this.settledSave, number);
      next();
      if (!overtaken) return;
      this.savedPos = -1; // this older state may be the one written last
      this.persist();
    });
  }
}
