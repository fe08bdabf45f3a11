/**
 * Audit log in the PostgreSQL database of `storage` (same `?schema=NAME`), through its own small
 * pg Pool. Migrations: append-only, in `audit_schema_version`, under an advisory lock so several
 * nodes may start together.
 */
import pg from 'pg';
import { pageOf, recordFromRow, type AuditEntry, type AuditLog, type AuditPage, type AuditRecord } from './audit-log.js';
import { inTransaction, withQueryTimeout } from '../store/pg-transaction.js';

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Ordered: index i brings the audit schema from version i to i + 1. Never edit a shipped entry. */
const MIGRATIONS: readonly ((t: (table: string) => string) => string)[] = [
  (t) => `
    CREATE TABLE ${t('audit_log')} (
      id BIGSERIAL PRIMARY KEY,
      at BIGINT NOT NULL,
      actor TEXT NOT NULL,
      action TEXT NOT NULL,
      target TEXT NOT NULL,
      outcome TEXT NOT NULL,
      ip TEXT NOT NULL,
      detail TEXT
    );`,
];

type Row = Parameters<typeof recordFromRow>[0];

export class PostgresAuditLog implements AuditLog {
  private readonly pool: pg.Pool;
  private readonly t: (table: string) => string;

  private constructor(connectionString: string, private readonly schema: string) {
    if (!SCHEMA_NAME.test(schema)) throw new Error('storage: "schema" must be a lower-case identifier');
    this.t = (table) => `"${schema}".${table}`;
    // Given up on our side too when the connection stops answering (pg-transaction.ts withQueryTimeout).
    this.pool = new pg.Pool(withQueryTimeout({ connectionString, max: 2, connectionTimeoutMillis: 10_000, statement_timeout: 10_000 }));
    this.pool.on('error', () => {}); // an idle connection dropped; the next query reports an outage
  }

  static async open(connectionString: string, schema = 'public'): Promise<PostgresAuditLog> {
    const log = new PostgresAuditLog(connectionString, schema);
    try {
      await log.migrate();
    } catch (err) {
      await log.close();
      throw err;
    }
    return log;
  }

  async append(entry: AuditEntry, at = Date.now()): Promise<AuditRecord> {
    const { rows } = await this.pool.query<{ id: string }>(
      `INSERT INTO ${this.t('audit_log')} (at, actor, action, target, outcome, ip, detail) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
      [at, entry.actor, entry.action, entry.target, entry.outcome, entry.ip, entry.detail === undefined ? null : JSON.stringify(entry.detail)],
    );
    return { ...entry, id: Number(rows[0]!.id), at };
  }

  async page(query: { before?: number; limit: number }): Promise<AuditPage> {
    const { rows } =
      query.before === undefined
        ? await this.pool.query<Row>(`SELECT * FROM ${this.t('audit_log')} ORDER BY id DESC LIMIT $1`, [query.limit + 1])
        : await this.pool.query<Row>(`SELECT * FROM ${this.t('audit_log')} WHERE id < $1 ORDER BY id DESC LIMIT $2`, [query.before, query.limit + 1]);
    return pageOf(rows.map(recordFromRow), query.limit);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private async migrate(): Promise<void> {
    await inTransaction(this.pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`rampart.audit.migrate.${this.schema}`]);
      if (this.schema !== 'public') await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${this.t('audit_schema_version')} (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
      const { rows } = await client.query<{ v: number }>(`SELECT coalesce(max(version), 0)::int AS v FROM ${this.t('audit_schema_version')}`);
      const current = rows[0]?.v ?? 0;
      if (current > MIGRATIONS.length) throw new Error(`PostgreSQL audit schema version ${current} is newer than this build supports (${MIGRATIONS.length})`);
      for (let v = current; v < MIGRATIONS.length; v++) {
        await client.query(MIGRATIONS[v]!(this.t));
        await client.query(`INSERT INTO ${this.t('audit_schema_version')} (version) VALUES ($1)`, [v + 1]);
      }
    });
  }
}
