/**
 * The audit log on the `storage` URL: `sqlite:PATH[?synchronous=…]` → the same file,
 * `postgres://…[?schema=NAME]` → the same database and schema. The URL is read by the message
 * store's own parsers (open-store.ts), so the two can never disagree on the file or the schema (a
 * `#fragment` or a repeated `schema` once put the audit log elsewhere). Errors name the scheme
 * only, never the URL (a SQLite path, which carries no password, is named). The SQLite file is
 * prepared as the store prepares it (directory 0700 and file 0600 when Rampart creates them).
 */
import { cannotOpenSqlite, prepareSqliteFile, sqlitePath, takeSchemaParam } from '../store/open-store.js';
import type { AuditLog } from './audit-log.js';
import { SqliteAuditLog } from './sqlite-audit-log.js';
import { PostgresAuditLog } from './postgres-audit-log.js';

export async function openAuditLog(storage: string): Promise<AuditLog> {
  if (storage.startsWith('sqlite:')) {
    // `synchronous` is the store's concern; the audit log keeps SQLite's WAL default.
    const path = sqlitePath(storage);
    if (path === '') throw new Error('storage: "sqlite:" needs a file path');
    prepareSqliteFile(path);
    try {
      return new SqliteAuditLog(path);
    } catch (err) {
      throw cannotOpenSqlite(path, err);
    }
  }
  if (storage.startsWith('postgres://') || storage.startsWith('postgresql://')) {
    const { connectionString, schema } = takeSchemaParam(storage);
    return PostgresAuditLog.open(connectionString, schema);
  }
  throw new Error('storage: the audit log needs "sqlite:PATH" or a "postgres://" URL');
}
