/**
 * The clustered Store: PostgreSQL through a pg Pool. Several nodes share one database, so every
 * check that must hold across nodes is enforced by the database itself: the dedupe key is a
 * unique index, and the inbox bound is checked under a row lock on the recipient's counter.
 * Statements are named (prepared once per connection); batch writes pass one array per column
 * through unnest(), so a batch of any size is one fixed, prepared multi-row INSERT.
 */
import pg from 'pg';
import type { ContentCipher } from './content-cipher.js';
import { MESSAGE_COLUMNS, MessageCodec, conversationKey, type MessageRow } from './message-codec.js';
import type { HistoryQuery, InsertOptions, InsertOutcome, Store, StoredMessage } from './store.js';

export interface PostgresStoreOptions {
  /**
   * PostgreSQL schema that holds the tables (created if missing). Lets tests and tenants run
   * isolated in one database. Lower-case identifier; default `public`.
   */
  schema?: string;
  /** Seal message fields at rest. */
  cipher?: ContentCipher;
  /** Extra pool settings (size, timeouts, TLS). The connection string comes from the constructor. */
  pool?: Omit<pg.PoolConfig, 'connectionString'>;
  /**
   * An idle pooled connection failed (e.g. PostgreSQL restarted). The pool drops it and the next
   * query reports any lasting outage, so the default ignores it; without a listener, pg's error
   * event would crash the process.
   */
  onPoolError?: (err: Error) => void;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/** Pool defaults; the same parameters in the URL (`?statement_timeout=MS`) override them. */
const POOL_DEFAULTS: pg.PoolConfig = {
  // pg's default is to wait forever for a connection; a store must fail visibly instead.
  connectionTimeoutMillis: 10_000,
  // A statement or lock wait that hangs fails its batch (senders get storage_unavailable)
  // instead of stalling every sender of this node behind the one transaction in flight.
  statement_timeout: 30_000,
  // A transaction its client abandoned must not hold inbox-counter locks for long.
  idle_in_transaction_session_timeout: 60_000,
};
const INBOX_FULL: InsertOutcome = Object.freeze({ status: 'inbox_full' });

/** Ordered: index i brings the schema from version i to i + 1. Never edit a shipped entry. */
const MIGRATIONS: readonly ((t: (table: string) => string) => string)[] = [
  (t) => `
    CREATE TABLE ${t('messages')} (
      seq BIGSERIAL NOT NULL,
      id TEXT PRIMARY KEY,
      tenant_id TEXT NOT NULL,
      sender_id TEXT NOT NULL,
      recipient_id TEXT NOT NULL,
      conv TEXT NOT NULL,
      content TEXT NOT NULL,
      key_id TEXT,
      reply_to TEXT,
      attachments TEXT,
      mentions TEXT NOT NULL,
      hashtags TEXT NOT NULL,
      links TEXT NOT NULL,
      timestamp BIGINT NOT NULL,
      client_msg_id TEXT,
      acked_at BIGINT
    );
    CREATE UNIQUE INDEX messages_dedupe ON ${t('messages')} (tenant_id, sender_id, client_msg_id)
      WHERE client_msg_id IS NOT NULL;
    CREATE INDEX messages_pending ON ${t('messages')} (tenant_id, recipient_id, seq) WHERE acked_at IS NULL;
    CREATE INDEX messages_conv ON ${t('messages')} (tenant_id, conv, seq);
    CREATE INDEX messages_timestamp ON ${t('messages')} (timestamp);
    CREATE TABLE ${t('inbox_counts')} (
      tenant_id TEXT NOT NULL,
      recipient_id TEXT NOT NULL,
      unacked BIGINT NOT NULL,
      PRIMARY KEY (tenant_id, recipient_id)
    );`,
];

function buildSql(t: (table: string) => string) {
  // Both directions of one conversation in one tenant, and nothing else (see conversationKey).
  const conversation =
    'tenant_id = $1 AND conv = $2 AND ((sender_id = $3 AND recipient_id = $4) OR (sender_id = $4 AND recipient_id = $3))';
  return {
    findDuplicates: `
      SELECT ${MESSAGE_COLUMNS} FROM ${t('messages')} m
      JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(t, s, c)
        ON m.tenant_id = k.t AND m.sender_id = k.s AND m.client_msg_id = k.c
      WHERE m.client_msg_id IS NOT NULL`,
    // Create missing counters and lock every counter of the batch, in sorted order (no deadlock
    // between two nodes' batches), returning the current value in the same round trip.
    lockCounts: `
      INSERT INTO ${t('inbox_counts')} AS c (tenant_id, recipient_id, unacked)
      SELECT t, r, 0 FROM unnest($1::text[], $2::text[]) AS k(t, r) ORDER BY t, r
      ON CONFLICT (tenant_id, recipient_id) DO UPDATE SET unacked = c.unacked
      RETURNING tenant_id, recipient_id, unacked`,
    // A concurrent node may have stored the same (tenant, sender, clientMsgId) since
    // findDuplicates: that row is skipped here and reported as a duplicate. Counters grow by
    // exactly the rows inserted.
    insert: `
      WITH ins AS (
        INSERT INTO ${t('messages')} (id, tenant_id, sender_id, recipient_id, conv, content, key_id, reply_to,
          attachments, mentions, hashtags, links, timestamp, client_msg_id)
        SELECT id, tenant_id, sender_id, recipient_id, conv, content, key_id, reply_to,
          attachments, mentions, hashtags, links, timestamp, client_msg_id
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
          $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::text[])
          WITH ORDINALITY AS u(id, tenant_id, sender_id, recipient_id, conv, content, key_id, reply_to,
            attachments, mentions, hashtags, links, timestamp, client_msg_id, ord)
        ORDER BY ord
        ON CONFLICT (tenant_id, sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING
        RETURNING id, tenant_id, recipient_id
      ), bump AS (
        UPDATE ${t('inbox_counts')} c SET unacked = c.unacked + x.n
        FROM (SELECT tenant_id, recipient_id, count(*) AS n FROM ins GROUP BY tenant_id, recipient_id) x
        WHERE c.tenant_id = x.tenant_id AND c.recipient_id = x.recipient_id
      )
      SELECT id FROM ins`,
    pending: `
      SELECT ${MESSAGE_COLUMNS} FROM ${t('messages')}
      WHERE tenant_id = $1 AND recipient_id = $2 AND acked_at IS NULL ORDER BY seq LIMIT $3`,
    // One statement, so the ack and the counter change are atomic without an explicit transaction.
    ack: `
      WITH a AS (
        UPDATE ${t('messages')} SET acked_at = $4
        WHERE tenant_id = $1 AND recipient_id = $2 AND acked_at IS NULL AND id = ANY($3::text[])
        RETURNING 1
      ), n AS (SELECT count(*) AS n FROM a), dec AS (
        UPDATE ${t('inbox_counts')} c SET unacked = c.unacked - n.n FROM n
        WHERE c.tenant_id = $1 AND c.recipient_id = $2 AND n.n > 0
      )
      SELECT n.n::int AS n FROM n`,
    history: `
      SELECT ${MESSAGE_COLUMNS} FROM ${t('messages')}
      WHERE ${conversation} ORDER BY seq DESC LIMIT $5`,
    // A cursor outside this conversation yields NULL, and `seq < NULL` matches nothing.
    historyBefore: `
      SELECT ${MESSAGE_COLUMNS} FROM ${t('messages')}
      WHERE ${conversation} AND seq < (SELECT seq FROM ${t('messages')} WHERE id = $6 AND ${conversation})
      ORDER BY seq DESC LIMIT $5`,
    prune: `
      WITH d AS (
        DELETE FROM ${t('messages')} WHERE timestamp < $1 RETURNING tenant_id, recipient_id, acked_at
      ), x AS (
        SELECT tenant_id, recipient_id, count(*) AS n FROM d WHERE acked_at IS NULL GROUP BY tenant_id, recipient_id
      ), dec AS (
        UPDATE ${t('inbox_counts')} c SET unacked = c.unacked - x.n FROM x
        WHERE c.tenant_id = x.tenant_id AND c.recipient_id = x.recipient_id
      )
      SELECT count(*)::int AS n FROM d`,
  };
}

type SqlName = keyof ReturnType<typeof buildSql>;

/** PostgreSQL text cannot hold U+0000: one such value would fail the whole batch, so replace it. */
function pgText(value: string): string {
  return value.indexOf('\u0000') === -1 ? value : value.replaceAll('\u0000', '\uFFFD');
}

/** Map key of a (tenant, user) pair or a (tenant, sender, clientMsgId) triple. */
function key(...parts: string[]): string {
  return parts.join('\u0000');
}

export class PostgresStore implements Store {
  readonly #pool: pg.Pool;
  readonly #schema: string;
  readonly #codec: MessageCodec;
  readonly #sql: Record<SqlName, pg.QueryConfig>;
  readonly #t: (table: string) => string;
  #initialized = false;
  #closed = false;

