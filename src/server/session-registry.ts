/**
 * Sessions of this node by user key. The first session of a user subscribes the node to that
 * user's bus channel, the last one unsubscribes; every session of the user (all devices) gets
 * each frame the bus delivers.
 */
import type { Bus } from '../bus/bus.js';
import type { Session } from '../session/session.js';
import type { LocalSessions } from '../admin/session-directory.js';
import { CATCH_UP_HINT, framePos, isSendersCopy } from '../chat/timeline-frames.js';
import type { ServerFrame } from '../protocol/server-frames.js';

const RESYNC_FRAME = JSON.stringify({ type: 'resync' } satisfies ServerFrame);
/** Told of every session added and removed (the cluster session directory, src/admin/). */
export interface SessionObserver {
  added(session: Session): void;
  removed(session: Session): void;
  /** The session now runs on a refreshed token (its identity changed). */
  refreshed?(session: Session): void;
}

/** A user's local sessions: the session itself while there is one (most users), a Set from the second. */
type UserSessions = Session | Set<Session>;

export class SessionRegistry implements LocalSessions<Session> {
  private readonly byUser = new Map<string, UserSessions>();
  private observer: SessionObserver | undefined;

  /**
   * `onDelivered`: a live frame was handed to `sessions` sessions of one of its recipients
   * (metrics). A chat message's copy on its sender's own timeline (the sender's other devices) is
   * not a delivery and is not reported (docs/protocol.md §10).
   */
  constructor(
    private readonly bus: Bus,
    private readonly onDelivered?: (frame: string, sessions: number) => void,
  ) {
    bus.onFrame(this.deliver);
    bus.onResync(this.resyncAll);
  }

  /**
   * Tells `observer` of every session added and removed from now on (session control, which reads
   * this registry as the node's record of its sessions: nothing per session is kept twice).
   */
  observe(observer: SessionObserver): void {
    this.observer = observer;
  }

  add(session: Session): void {
    const entry = this.byUser.get(session.userKey);
    if (entry === undefined) {
      this.byUser.set(session.userKey, session);
      this.bus.subscribe(session.userKey);
    } else if (entry instanceof Set) entry.add(session);
    else if (entry !== session) this.byUser.set(session.userKey, new Set([entry, session]));
    this.observer?.added(session);
  }

  /** Resolves once frames published for the user on any node reach this node (see Bus.subscribed). */
  subscribed(userKey: string): Promise<void> | undefined {
    return this.bus.subscribed(userKey);
  }

  /** A token refresh replaced the session's identity: observers check it again. */
  refreshed(session: Session): void {
    this.observer?.refreshed?.(session);
  }

  remove(session: Session): void {
    const entry = this.byUser.get(session.userKey);
    if (entry === undefined) return;
    if (entry instanceof Set) {
      if (!entry.delete(session)) return;
      if (entry.size > 0) {
        this.observer?.removed(session);
        return;
      }
    } else if (entry !== session) return;
    this.observer?.removed(session);
    this.byUser.delete(session.userKey);
    this.bus.unsubscribe(session.userKey);
  }

  sessionsOf(userKey: string): ReadonlySet<Session> | undefined {
    const entry = this.byUser.get(userKey);
    return entry === undefined || entry instanceof Set ? entry : new Set([entry]);
  }

  /** The user's local session that authenticated first (for `onUserLimit: close_oldest`). */
  oldestOf(userKey: string): Session | undefined {
    const entry = this.byUser.get(userKey);
    if (entry === undefined) return undefined;
    if (!(entry instanceof Set)) return entry.isOpen ? entry : undefined;
    for (const s of entry) if (s.isOpen) return s; // Sets iterate in insertion order
    return undefined;
  }

  get userCount(): number {
    return this.byUser.size;
  }

  all(): Session[] {
    const list: Session[] = [];
    for (const entry of this.byUser.values()) {
      if (entry instanceof Set) for (const s of entry) list.push(s);
      else list.push(entry);
    }
    return list;
  }

  /** Timeline frames go through each session's stream (ordering, gaps); others straight out. */
  private readonly deliver = (userKey: string, frame: string): void => {
    const entry = this.byUser.get(userKey);
    if (entry === undefined) return;
    const pos = framePos(frame);
    if (pos === undefined && frame === CATCH_UP_HINT) return this.catchUpUser(entry);
    // Frames without a position are ephemeral or restated by list_conversations and history: a
    // session still between joining and auth_success does not get them (see Session.announced).
    if (!(entry instanceof Set)) {
      if (pos !== undefined) entry.offerTimeline(pos, frame);
      else if (entry.announced) entry.send(frame);
      if (this.onDelivered !== undefined) this.delivered(userKey, frame, 1);
      return;
    }
    if (pos === undefined) {
      for (const session of entry) if (session.announced) session.send(frame);
    } else {
      for (const session of entry) session.offerTimeline(pos, frame);
    }
    if (this.onDelivered !== undefined) this.delivered(userKey, frame, entry.size);
  };

  private delivered(userKey: string, frame: string, sessions: number): void {
    if (isSendersCopy(userKey, frame)) return;
    this.onDelivered!(frame, sessions);
  }

  /**
   * The bus may have lost frames: every local session reads its timeline's gap from storage, and
   * is told that frames outside the timeline (receipts, read positions, presence, typing) may be
   * lost too, so it can ask again (`resync`, docs/protocol.md §4).
   */
  private readonly resyncAll = (): void => {
    for (const entry of this.byUser.values()) {
      if (entry instanceof Set) {
        for (const session of entry) if (session.announced) session.send(RESYNC_FRAME);
      } else if (entry.announced) entry.send(RESYNC_FRAME);
      this.catchUpUser(entry);
    }
  };

  private catchUpUser(entry: UserSessions): void {
    if (entry instanceof Set) for (const session of entry) session.catchUp();
    else entry.catchUp();
  }
}
