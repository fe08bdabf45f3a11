/**
 * What a former member (removed, or left) may read of a message: the conversation as it stood
 * when they left. A message row holds only its latest body, so an edit made after they left would
 * show them content written after their removal. They get instead the body of the latest edit at
 * or before their leaving; when the first edit came after it, the body they saw is no longer
 * stored and the message is left out of their history (history lists no edit or delete events,
 * so clients already page over gaps in `seq`). A deletion after they left still shows the
 * tombstone: erasure reaches every copy.
 */
import type { MessageEditEvent, StoredMessage } from './store.js';

/** `edits`: the message's edit events in ascending `seq`; `leftSeq`: the seq of their leaving. */
export function asSeenByFormerMember(message: StoredMessage, edits: readonly MessageEditEvent[], leftSeq: number): StoredMessage | undefined {
  if (message.deletedAt !== undefined || message.editedAt === undefined) return message;
  if (!edits.some((e) => e.seq > leftSeq)) return message;
  let seen: MessageEditEvent | undefined;
  for (const e of edits) if (e.seq <= leftSeq) seen = e;
  if (seen === undefined) return undefined;
  return { ...message, content: seen.content, mentions: seen.mentions, hashtags: seen.hashtags, links: seen.links, editedAt: seen.timestamp };
}
