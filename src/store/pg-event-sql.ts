/**
 * The PostgreSQL side of event decoding: the event columns every read selects, the joins they
 * need, and the `EventContext` each row carries with it. Everything else — kind codes, roles,
 * sealing and opening, payloads — is the shared EventCodec (message-codec.ts), which reads these
 * rows as they come: the aliases below match its `EventRow`, uuids arrive as canonical strings
 * and BIGINT columns as decimal strings (the codec takes `Number()` of them).
 */
import { KIND_DIRECT, type EventContext, type EventRow } from './message-codec.js';

/**
 * Event columns every read selects (aliases: e events, c conversations, s sender, r direct peer).
 * `sender` is the sender's user uuid; a statement that needs the integer id selects `e.sender`
 * under another name.
 */
export const EVENT_COLUMNS = `e.seq, e.id, e.kind, e.content, e.key_id, e.reply_to, e.attachments, e.mentions,
  e.hashtags, e.links, e.ts, e.client_msg_id, e.edited_at, c.uuid AS conv_uuid, c.tenant_id, c.kind AS conv_kind,
  s.user_id AS sender, r.user_id AS peer_uuid`;

/** The joins EVENT_COLUMNS needs, given `t(table)` and an `events e` already in FROM. */
export function eventJoins(t: (table: string) => string): string {
  return `JOIN ${t('conversations')} c ON c.id = e.conv
  JOIN ${t('users')} s ON s.id = e.sender
  LEFT JOIN ${t('users')} r ON c.kind = ${KIND_DIRECT} AND r.id = (CASE
    WHEN split_part(c.direct_key, ':', 1)::int = e.sender THEN split_part(c.direct_key, ':', 2)::int
    ELSE split_part(c.direct_key, ':', 1)::int END)`;
}

/** A row of EVENT_COLUMNS: the events row plus its conversation and, when direct, the peer. */
export interface PgEventRow extends EventRow {
  /** smallint: pg hands it over as a number (BIGINT columns come as strings). */
  kind: number;
  conv_uuid: string;
  tenant_id: string;
  conv_kind: number;
  /** Direct conversations: the other member (the sender itself for a note to self). */
  peer_uuid: string | null;
}

/** What the codec needs besides the row, read from the row's own joined columns. */
export function eventContext(row: PgEventRow): EventContext {
  const ctx: EventContext = {
    tenantId: row.tenant_id,
    conversationId: row.conv_uuid,
    conversationKind: row.conv_kind === KIND_DIRECT ? 'direct' : 'group',
  };
  // The peer alone is enough: the codec's recipient is the member that is not the sender.
  if (row.peer_uuid !== null) ctx.directMembers = [row.peer_uuid];
  return ctx;
}
