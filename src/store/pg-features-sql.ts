/**
 * Statements of the PostgreSQL adapter for receipts, edits and deletes, and presence settings
 * (schema 3), kept apart from the message path's statements.
 */
import { EVENT_EDIT, EVENT_MESSAGE, EVENT_TOMBSTONE } from './message-codec.js';
import { EVENT_COLUMNS, eventJoins } from './pg-event-sql.js';
import type { TableName } from './pg-migrations.js';

export function buildFeatureSql(t: (table: string) => string) {
  const joins = eventJoins(t);
  return {
    userIdOf: `SELECT id FROM ${t('users')} WHERE tenant_id = $1 AND user_id = $2`,
    duplicate: `SELECT ${EVENT_COLUMNS} FROM ${t('events')} e ${joins} WHERE e.sender = $1 AND e.client_msg_id = $2`,
    targetConv: `
      SELECT e.conv FROM ${t('events')} e JOIN ${t('conversations')} c ON c.id = e.conv
      WHERE e.id = $1 AND c.tenant_id = $2`,
    lockConv: `SELECT last_seq, closed, kind FROM ${t('conversations')} WHERE id = $1 FOR UPDATE`,
    /**
     * An edit's or delete's first lock (postgres-store.ts module comment: lock order) — on a message
     * only: any other event (an edit's own id, which every member is sent) is refused further on,
     * and locking it here, before the conversation, would deadlock with a delete of its message,
     * which takes its edits after the conversation.
     */
    lockTarget: `SELECT 1 FROM ${t('events')} WHERE id = $1 AND kind IN (${EVENT_MESSAGE}, ${EVENT_TOMBSTONE}) FOR UPDATE`,
    // Locked: a prune that deleted the message meanwhile committed first (no row: forbidden, not
    // an edit stored for a message that is gone), or it waits for this change. An edit never
    // targets a message old enough to be pruned (config: chat.editWindowMs < chat.retentionDays).
    target: `SELECT ${EVENT_COLUMNS}, e.sender AS sender_int FROM ${t('events')} e ${joins} WHERE e.id = $1 FOR UPDATE OF e`,
    eventById: `SELECT ${EVENT_COLUMNS} FROM ${t('events')} e ${joins} WHERE e.id = $1`,
    membership: `SELECT role, left_seq FROM ${t('members')} WHERE conv = $1 AND "user" = $2`,
    /** Of these conversations, the ones the user has left, with the seq of their leaving. */
    // A member's memberships of these conversations: the current (or last) one, with period = false,
    // and the earlier ones of a re-added member (version 6), with period = true.
    memberships: `
      SELECT conv, joined_seq, left_seq, false AS period FROM ${t('members')} WHERE "user" = $1 AND conv = ANY($2::int[])
      UNION ALL
      SELECT conv, joined_seq, left_seq, true FROM ${t('member_periods')} WHERE "user" = $1 AND conv = ANY($2::int[])`,
    insertEvent: `
      INSERT INTO ${t('events')} (conv, seq, id, kind, sender, content, key_id, reply_to, attachments, mentions, hashtags,
        links, ts, client_msg_id)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
    setBody: `
      UPDATE ${t('events')} SET content = $3, key_id = $4, attachments = $5, mentions = $6, hashtags = $7, links = $8,
        edited_at = $9 WHERE conv = $1 AND seq = $2`,
    tombstone: `
      UPDATE ${t('events')} SET kind = ${EVENT_TOMBSTONE}, content = $3, key_id = NULL, attachments = NULL, mentions = '[]',
        hashtags = '[]', links = '[]', reply_to = NULL, edited_at = NULL WHERE conv = $1 AND seq = $2`,
    /** The edit events of several messages of one conversation, each message's in ascending seq. */
    editsOf: `
      SELECT ${EVENT_COLUMNS} FROM ${t('events')} e ${joins}
      WHERE e.conv = $1 AND e.reply_to = ANY($2::uuid[]) AND e.kind = ${EVENT_EDIT} ORDER BY e.seq`,
    eraseEdits: `
      UPDATE ${t('events')} SET content = '', key_id = NULL, attachments = NULL, mentions = '[]', hashtags = '[]', links = '[]'
      WHERE conv = $1 AND reply_to = $2 AND kind = ${EVENT_EDIT}`,
    /** An edit's or delete's seq: last_seq only (last_at is activity: messages and membership changes). */
    setConv: `UPDATE ${t('conversations')} SET last_seq = $2 WHERE id = $1`,
    appendTimeline: `
      WITH tl AS (
        INSERT INTO ${t('timeline')} ("user", pos, conv, seq) SELECT * FROM unnest($1::int[], $2::bigint[], $3::int[], $4::bigint[])
      )
      UPDATE ${t('users')} u SET last_pos = x.p FROM unnest($1::int[], $2::bigint[]) AS x(id, p) WHERE u.id = x.id`,
    lockUser: `SELECT id, last_pos, acked_pos FROM ${t('users')} WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE`,
    setUserAcked: `UPDATE ${t('users')} SET acked_pos = $2 WHERE id = $1`,
    // A new row (xmax = 0) past the bound $4 drops the user's least-advanced other devices. The
    // DELETE sees the rows from before the INSERT, so it keeps $4 - 1 others beside this one.
    upsertDevice: `
      WITH d AS (
        INSERT INTO ${t('devices')} AS d ("user", device_id, acked_pos) VALUES ($1, $2, $3)
        ON CONFLICT ("user", device_id) DO UPDATE SET acked_pos = GREATEST(d.acked_pos, excluded.acked_pos)
        RETURNING acked_pos, xmax = 0 AS inserted
      ), trimmed AS (
        DELETE FROM ${t('devices')} x WHERE (SELECT inserted FROM d) AND x."user" = $1 AND x.device_id IN (
          SELECT device_id FROM ${t('devices')} WHERE "user" = $1 AND device_id <> $2
          ORDER BY acked_pos DESC, device_id COLLATE "C" OFFSET $4::int - 1)
      )
      SELECT acked_pos FROM d`,
    /** One UPDATE for every conversation an ack covers: the highest seq per conversation in (from, to]. */
    advanceDelivered: `
      UPDATE ${t('members')} m SET delivered_seq = x.mx
      FROM (SELECT conv, max(seq) AS mx FROM ${t('timeline')} WHERE "user" = $1 AND pos > $2 AND pos <= $3 GROUP BY conv) x,
        ${t('conversations')} c
      WHERE m.conv = x.conv AND m."user" = $1 AND m.delivered_seq < x.mx AND c.id = m.conv
      RETURNING c.uuid, m.delivered_seq`,
    readState: `
      SELECT m.conv, m."user", m.read_seq, m.receipt_seq, c.last_seq FROM ${t('members')} m
      JOIN ${t('conversations')} c ON c.id = m.conv JOIN ${t('users')} u ON u.id = m."user"
      WHERE c.uuid = $3 AND c.tenant_id = $1 AND u.tenant_id = $1 AND u.user_id = $2 AND m.left_seq IS NULL
      FOR UPDATE OF m`,
    setRead: `UPDATE ${t('members')} SET read_seq = $3, receipt_seq = $4 WHERE conv = $1 AND "user" = $2`,
    receipts: receiptsSql(t, true),
    /** As receipts, every member sharing (chat.strangerPrivacy false). */
    allReceipts: receiptsSql(t, false),
    contacts: contactsSql(t, true),
    /** As contacts, every member sharing (chat.strangerPrivacy false). */
    allContacts: contactsSql(t, false),
    setPresence: `
      INSERT INTO ${t('users')} (tenant_id, user_id, presence) VALUES ($1, $2, $3)
      ON CONFLICT (tenant_id, user_id) DO UPDATE SET presence = excluded.presence`,
    presenceSettings: `
      SELECT user_id, presence FROM ${t('users')} WHERE tenant_id = $1 AND user_id = ANY($2::uuid[]) AND presence IS NOT NULL`,
  };
}

/**
 * Other current members' receipt positions in each named conversation of the caller; `privacy`:
 * only of members who have written in it (store.ts, Audience). A member counts as having every seq
 * before their joined_seq (not theirs to receive: a newcomer, or a re-added member whose stored
 * positions are from an earlier membership), so a join never moves the others' ticks back.
 */
function receiptsSql(t: TableName, privacy: boolean): string {
  return `
      SELECT c.uuid, ou.user_id, GREATEST(o.delivered_seq, o.joined_seq - 1) AS delivered_seq,
        GREATEST(o.receipt_seq, o.joined_seq - 1) AS receipt_seq FROM ${t('conversations')} c
      JOIN ${t('members')} me ON me.conv = c.id AND me.left_seq IS NULL
      JOIN ${t('users')} u ON u.id = me."user"
      LEFT JOIN ${t('members')} o ON o.conv = c.id AND o.left_seq IS NULL AND o."user" <> me."user"${privacy ? ' AND o.wrote' : ''}
      LEFT JOIN ${t('users')} ou ON ou.id = o."user"
      WHERE c.uuid = ANY($3::uuid[]) AND c.tenant_id = $1 AND u.tenant_id = $1 AND u.user_id = $2
      ORDER BY c.uuid, o.joined_seq, ou.user_id`;
}

/** Who learns the caller's presence: users sharing a current conversation; `privacy`: one the caller has written in (Audience). */
function contactsSql(t: TableName, privacy: boolean): string {
  return `
      SELECT DISTINCT ou.user_id FROM ${t('users')} u
      JOIN ${t('members')} me ON me."user" = u.id AND me.left_seq IS NULL${privacy ? ' AND me.wrote' : ''}
      JOIN ${t('members')} o ON o.conv = me.conv AND o.left_seq IS NULL AND o."user" <> me."user"
      JOIN ${t('users')} ou ON ou.id = o."user"
      WHERE u.tenant_id = $1 AND u.user_id = $2`;
}
