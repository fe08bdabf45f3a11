/**
 * Sessions of this node by user key. The first session of a user subscribes the node to that
 * user's bus channel, the last one unsubscribes; every session of the user (all devices) gets
 * each frame the bus delivers.
 */
import type { Bus } from '../bus/bus.js';
import type { Session } from '../session/session.js';
import { framePos } from '../chat/timeline-frames.js';

/** Told of every session added and removed (the cluster session directory, src/admin/). */
export interface SessionObserver {
  added(session: Session): void;
  removed(session: Session): void;
}

export class SessionRegistry {
  private readonly byUser = new Map<string, Set<Session>>();

  /**
   * `onDelivered`: a live frame was handed to `sessions` sessions of one user (metrics).
   * `observer`: told of every session added and removed (the cluster session directory).
   */
  constructor(
    private readonly bus: Bus,
    private readonly onDelivered?: (frame: string, sessions: number) => void,
    private readonly observer?: SessionObserver,
  ) {
    bus.onFrame(this.deliver);
    bus.onResync(this.resyncAll);
  }

  add(session: Session): void {
    let set = this.byUser.get(session.userKey);
    if (!set) {
      set = new Set();
      this.byUser.set(session.userKey, set);
      this.bus.subscribe(session.userKey);
    }
    set.add(session);
    this.observer?.added(session);
  }

  remove(session: Session): void {
    const set = this.byUser.get(session.userKey);
    if (!set || !set.delete(session)) return;
    this.observer?.removed(session);
    if (set.size === 0) {
      this.byUser.delete(session.userKey);
      this.bus.unsubscribe(session.userKey);
    }
  }

  sessionsOf(userKey: string): ReadonlySet<Session> | undefined {
    return this.byUser.get(userKey);
  }

  /** The user's local session that authenticated first (for `onUserLimit: close_oldest`). */
  oldestOf(userKey: string): Session | undefined {
    const set = this.byUser.get(userKey);
    if (!set) return undefined;
    for (const s of set) if (s.isOpen) return s; // Sets iterate in insertion order
    return undefined;
  }

  get userCount(): number {
    return this.byUser.size;
  }

  all(): Session[] {
    const list: Session[] = [];
    for (const set of this.byUser.values()) for (const s of set) list.push(s);
    return list;
  }

  /** Timeline frames go through each session's stream (ordering, gaps); others straight out. */
  private readonly deliver = (userKey: string, frame: string): void => {
    const set = this.byUser.get(userKey);
    if (!set) return;
    const pos = framePos(frame);
    if (pos === undefined) for (const session of set) session.send(frame);
    else for (const session of set) session.offerTimeline(pos, frame);
    this.onDelivered?.(frame, set.size);
  };

  /** The bus may have lost frames: every local session reads its gap from storage. */
  private readonly resyncAll = (): void => {
    for (const set of this.byUser.values()) for (const session of set) session.catchUp();
  };
}
