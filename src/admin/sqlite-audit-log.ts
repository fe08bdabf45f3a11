/**
 * Audit log in the SQLite file of `storage`, through its own better-sqlite3 connection (WAL lets
 * it share the file with the message store). Migrations: append-only, in `audit_schema_version`.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { Database } from '../store/sqlite-driver.js';
import { pageOf, recordFromRow, type AuditEntry, type AuditLog, type AuditPage, type AuditRecord } from './audit-log.js';

/** Ordered: index i brings the audit schema from version i to i + 1. Never edit a shipped entry. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE audit_log (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at INTEGER NOT NULL,
     actor TEXT NOT NULL,
     action TEXT NOT NULL,
     target TEXT NOT NULL,
     outcome TEXT NOT NULL,
     ip TEXT NOT NULL,
     detail TEXT
   );`,
];

type Row = Parameters<typeof recordFromRow>[0];

export class SqliteAuditLog implements AuditLog {
  private readonly db: BetterSqlite3.Database;
  private readonly insert: BetterSqlite3.Statement<[number, string, string, string, string, string, string | null]>;
  private readonly newest: BetterSqlite3.Statement<[number], Row>;
  private readonly older: BetterSqlite3.Statement<[number, number], Row>;

  constructor(path: string, busyTimeoutMs = 5000) {
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`busy_timeout = ${busyTimeoutMs}`);
      migrate(db);
      this.insert = db.prepare('INSERT INTO audit_log (at, actor, action, target, outcome, ip, detail) VALUES (?, ?, ?, ?, ?, ?, ?)');
      this.newest = db.prepare('SELECT * FROM audit_log ORDER BY id DESC LIMIT ?');
      this.older = db.prepare('SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?');
    } catch (err) {
      db.close();
      throw err;
    }
    this.db = db;
  }

  async append(entry: AuditEntry, at = Date.now()): Promise<AuditRecord> {
    const detail = entry.detail === undefined ? null : JSON.stringify(entry.detail);
    const { lastInsertRowid } = this.insert.run(at, entry.actor, entry.action, entry.target, entry.outcome, entry.ip, detail);
    return { ...entry, id: Number(lastInsertRowid), at };
  }

  async page(query: { before?: number; limit: number }): Promise<AuditPage> {
    const rows = query.before === undefined ? this.newest.all(query.limit + 1) : this.older.all(query.before, query.limit + 1);
    return pageOf(rows.map(recordFromRow), query.limit);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

function migrate(db: BetterSqlite3.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS audit_schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  db.transaction(() => {
    const current = db.prepare<[], number>('SELECT coalesce(max(version), 0) FROM audit_schema_version').pluck().get() ?? 0;
    if (current > MIGRATIONS.length) throw new Error(`SQLite audit schema version ${current} is newer than this build supports (${MIGRATIONS.length})`);
    const record = db.prepare<[number, number]>('INSERT INTO audit_schema_version (version, applied_at) VALUES (?, ?)');
    for (let v = current; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v]!);
      record.run(v + 1, Date.now());
    }
  }).immediate();
}