  constructor(connectionString: string, options: PostgresStoreOptions = {}) {
    const schema = options.schema ?? 'public';
    if (!SCHEMA_NAME.test(schema)) throw new Error(`PostgreSQL schema "${schema}" must match ${SCHEMA_NAME.source}`);
    this.#schema = schema;
    this.#t = (table) => `"${schema}".${table}`;
    this.#codec = new MessageCodec(options.cipher);
    const texts = buildSql(this.#t);
    // Statement names are per connection: include the schema so two stores may share a server.
    this.#sql = Object.fromEntries(
      Object.entries(texts).map(([name, text]) => [name, { name: `rampart_${schema}_${name}`, text }]),
    ) as Record<SqlName, pg.QueryConfig>;
    this.#pool = new pg.Pool({ ...POOL_DEFAULTS, ...options.pool, connectionString });
    this.#pool.on('error', options.onPoolError ?? (() => {}));
  }

  async init(): Promise<void> {
    this.#open();
    if (this.#initialized) return;
    await this.#transaction(async (client) => {
      // Two nodes starting together: the second waits here, then sees the first one's migrations.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`rampart.migrate.${this.#schema}`]);
      if (this.#schema !== 'public') await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.#schema}"`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${this.#t('schema_version')} (
           version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
      );
      const { rows } = await client.query<{ v: number }>(
        `SELECT coalesce(max(version), 0)::int AS v FROM ${this.#t('schema_version')}`,
      );
      const current = rows[0]?.v ?? 0;
      if (current > MIGRATIONS.length) {
        throw new Error(`PostgreSQL schema version ${current} is newer than this build supports (${MIGRATIONS.length})`);
      }
      for (let v = current; v < MIGRATIONS.length; v++) {
        await client.query(MIGRATIONS[v]!(this.#t));
        await client.query(`INSERT INTO ${this.#t('schema_version')} (version) VALUES ($1)`, [v + 1]);
      }
    });
    this.#initialized = true;
  }

  async insertMessages(batch: readonly StoredMessage[], options: InsertOptions): Promise<InsertOutcome[]> {
    this.#ready();
    if (batch.length === 0) return [];
    return this.#transaction((client) => this.#insertBatch(client, batch, options.maxInboxSize));
  }

  async pendingFor(tenantId: string, recipientId: string, limit: number): Promise<StoredMessage[]> {
    this.#ready();
    if (!(limit >= 1)) return [];
    const { rows } = await this.#pool.query<MessageRow>({
      ...this.#sql.pending,
      values: [tenantId, recipientId, Math.floor(limit)],
    });
    return this.#decodeAll(rows);
  }

