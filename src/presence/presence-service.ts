/**
 * Presence: a user is online while they hold at least one authenticated session on any node (the
 * connection registry's cluster-wide count, which forgets a dead node's sessions once its liveness
 * key expires) and have not hidden themselves (`set_presence`, default `presence.visible`).
 *
 * Every session open/close of a user schedules one check after `chat.presenceDebounceMs` (a newer
 * change restarts the wait), so a reconnect within it publishes nothing. The check compares with
 * the published state (one compare-and-set for the cluster): only a real flip is published, once,
 * as `presence_changed` to each user sharing a current conversation — one bus frame per user,
 * whatever the number of shared conversations, so each of their sessions gets one frame.
 */
import type { Bus } from '../bus/bus.js';
import type { Store } from '../store/store.js';
import type { ConnectionRegistry } from '../limits/limiter.js';
import type { Identity } from '../auth/token-verifier.js';
import type { PresenceFrame, SetPresenceFrame } from '../protocol/client-frames.js';
import type { Outbox } from '../chat/chat-service.js';
import { peerKey } from '../chat/authorization.js';
import { withRequestId } from '../chat/replies.js';
import type { PresenceState } from './presence-state.js';

export interface PresenceServiceOptions {
  store: Store;
  bus: Bus;
  registry: ConnectionRegistry;
  state: PresenceState;
  debounceMs: number;
  /** `presence.visible`: shown online unless the user said otherwise. */
  defaultVisible: boolean;
  /** How often dead nodes are looked for (cluster). 0: never. */
  sweepMs: number;
  onError(err: unknown): void;
}

const UUID_LENGTH = 36;

/** userKey = `${tenantId}:${userId}` (see peerKey); the uuid is the last 36 characters. */
function splitKey(userKey: string): { tenantId: string; userId: string } {
  return { tenantId: userKey.slice(0, -UUID_LENGTH - 1), userId: userKey.slice(-UUID_LENGTH) };
}

/** Reads (and restatements) a flip's publisher makes in one go before looking again on a later turn (see #restate). */
const RESTATE_ROUNDS = 3;

/** First wait before a failed check runs again (Redis or storage away); it doubles up to the max. */
const RETRY_MS = 500;
const RETRY_MAX_MS = 30_000;

export class PresenceService {
  readonly #timers = new Map<string, NodeJS.Timeout>();
  /** Users holding a session on this node: they are online whatever the cluster count says yet. */
  readonly #local = new Set<string>();
  /** The next wait of a user whose check failed. */
  readonly #retryMs = new Map<string, number>();
  /**
   * The work running for a user (a check, or the announcement of a first message), if any: one
   * user's run one after another. Two at once (a session opened, then `set_presence` while the
   * first still reads) could publish the older reading last and leave a hidden user shown online.
   */
  readonly #running = new Map<string, Promise<void>>();
  readonly #sweeper: NodeJS.Timeout | undefined;
  #closed = false;
  #closing = false;

  constructor(private readonly o: PresenceServiceOptions) {
    if (o.sweepMs > 0) {
      this.#sweeper = setInterval(() => void this.#sweep(), o.sweepMs);
      this.#sweeper.unref();
    }
  }

