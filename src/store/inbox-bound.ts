/**
 * The backlog bound (`chat.maxInboxSize`) counts the timeline entries no device acknowledged that
 * are still stored. Retention deletes entries whether acknowledged or not: a user away longer than
 * `chat.retentionDays` must not be refused new messages for entries no longer kept. Both stores
 * decide with these two functions; the stored floor is read only at the bound (rarely).
 */

/**
 * Where a user's backlog starts: their acknowledged position, or just below their oldest entry
 * still stored (`firstRetained`; null or undefined: none stored, so just above `lastBefore`, their
 * last position before this transaction's entries).
 */
export function backlogFloor(acked: number, firstRetained: number | null | undefined, lastBefore: number): number {
  return Math.max(acked, (firstRetained ?? lastBefore + 1) - 1);
}

/**
 * True when one more entry would pass the bound. `floor` (backlogFloor) is needed only when the
 * acknowledged position alone puts the user there: `last - acked < maxInboxSize` decides without it.
 */
export function atInboxBound(last: number, acked: number, maxInboxSize: number, floor: number | undefined): boolean {
  return last - Math.max(acked, floor ?? acked) >= maxInboxSize;
}

/**
 * Group changes take the bound as an extra, optional argument (`chat.maxInboxSize`; absent: no
 * bound). A membership event skips a member at the bound, as a group message does, unless it names
 * them: the actor, the users it adds, removes or changes the role of, the one who left, the new
 * owner. Those always get their entry (they must learn of it); a rename, or a change that is about
 * someone else, is seen in `list_conversations` and `history` instead.
 */
export interface MembershipBound {
  maxInboxSize?: number;
}

/** The users a membership event names (lowercase uuids): never skipped at the bound. */
export function namedByMembership(event: { actorId: string; userIds: readonly string[]; newOwnerId?: string | undefined }): Set<string> {
  const named = new Set<string>([event.actorId.toLowerCase(), ...event.userIds.map((u) => u.toLowerCase())]);
  if (event.newOwnerId !== undefined) named.add(event.newOwnerId.toLowerCase());
  return named;
}