  async ack(tenantId: string, recipientId: string, messageIds: readonly string[]): Promise<number> {
    this.#ready();
    if (messageIds.length === 0) return 0;
    const { rows } = await this.#pool.query<{ n: number }>({
      ...this.#sql.ack,
      values: [tenantId, recipientId, messageIds, Date.now()],
    });
    return rows[0]?.n ?? 0;
  }

  async history(tenantId: string, userId: string, peerId: string, query: HistoryQuery): Promise<StoredMessage[]> {
    this.#ready();
    if (!(query.limit >= 1)) return [];
    const values: unknown[] = [tenantId, conversationKey(userId, peerId), userId, peerId, Math.floor(query.limit)];
    const sql = query.before === undefined ? this.#sql.history : this.#sql.historyBefore;
    if (query.before !== undefined) values.push(query.before);
    const { rows } = await this.#pool.query<MessageRow>({ ...sql, values });
    return this.#decodeAll(rows);
  }

  async pruneOlderThan(olderThan: number): Promise<number> {
    this.#ready();
    return this.#transaction(async (client) => {
      // Background housekeeping over a possibly large backlog: exempt from statement_timeout.
      await client.query('SET LOCAL statement_timeout = 0');
      const { rows } = await client.query<{ n: number }>({ ...this.#sql.prune, values: [olderThan] });
      return rows[0]?.n ?? 0;
    });
  }

  async ping(): Promise<void> {
    this.#open();
    await this.#pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  #open(): void {
    if (this.#closed) throw new Error('PostgresStore is closed');
  }

  #ready(): void {
    this.#open();
    if (!this.#initialized) throw new Error('PostgresStore is not initialised: call init() first');
  }

  #decodeAll(rows: MessageRow[]): StoredMessage[] {
    const out = new Array<StoredMessage>(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = this.#codec.decode(rows[i]!);
    return out;
  }

  async #transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      // A connection that cannot even roll back is discarded rather than returned to the pool.
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async #insertBatch(client: pg.PoolClient, batch: readonly StoredMessage[], maxInboxSize: number): Promise<InsertOutcome[]> {
    const out = new Array<InsertOutcome | undefined>(batch.length);
    // PostgreSQL would store the clientMsgId with U+0000 replaced; compare in that form.
    const dedupeKeys = batch.map((m) =>
      m.clientMsgId === undefined ? undefined : key(m.tenantId, m.senderId, pgText(m.clientMsgId)),
    );

    // 1. Lock the inbox counters of every recipient in the batch (this serialises writers to the
    // same inbox across nodes) and read them.
    const inboxes = new Map<string, { tenant: string; recipient: string }>();
    for (const m of batch) inboxes.set(key(m.tenantId, m.recipientId), { tenant: m.tenantId, recipient: m.recipientId });
    const tenants: string[] = [];
    const recipients: string[] = [];
    for (const inbox of inboxes.values()) {
      tenants.push(inbox.tenant);
      recipients.push(inbox.recipient);
    }
    const { rows: counts } = await client.query<{ tenant_id: string; recipient_id: string; unacked: string }>({
      ...this.#sql.lockCounts,
      values: [tenants, recipients],
    });
    const unacked = new Map<string, number>();
    for (const row of counts) unacked.set(key(row.tenant_id, row.recipient_id), Number(row.unacked));

    // 2. Already stored (tenant, sender, clientMsgId): a duplicate, answered before any inbox check.
    // Read after the lock, so a retry another node just committed to this inbox is seen here.
    const existing = await this.#findDuplicates(client, batch, () => true);
    for (let i = 0; i < batch.length; i++) {
      const k = dedupeKeys[i];
      const first = k === undefined ? undefined : existing.get(k);
      if (first !== undefined) out[i] = { status: 'duplicate', message: first };
    }

    // 3. Decide the rest row by row, in input order.
    const ids: string[] = [];
    const tenantCol: string[] = [];
    const senderCol: string[] = [];
    const recipientCol: string[] = [];
    const convs: string[] = [];
    const contents: string[] = [];
    const keyIds: (string | null)[] = [];
    const replyTos: (string | null)[] = [];
    const attachments: (string | null)[] = [];
    const mentions: string[] = [];
    const hashtags: string[] = [];
    const links: string[] = [];
    const timestamps: number[] = [];
    const clientMsgIds: (string | null)[] = [];
    const inserting: number[] = [];
    const firstInBatch = new Map<string, StoredMessage>();
    for (let i = 0; i < batch.length; i++) {
      if (out[i] !== undefined) continue;
      const m = batch[i]!;
      const k = dedupeKeys[i];
      const earlier = k === undefined ? undefined : firstInBatch.get(k);
      if (earlier !== undefined) {
        out[i] = { status: 'duplicate', message: earlier };
        continue;
      }
      const inboxKey = key(m.tenantId, m.recipientId);
      const count = unacked.get(inboxKey) ?? 0;
      if (count >= maxInboxSize) {
        out[i] = INBOX_FULL;
        continue;
      }
      unacked.set(inboxKey, count + 1);
      if (k !== undefined) firstInBatch.set(k, m);
      const f = this.#codec.encode(m);
      ids.push(m.id);
      tenantCol.push(m.tenantId);
      senderCol.push(m.senderId);
      recipientCol.push(m.recipientId);
      convs.push(conversationKey(m.senderId, m.recipientId));
      contents.push(pgText(f.content));
      keyIds.push(f.keyId);
      replyTos.push(m.replyTo ?? null);
      attachments.push(f.attachments);
      mentions.push(f.mentions);
      hashtags.push(f.hashtags);
      links.push(f.links);
      timestamps.push(m.timestamp);
      clientMsgIds.push(m.clientMsgId === undefined ? null : pgText(m.clientMsgId));
      inserting.push(i);
      out[i] = { status: 'stored', message: m };
    }
    if (inserting.length === 0) return out as InsertOutcome[];

    // 4. One multi-row INSERT. A row another node stored meanwhile (same dedupe key) is missing
    // from RETURNING: report the winner as the duplicate.
    const values = [ids, tenantCol, senderCol, recipientCol, convs, contents, keyIds, replyTos, attachments, mentions, hashtags, links, timestamps, clientMsgIds];
    const { rows: inserted } = await client.query<{ id: string }>({ ...this.#sql.insert, values });
    if (inserted.length !== inserting.length) {
      const storedIds = new Set(inserted.map((row) => row.id));
      const lost = new Set(inserting.filter((i) => !storedIds.has(batch[i]!.id)));
      const lostMessages = new Set([...lost].map((i) => batch[i]!));
      const winners = await this.#findDuplicates(client, batch, (i) => lost.has(i));
      for (let i = 0; i < batch.length; i++) {
        // The lost row itself, and any later row of this batch that was its in-batch duplicate.
        const outcome = out[i]!;
        const k = dedupeKeys[i];
        if (k === undefined || outcome.status === 'inbox_full' || !lostMessages.has(outcome.message)) continue;
        const winner = winners.get(k);
        if (winner === undefined) throw new Error(`message ${batch[i]!.id} was neither stored nor found as a duplicate`);
        out[i] = { status: 'duplicate', message: winner };
      }
    }
    return out as InsertOutcome[];
  }

  /** Stored messages matching the dedupe keys of the selected batch rows, by dedupe key. */
  async #findDuplicates(
    client: pg.PoolClient,
    batch: readonly StoredMessage[],
    select: (index: number) => boolean,
  ): Promise<Map<string, StoredMessage>> {
    const found = new Map<string, StoredMessage>();
    const tenants: string[] = [];
    const senders: string[] = [];
    const clientIds: string[] = [];
    for (let i = 0; i < batch.length; i++) {
      const m = batch[i]!;
      if (m.clientMsgId === undefined || !select(i)) continue;
      tenants.push(m.tenantId);
      senders.push(m.senderId);
      clientIds.push(pgText(m.clientMsgId));
    }
    if (tenants.length === 0) return found;
    const { rows } = await client.query<MessageRow>({ ...this.#sql.findDuplicates, values: [tenants, senders, clientIds] });
    for (const row of rows) found.set(key(row.tenant_id, row.sender_id, row.client_msg_id!), this.#codec.decode(row));
    return found;
  }
}