  /** A session of the user opened or closed on this node; `local`: the node still holds one. */
  changed(userKey: string, local: boolean): void {
    if (this.#closed) return;
    if (local) this.#local.add(userKey);
    else this.#local.delete(userKey);
    if (this.#closing) return;
    // A user whose last session here closed stays recorded for this node until their check has run:
    // a node that dies before it leaves them for the dead-node sweep to claim, not online for good.
    if (local) this.o.state.track(userKey, true);
    this.#schedule(userKey);
  }

  /**
   * The user wrote in the conversation for the first time: its other members may see their
   * presence from now on (§6a "Who sees you"), and are told it at once when they are shown online
   * (a `presence_changed {online: true}`; an offline user needs no news). A store that cannot tell
   * a first write for sure may call this again: the frame only repeats the published state.
   */
  shared(tenantId: string, userId: string, conversationId: string): Promise<void> {
    const userKey = peerKey(tenantId, userId);
    // In the user's line with their checks: a check flipping them offline (or hidden) comes wholly
    // before or after this, never between its read of the state and its frames.
    return this.#inLine(userKey, async () => {
      if (this.#closed || this.#closing) return;
      const audience = await this.o.store.audienceOf(tenantId, conversationId, userId);
      if (audience === undefined) return;
      const shownOnline = async (): Promise<boolean> => (await this.o.state.states([userKey]))[0] === true;
      if (!(await shownOnline())) return;
      const others = audience.members.filter((m) => m !== userId);
      const tell = (online: boolean): void => {
        const frame = JSON.stringify({ type: 'presence_changed', userId, online });
        for (const member of others) this.o.bus.publish(peerKey(tenantId, member), frame);
      };
      tell(true);
      // Another node's check may have flipped them meanwhile, its frame going out before ours.
      if (!(await shownOnline())) tell(false);
    }).catch(this.o.onError);
  }

  /** `presence {conversationId}`: the members shown online, for a current member only. */
  async query(user: Identity, outbox: Outbox, frame: PresenceFrame): Promise<void> {
    const conversationId = frame.conversationId.toLowerCase();
    try {
      const audience = await this.o.store.audienceOf(user.tenantId, conversationId, user.userId);
      if (audience === undefined) {
        outbox.sendFrame(withRequestId({ type: 'error', reason: 'forbidden' }, frame.requestId));
        return;
      }
      // Only members who have written here are shown (store.ts, Audience), and the caller.
      const members = audience.members.filter((m) => m === user.userId || audience.sharing.includes(m));
      const states = await this.o.state.states(members.map((m) => peerKey(user.tenantId, m)));
      const online = members.filter((_, i) => states[i] === true);
      outbox.sendFrame(withRequestId({ type: 'presence', conversationId, online }, frame.requestId));
    } catch (err) {
      this.o.onError(err);
      outbox.sendFrame(withRequestId({ type: 'error', reason: 'storage_unavailable' }, frame.requestId));
    }
  }

  /** `set_presence {visible}`: stored, then checked like any other change. */
  async setVisible(user: Identity, outbox: Outbox, frame: SetPresenceFrame): Promise<void> {
    try {
      await this.o.store.setPresenceVisible(user.tenantId, user.userId, frame.visible);
    } catch (err) {
      this.o.onError(err);
      outbox.sendFrame(withRequestId({ type: 'error', reason: 'storage_unavailable' }, frame.requestId));
      return;
    }
    outbox.sendFrame(withRequestId({ type: 'presence_updated', visible: frame.visible }, frame.requestId));
    const userKey = peerKey(user.tenantId, user.userId);
    if (frame.visible) {
      this.#schedule(userKey);
      return;
    }
    // Hiding takes effect now: the debounce absorbs flapping connections, not a user's choice to
    // hide (who must not stay listed online for chat.presenceDebounceMs after asking).
    const pending = this.#timers.get(userKey);
    if (pending !== undefined) clearTimeout(pending);
    this.#timers.delete(userKey);
    void this.#run(userKey);
  }

  /** Pending checks run now (sessions closed by a shutdown go offline for the other nodes at once). */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    // Offline flips held back after a Redis loss are decided now: this node will not be there later.
    for (const userKey of this.o.state.releaseHeld()) this.#schedule(userKey, 0);
    // A check may schedule another (its count moved after a flip): run those too, a few rounds at most.
    for (let round = 0; round < 3; round++) {
      const pending = [...this.#timers.keys()];
      for (const t of this.#timers.values()) clearTimeout(t);
      this.#timers.clear();
      await Promise.allSettled([...pending.map((k) => this.#run(k)), ...this.#running.values()]);
      if (this.#timers.size === 0) break;
    }
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.#closed = true;
    await this.o.state.close();
  }

  #schedule(userKey: string, delayMs = this.o.debounceMs): void {
    const previous = this.#timers.get(userKey);
    if (previous !== undefined) clearTimeout(previous);
    const timer = setTimeout(() => {
      this.#timers.delete(userKey);
      void this.#run(userKey);
    }, delayMs);
    timer.unref();
    this.#timers.set(userKey, timer);
  }

  /**
   * Runs a check of the user after the one already running (never rejects). A failed check runs
   * again later (backing off to 30 s): a user must not stay shown online, or offline, because
   * Redis or storage was away when their last session closed.
   */
  #run(userKey: string): Promise<void> {
    return this.#inLine(userKey, () => this.#check(userKey)).then(
      () => void this.#retryMs.delete(userKey),
      (err: unknown) => {
        this.o.onError(err);
        if (this.#closed || this.#closing) return;
        const wait = this.#retryMs.get(userKey) ?? RETRY_MS;
        this.#retryMs.set(userKey, Math.min(wait * 2, RETRY_MAX_MS));
        if (!this.#timers.has(userKey)) this.#schedule(userKey, wait);
      },
    );
  }

  /** Runs `work` after the user's work already in line (checks, `shared`); rejects as `work` does. */
  #inLine(userKey: string, work: () => Promise<void>): Promise<void> {
    const previous = this.#running.get(userKey);
    const next = (previous ?? Promise.resolve()).then(work);
    const settled = next.catch(() => {});
    this.#running.set(userKey, settled);
    void settled.then(() => {
      if (this.#running.get(userKey) === settled) this.#running.delete(userKey);
    });
    return next;
  }

  async #check(userKey: string): Promise<void> {
    if (this.#closed) return;
    await this.#publishIfChanged(userKey);
    // Checked: a user with no session here any more stops being recorded for this node — unless
    // their offline flip is held back (a crash meanwhile leaves them to the dead-node sweep).
    // Either way a claim on them (a dead node's user, taken by this node's sweep) is settled.
    if (!this.#local.has(userKey) && !this.o.state.holds(userKey)) this.o.state.track(userKey, false);
    else this.o.state.checked?.(userKey);
  }

  async #publishIfChanged(userKey: string): Promise<void> {
    const { tenantId, userId } = splitKey(userKey);
    const visible = async (): Promise<boolean> => (await this.o.store.presenceSettings(tenantId, [userId])).get(userId) ?? this.o.defaultVisible;
    // This node's own sessions count at once (the cluster count may lag them after a Redis outage).
    const sessions = this.#local.has(userKey) ? 1 : await this.o.registry.countUser(userKey);
    const online = sessions > 0 && (await visible());
    if (!(await this.o.state.swap(userKey, online))) return;
    const contacts = await this.o.store.contactsOf(tenantId, userId);
    const publish = (state: boolean): void => {
      const frame = JSON.stringify({ type: 'presence_changed', userId, online: state });
      for (const contact of contacts) this.o.bus.publish(peerKey(tenantId, contact), frame);
    };
    publish(online);
    // Another node may have flipped the state back while we read the contacts, and published its
    // frame before ours: ours, arriving last, would stand (a user who left shown online, or one who
    // hid). The published state is read again after our frame, and restated while it moved.
    await this.#restate(userKey, online, publish);
    // Checks are serialized per node only. Another node's check may have run entirely between our
    // reads and our swap — its session opened after we counted, or the user hid themselves there
    // after we read "visible" — and seen the old state still published, changing nothing; our
    // older verdict would then stand. A flip is rare, so read both again after it and, if either
    // moved, check once more.
    const now = this.#local.has(userKey) ? 1 : await this.o.registry.countUser(userKey);
    if (now > 0 !== sessions > 0 || (online && !(await visible()))) this.#schedule(userKey, 0);
  }

  /**
   * Reads the published state after a frame saying `sent` and restates it while it moved, a read
   * after every frame. Still moving after RESTATE_ROUNDS (another node flipping the user again
   * and again): it looks again on a later turn, in the user's line, so the last frame a contact
   * gets is never left unchecked.
   */
  async #restate(userKey: string, sent: boolean, publish: (state: boolean) => void): Promise<void> {
    for (let round = 0; round < RESTATE_ROUNDS; round++) {
      if (this.#closed) return;
      if (this.#closing && round > 0) return;
      const [current] = await this.o.state.states([userKey]);
      if (current === undefined || current === sent) return;
      publish((sent = current));
    }
    const last = sent;
    setImmediate(() => {
      // Not once close() began: it waits only for the work in line when it started.
      if (!this.#closed && !this.#closing) this.#inLine(userKey, () => this.#restate(userKey, last, publish)).catch(this.o.onError);
    });
  }

  async #sweep(): Promise<void> {
    try {
      // Users claimed from dead nodes, new or still unchecked (a sweep's reply may have been lost,
      // and they stay claimed in Redis until checked): a check each, unless one is already waiting.
      for (const userKey of await this.o.state.sweep()) if (!this.#timers.has(userKey)) this.#schedule(userKey);
      // Offline flips held back after Redis lost the states: the counts are back, check again.
      for (const userKey of this.o.state.due()) this.#schedule(userKey, 0);
      // Taken for dead while cut from Redis: this node's users were published offline. Record them
      // again and check them (they hold sessions here, so they come back online).
      if (await this.o.state.rejoin(this.#local)) for (const userKey of this.#local) this.#schedule(userKey);
    } catch (err) {
      this.o.onError(err);
    }
  }
}
