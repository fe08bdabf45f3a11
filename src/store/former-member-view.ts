/**
 * What a former member (removed, or left) may read of a conversation: each message as it stood
 * when they left. A message row holds only its latest body, so an edit made after they left would
 * show them content written after their removal. They get instead the body of the latest edit at
 * or before their leaving; when the first edit came after it, the body they saw is no longer
 * stored and the message is left out of their history (history lists no edit or delete events,
 * so clients already page over gaps in `seq`). A deletion after they left still shows the
 * tombstone: erasure reaches every copy.
 */
import type { ConversationEvent, MessageEditEvent, StoredMessage } from './store.js';

/** Messages of a page whose edits the view needs (edited, not deleted). */
export function editedMessages(events: readonly ConversationEvent[]): StoredMessage[] {
  return events.filter((e): e is StoredMessage => e.kind === 'message' && e.editedAt !== undefined && e.deletedAt === undefined);
}

/**
 * A history page as a former member sees it. `leftSeq`: the seq of their leaving; `editsOf`: a
 * message's edit events in ascending `seq` (asked only for the messages `editedMessages` names).
 */
export function asSeenByFormerMember(
  events: readonly ConversationEvent[],
  leftSeq: number,
  editsOf: (messageId: string) => readonly MessageEditEvent[],
): ConversationEvent[] {
  const out: ConversationEvent[] = [];
  for (const e of events) {
    if (e.kind !== 'message' || e.editedAt === undefined || e.deletedAt !== undefined) {
      out.push(e);
      continue;
    }
    const edits = editsOf(e.id);
    if (!edits.some((x) => x.seq > leftSeq)) {
      out.push(e);
      continue;
    }
    let seen: MessageEditEvent | undefined;
    for (const x of edits) if (x.seq <= leftSeq) seen = x;
    if (seen !== undefined) out.push({ ...e, content: seen.content, mentions: seen.mentions, hashtags: seen.hashtags, links: seen.links, editedAt: seen.timestamp });
  }
  return out;
}

/** A member's earlier membership of a conversation (they were re-added since): seqs [joined, left]. */
export interface MembershipPeriod {
  joined_seq: number;
  left_seq: number;
}

/**
 * Up to which seq a member saw the conversation when the event at `seq` reached them: undefined
 * while they have stayed a member since (they see its latest body). An entry from before their
 * current membership (`seq` < `joinedSeq`: they were re-added) belongs to an earlier period, and
 * shows what that period showed; `earlier` is read only then. An entry of no recorded period
 * (a re-add from before periods were kept) is treated as of the current membership.
 */
export function seenUntil(seq: number, joinedSeq: number, leftSeq: number | null, earlier: () => readonly MembershipPeriod[]): number | undefined {
  if (seq < joinedSeq) {
    for (const p of earlier()) if (p.joined_seq <= seq && seq <= p.left_seq) return p.left_seq;
  }
  return leftSeq ?? undefined;
}

/**
 * A former member's history page, filled to `limit`: the view leaves messages out, and a page that
 * came back short would tell the client there is nothing older (it pages on only from a full one).
 * `read(below)` gives up to `limit` events newest first: the page's own cursors when `below` is
 * undefined, else those with seq < `below`. Reads go on below the last row read until the page is
 * full or the range ends; how far is bounded by the edits made after the member left.
 */
export async function formerMemberPage(
  limit: number,
  read: (below: number | undefined) => ConversationEvent[] | Promise<ConversationEvent[]>,
  view: (events: ConversationEvent[]) => ConversationEvent[] | Promise<ConversationEvent[]>,
): Promise<ConversationEvent[]> {
  const page: ConversationEvent[] = [];
  let below: number | undefined;
  while (page.length < limit) {
    const events = await read(below);
    page.push(...(await view(events)));
    if (events.length < limit) break;
    below = events[events.length - 1]!.seq;
  }
  return page.length > limit ? page.slice(0, limit) : page;
}
