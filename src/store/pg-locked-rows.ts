/**
 * The rows a write transaction locks and reads under its locks: the users it appends to (with
 * their positions, and where their backlog starts near the bound) and the current members of the
 * conversations it writes to. Shared by the message path, group changes, and edits and deletes.
 */
import type pg from 'pg';
import { backlogFloor } from './inbox-bound.js';
import type { StoreSql } from './pg-store-sql.js';

export interface LockedUser {
  lastPos: number;
  ackedPos: number;
  /** Where the backlog starts (inbox-bound.ts): set by readBacklogFloors for users at the bound. */
  floor?: number;
}

export interface CurrentMember {
  uid: number;
  uuid: string;
  role: number;
  joinedSeq: number;
}

export async function currentMembers(sql: StoreSql, client: pg.PoolClient, convs: readonly number[]): Promise<(CurrentMember & { conv: number })[]> {
  const { rows } = await client.query<{ conv: number; uid: number; uuid: string; role: number; joined_seq: string }>({
    ...sql.currentMembers,
    values: [convs],
  });
  return rows.map((r) => ({ conv: r.conv, uid: r.uid, uuid: r.uuid, role: r.role, joinedSeq: Number(r.joined_seq) }));
}

/**
 * For the locked users whose acknowledged position alone may put them at `maxInboxSize` within
 * this transaction (`entries`: at most this many new entries each): where their backlog starts,
 * below the oldest entry retention kept (one query, only near the bound).
 */
export async function readBacklogFloors(sql: StoreSql, client: pg.PoolClient, users: Map<number, LockedUser>, maxInboxSize: number, entries: number): Promise<void> {
  const atBound = [...users].filter(([, u]) => u.lastPos + entries - u.ackedPos >= maxInboxSize).map(([id]) => id);
  if (atBound.length === 0) return;
  const { rows } = await client.query<{ user: number; first_pos: string }>({ ...sql.firstPositions, values: [atBound] });
  const first = new Map(rows.map((r) => [r.user, Number(r.first_pos)]));
  for (const id of atBound) {
    const u = users.get(id)!;
    u.floor = backlogFloor(u.ackedPos, first.get(id), u.lastPos);
  }
}

export async function lockUsers(sql: StoreSql, client: pg.PoolClient, ids: Iterable<number>): Promise<Map<number, LockedUser>> {
  const { rows } = await client.query<{ id: number; last_pos: string; acked_pos: string }>({
    ...sql.lockUsers,
    values: [[...new Set(ids)]],
  });
  const users = new Map<number, LockedUser>();
  for (const row of rows) users.set(row.id, { lastPos: Number(row.last_pos), ackedPos: Number(row.acked_pos) });
  return users;
}
