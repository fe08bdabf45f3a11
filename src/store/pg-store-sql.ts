/**
 * Statements of the PostgreSQL adapter's message path and reads: users and direct conversations
 * found or created, the locks a batch takes, the one-round-trip `write`, and the timeline,
 * history and list reads (postgres-store.ts module comment: lock order). Receipts, edits and
 * presence are in pg-features-sql.ts; the prune is in pg-retention.ts.
 */
import type pg from 'pg';
import { EVENT_DELETE, EVENT_EDIT, EVENT_MESSAGE, EVENT_TOMBSTONE, KIND_DIRECT, KIND_GROUP, ROLE_MEMBER } from './message-codec.js';
import { EVENT_COLUMNS, eventJoins } from './pg-event-sql.js';
import { buildFeatureSql } from './pg-features-sql.js';
import { pruneSql } from './pg-retention.js';

export function buildSql(t: (table: string) => string) {
  const joins = eventJoins(t);
  return {
    findUsers: `
      SELECT x.id, x.tenant_id, x.user_id FROM ${t('users')} x
      JOIN unnest($1::text[], $2::uuid[]) AS k(t, u) ON x.tenant_id = k.t AND x.user_id = k.u`,
    // Sorted, so two transactions creating the same users wait on each other in one order.
    insertUsers: `
      INSERT INTO ${t('users')} (tenant_id, user_id)
      SELECT t, u FROM unnest($1::text[], $2::uuid[]) AS k(t, u) ORDER BY t, u
      ON CONFLICT DO NOTHING RETURNING id, tenant_id, user_id`,
    findDirect: `SELECT id, uuid, direct_key FROM ${t('conversations')} WHERE direct_key = ANY($1::text[])`,
    insertDirect: `
      WITH c AS (
        INSERT INTO ${t('conversations')} (uuid, tenant_id, kind, direct_key, last_seq, last_at, closed, created_at)
        SELECT u, t, ${KIND_DIRECT}, k, 0, ts, false, ts
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[]) AS x(u, t, k, ts) ORDER BY k
        ON CONFLICT (direct_key) DO NOTHING RETURNING id, uuid, direct_key
      ), m AS (
        INSERT INTO ${t('members')} (conv, "user", role, joined_seq)
        SELECT c.id, p.u, ${ROLE_MEMBER}, 1 FROM c CROSS JOIN LATERAL (
          SELECT split_part(c.direct_key, ':', 1)::int UNION SELECT split_part(c.direct_key, ':', 2)::int
        ) AS p(u)
      )
      SELECT id, uuid, direct_key FROM c`,
    /** Each user's oldest timeline position still stored (users with none are left out). */
    firstPositions: `
      SELECT "user", min(pos) AS first_pos FROM ${t('timeline')} WHERE "user" = ANY($1::int[]) GROUP BY "user"`,
    /** Direct conversations this transaction created and left empty (with their two members). */
    dropDirects: `
      WITH m AS (DELETE FROM ${t('members')} WHERE conv = ANY($1::int[]))
      DELETE FROM ${t('conversations')} WHERE id = ANY($1::int[])`,
    // Any kind: a message may name a direct conversation by its id too.
    findConversations: `
      SELECT id, tenant_id, uuid, kind FROM ${t('conversations')} WHERE uuid = ANY($1::uuid[])`,
    lockConversations: `
      SELECT id, last_seq, closed FROM ${t('conversations')} WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE`,
    /**
     * Of these (conversation, user) pairs, the current memberships — read without a lock, before
     * any is taken: a stranger's frame must neither wait on a conversation's writers (its answer
     * time would tell how busy it is) nor hold its locks. Checked again under the locks.
     */
    currentPairs: `
      SELECT m.conv, m."user" FROM ${t('members')} m
      JOIN unnest($1::int[], $2::int[]) AS p(conv, uid) ON m.conv = p.conv AND m."user" = p.uid
      WHERE m.left_seq IS NULL`,
    /** Whether the user is a current member of the tenant's conversation (no lock; see currentPairs). */
    isCurrentMember: `
      SELECT 1 FROM ${t('conversations')} c
      JOIN ${t('members')} m ON m.conv = c.id AND m.left_seq IS NULL
      JOIN ${t('users')} u ON u.id = m."user"
      WHERE c.uuid = $1 AND c.tenant_id = $2 AND u.tenant_id = $2 AND u.user_id = $3`,
    lockGroup: `
      SELECT id, last_seq, closed, name, key_id FROM ${t('conversations')}
      WHERE uuid = $1 AND tenant_id = $2 AND kind = ${KIND_GROUP} FOR UPDATE`,
    currentMembers: `
      SELECT m.conv, m."user" AS uid, u.user_id AS uuid, m.role, m.joined_seq FROM ${t('members')} m
      JOIN ${t('users')} u ON u.id = m."user"
      WHERE m.conv = ANY($1::int[]) AND m.left_seq IS NULL`,
    lockUsers: `
      SELECT id, last_pos, acked_pos FROM ${t('users')} WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE`,
    groupCounts: `
      SELECT m."user" AS uid, count(*)::int AS n FROM ${t('members')} m
      JOIN ${t('conversations')} c ON c.id = m.conv
      WHERE m."user" = ANY($1::int[]) AND m.left_seq IS NULL AND c.kind = ${KIND_GROUP}
      GROUP BY m."user"`,
    findDuplicates: `
      SELECT ${EVENT_COLUMNS}, e.sender AS sender_int FROM ${t('events')} e
      JOIN unnest($1::int[], $2::text[]) AS k(s, c) ON e.sender = k.s AND e.client_msg_id = k.c
      ${joins}`,
    insertGroup: `
      INSERT INTO ${t('conversations')} (uuid, tenant_id, kind, name, key_id, last_seq, last_at, closed, created_at)
      VALUES ($1, $2, ${KIND_GROUP}, $3, $4, 0, $5, false, $5)
      ON CONFLICT DO NOTHING RETURNING id`,
    updateGroup: `UPDATE ${t('conversations')} SET name = $2, key_id = $3, closed = $4 WHERE id = $1`,
    // Every write of a batch in one round trip: events, timeline entries, counters (each once),
    // membership rows. Data-modifying CTEs all run whether or not the final SELECT reads them.
    write: `
      WITH ev AS (
        INSERT INTO ${t('events')} (conv, seq, id, kind, sender, content, key_id, reply_to, attachments, mentions,
          hashtags, links, ts, client_msg_id)
        SELECT * FROM unnest($1::int[], $2::bigint[], $3::uuid[], $4::smallint[], $5::int[], $6::text[], $7::text[],
          $8::uuid[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::text[])
      ), tl AS (
        INSERT INTO ${t('timeline')} ("user", pos, conv, seq)
        SELECT * FROM unnest($15::int[], $16::bigint[], $17::int[], $18::bigint[])
      ), cv AS (
        UPDATE ${t('conversations')} c SET last_seq = x.s, last_at = greatest(c.last_at, x.a)
        FROM unnest($19::int[], $20::bigint[], $21::bigint[]) AS x(id, s, a) WHERE c.id = x.id
      ), us AS (
        UPDATE ${t('users')} u SET last_pos = x.p FROM unnest($22::int[], $23::bigint[]) AS x(id, p) WHERE u.id = x.id
      ), mb AS (
        INSERT INTO ${t('members')} AS old (conv, "user", role, joined_seq, left_seq)
        SELECT * FROM unnest($24::int[], $25::int[], $26::smallint[], $27::bigint[], $28::bigint[])
        ON CONFLICT (conv, "user") DO UPDATE
          SET role = excluded.role, joined_seq = excluded.joined_seq, left_seq = excluded.left_seq,
            -- a former member added back is a new member: not a writer until they write again (Audience)
            wrote = old.wrote AND NOT (old.left_seq IS NOT NULL AND excluded.left_seq IS NULL)
      ), wr AS (
        UPDATE ${t('members')} m SET wrote = true FROM unnest($29::int[], $30::int[]) AS x(conv, u)
        WHERE m.conv = x.conv AND m."user" = x.u AND NOT m.wrote
      )
      SELECT 1`,
    userState: `
      SELECT u.id, u.last_pos, u.acked_pos, (SELECT min(pos) FROM ${t('timeline')} WHERE "user" = u.id) AS first_pos
      FROM ${t('users')} u WHERE u.tenant_id = $1 AND u.user_id = $2`,
    timeline: `
      SELECT t.pos, t.conv AS tl_conv, ${EVENT_COLUMNS} FROM ${t('timeline')} t
      JOIN ${t('events')} e ON e.conv = t.conv AND e.seq = t.seq
      ${joins}
      WHERE t."user" = $1 AND t.pos > $2 AND t.pos <= $3 ORDER BY t.pos LIMIT $4`,
    syncState: `
      SELECT u.last_pos, u.acked_pos, d.acked_pos AS device_pos FROM ${t('users')} u
      LEFT JOIN ${t('devices')} d ON d."user" = u.id AND d.device_id = $3
      WHERE u.tenant_id = $1 AND u.user_id = $2`,
    ackUser: `
      UPDATE ${t('users')} SET acked_pos = GREATEST(acked_pos, LEAST($3::bigint, last_pos))
      WHERE tenant_id = $1 AND user_id = $2 RETURNING acked_pos`,
    // One statement: the device row and the user's position move together.
    ackDevice: `
      WITH u AS (
        UPDATE ${t('users')} SET acked_pos = GREATEST(acked_pos, LEAST($3::bigint, last_pos))
        WHERE tenant_id = $1 AND user_id = $2 RETURNING id, GREATEST(0, LEAST($3::bigint, last_pos)) AS p
      ), d AS (
        INSERT INTO ${t('devices')} AS d ("user", device_id, acked_pos) SELECT id, $4, p FROM u
        ON CONFLICT ("user", device_id) DO UPDATE SET acked_pos = GREATEST(d.acked_pos, excluded.acked_pos)
        RETURNING acked_pos, xmax = 0 AS inserted
      ), trimmed AS (
        -- As upsertDevice (pg-features-sql.ts): a new row past the bound $5 drops the least-advanced others.
        DELETE FROM ${t('devices')} x WHERE (SELECT inserted FROM d) AND x."user" = (SELECT id FROM u) AND x.device_id IN (
          SELECT device_id FROM ${t('devices')} WHERE "user" = (SELECT id FROM u) AND device_id <> $4
          ORDER BY acked_pos DESC, device_id COLLATE "C" OFFSET $5::int - 1)
      )
      SELECT acked_pos FROM d`,
    memberOf: `
      SELECT c.id, c.uuid, c.kind, m.joined_seq, m.left_seq FROM ${t('conversations')} c
      JOIN ${t('members')} m ON m.conv = c.id
      JOIN ${t('users')} u ON u.id = m."user"
      WHERE c.uuid = $1 AND c.tenant_id = $2 AND u.tenant_id = $2 AND u.user_id = $3`,
    directOf: `
      SELECT c.id, c.uuid, c.kind, 1::bigint AS joined_seq, NULL::bigint AS left_seq FROM ${t('conversations')} c
      WHERE c.direct_key = (
        SELECT least(a.id, b.id) || ':' || greatest(a.id, b.id) FROM ${t('users')} a, ${t('users')} b
        WHERE a.tenant_id = $1 AND a.user_id = $2 AND b.tenant_id = $1 AND b.user_id = $3)`,
    history: `
      SELECT ${EVENT_COLUMNS} FROM ${t('events')} e ${joins}
      WHERE e.conv = $1 AND e.seq >= $2 AND e.seq <= $3 AND e.seq < $4 AND e.kind NOT IN (${EVENT_EDIT}, ${EVENT_DELETE}) ORDER BY e.seq DESC LIMIT $5`,
    // A cursor outside this conversation yields NULL, and `seq < NULL` matches nothing.
    historyBeforeId: `
      SELECT ${EVENT_COLUMNS} FROM ${t('events')} e ${joins}
      WHERE e.conv = $1 AND e.seq >= $2 AND e.seq <= $3 AND e.kind NOT IN (${EVENT_EDIT}, ${EVENT_DELETE})
        AND e.seq < (SELECT seq FROM ${t('events')} WHERE id = $4 AND conv = $1) AND e.seq < $6
      ORDER BY e.seq DESC LIMIT $5`,
    // A conversation's current members if $3 is one, and whether each wrote in it (Audience).
    // (With each member's receipt positions, floored at joined_seq - 1 as in receipts(): audienceOf
    // returns the asking member's.)
    members: `
      SELECT mu.user_id, m.wrote, GREATEST(m.delivered_seq, m.joined_seq - 1) AS delivered_seq,
        GREATEST(m.receipt_seq, m.joined_seq - 1) AS receipt_seq FROM ${t('conversations')} c
      JOIN ${t('members')} m ON m.conv = c.id AND m.left_seq IS NULL
      JOIN ${t('users')} mu ON mu.id = m."user"
      WHERE c.uuid = $1 AND c.tenant_id = $2
        AND EXISTS (SELECT 1 FROM ${t('members')} me JOIN ${t('users')} u ON u.id = me."user"
          WHERE me.conv = c.id AND (me.left_seq IS NULL OR $4::boolean) AND u.tenant_id = $2 AND u.user_id = $3)
      ORDER BY m.joined_seq, mu.user_id`,
    // Current memberships, most recent activity first; the cursor is (last_at, uuid) of the last row.
    listConversations: `
      SELECT c.id, c.uuid, c.kind, c.name, c.key_id, c.last_seq, c.last_at, m.role, m.read_seq, m.joined_seq,
        (SELECT count(*) FROM ${t('members')} x WHERE x.conv = c.id AND x.left_seq IS NULL)::int AS member_count,
        (SELECT pu.user_id FROM ${t('members')} p JOIN ${t('users')} pu ON pu.id = p."user"
          WHERE c.kind = ${KIND_DIRECT} AND p.conv = c.id ORDER BY (p."user" = m."user") LIMIT 1) AS peer_uuid,
        (SELECT count(*) FROM ${t('events')} e WHERE e.conv = c.id AND e.kind = ${EVENT_MESSAGE}
          AND e.sender <> m."user" AND e.seq > m.read_seq AND e.seq >= m.joined_seq)::int AS unread
      FROM ${t('users')} u
      JOIN ${t('members')} m ON m."user" = u.id AND m.left_seq IS NULL
      JOIN ${t('conversations')} c ON c.id = m.conv
      WHERE u.tenant_id = $1 AND u.user_id = $2
        AND ($3::bigint IS NULL OR c.last_at < $3 OR (c.last_at = $3 AND c.uuid < $4::uuid))
      ORDER BY c.last_at DESC, c.uuid DESC
      LIMIT $5`,
    lastMessages: `
      SELECT ${EVENT_COLUMNS} FROM unnest($1::int[], $2::bigint[]) AS k(conv, since)
      CROSS JOIN LATERAL (
        SELECT * FROM ${t('events')} ev WHERE ev.conv = k.conv AND ev.kind IN (${EVENT_MESSAGE}, ${EVENT_TOMBSTONE}) AND ev.seq >= k.since
        ORDER BY ev.seq DESC LIMIT 1
      ) e
      ${joins}`,
    markRead: `
      UPDATE ${t('members')} m SET read_seq = GREATEST(m.read_seq, LEAST($4::bigint, c.last_seq))
      FROM ${t('conversations')} c, ${t('users')} u
      WHERE c.uuid = $3 AND c.tenant_id = $1 AND u.tenant_id = $1 AND u.user_id = $2
        AND m.conv = c.id AND m."user" = u.id AND m.left_seq IS NULL
      RETURNING m.read_seq`,
    prune: pruneSql(t),
  };
}

export type SqlName = keyof ReturnType<typeof buildSql>;
export type FeatureSqlName = keyof ReturnType<typeof buildFeatureSql>;
/** The statements above, named (prepared once per connection). */
export type StoreSql = Record<SqlName, pg.QueryConfig>;
/** pg-features-sql.ts's statements, named. */
export type FeatureSql = Record<FeatureSqlName, pg.QueryConfig>;
