/**
 * The audit log on the `storage` URL: `sqlite:PATH[?synchronous=…]` → the same file,
 * `postgres://…[?schema=NAME]` → the same database and schema. Parsed here rather than through the
 * message store's opener so the two stay independent. Errors name the scheme only, never the URL.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { AuditLog } from './audit-log.js';
import { SqliteAuditLog } from './sqlite-audit-log.js';
import { PostgresAuditLog } from './postgres-audit-log.js';

export async function openAuditLog(storage: string): Promise<AuditLog> {
  if (storage.startsWith('sqlite:')) {
    let path = storage.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2);
    path = path.split('?')[0]!; // `synchronous` is the store's concern; the audit log keeps SQLite's WAL default
    if (path === '') throw new Error('storage: "sqlite:" needs a file path');
    if (path !== ':memory:') mkdirSync(dirname(resolve(path)), { recursive: true });
    return new SqliteAuditLog(path);
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
