/**
 * The audit log on the `storage` URL: `sqlite:PATH[?synchronous=…]` → the same file,
 * `postgres://…[?schema=NAME]` → the same database and schema. Parsed here rather than through the
 * message store's opener so the two stay independent. Errors name the scheme only, never the URL
 * (a SQLite path, which carries no password, is named). The SQLite file is prepared as the store
 * prepares it (directory 0700 and file 0600 when Rampart creates them).
 */
import { cannotOpenSqlite, prepareSqliteFile } from '../store/open-store.js';
import type { AuditLog } from './audit-log.js';
import { SqliteAuditLog } from './sqlite-audit-log.js';
import { PostgresAuditLog } from './postgres-audit-log.js';

export async function openAuditLog(storage: string): Promise<AuditLog> {
  if (storage.startsWith('sqlite:')) {
    let path = storage.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2);
    path = path.split('?')[0]!; // `synchronous` is the store's concern; the audit log keeps SQLite's WAL default
    if (path === '') throw new Error('storage: "sqlite:" needs a file path');
    prepareSqliteFile(path);
    try {
      return new SqliteAuditLog(path);
    } catch (err) {
      throw cannotOpenSqlite(path, err);
    }
  }
  if (storage.startsWith('postgres://') || storage.startsWith('postgresql://')) {
    const { connectionString, schema } = splitSchema(storage);
    return PostgresAuditLog.open(connectionString, schema);
  }
  throw new Error('storage: the audit log needs "sqlite:PATH" or a "postgres://" URL');
}

/** `?schema=NAME` is ours, not pg's: taken off the URL (the authority is left untouched). */
function splitSchema(url: string): { connectionString: string; schema?: string } {
  const q = url.indexOf('?');
  if (q === -1) return { connectionString: url };
  const params = new URLSearchParams(url.slice(q + 1));
  const schema = params.get('schema') ?? undefined;
  params.delete('schema');
  const rest = params.toString();
  return { connectionString: url.slice(0, q) + (rest === '' ? '' : `?${rest}`), ...(schema !== undefined ? { schema } : {}) };
}
