/**
 * The audit log port: one append-only record per admin action (who, what, target, when, outcome,
 * from which IP) — never a credential or a token. Kept apart from the message `Store`: its adapters
 * open their own connection on the same `storage` URL and keep their own versioned migrations in
 * their own version table (`audit_schema_version`), so the two schemas evolve independently.
 */

export interface AuditEntry {
  /** Name of the admin credential that acted. */
  actor: string;
  /** Stable action name: `list_sessions`, `disconnect`, `ban`, `unban`, `revoke`. */
  action: string;
  /** What was acted on: `user:<tenant>:<id>`, `session:<id>`, `jti:<id>`. */
  target: string;
  /** `ok`, `not_found`, `failed`. */
  outcome: string;
  ip: string;
  /** Small, non-secret parameters (a ban's duration), as JSON. */
  detail?: Record<string, string | number | boolean>;
}

export interface AuditRecord extends AuditEntry {
  /** Increasing: the paging cursor. */
  id: number;
  /** ms since epoch. */
  at: number;
}

export interface AuditPage {
  records: AuditRecord[];
  /** Pass as `before` for the next (older) page; absent on the last page. */
  next?: number;
}

export interface AuditLog {
  append(entry: AuditEntry, at?: number): Promise<AuditRecord>;
  /** Newest first; records with `id < before` when given. */
  page(query: { before?: number; limit: number }): Promise<AuditPage>;
  close(): Promise<void>;
}

/** A raw row → a record (both adapters store `detail` as JSON text). */
export function recordFromRow(row: {
  id: number | string;
  at: number | string;
  actor: string;
  action: string;
  target: string;
  outcome: string;
  ip: string;
  detail: string | null;
}): AuditRecord {
  const record: AuditRecord = {
    id: Number(row.id),
    at: Number(row.at),
    actor: row.actor,
    action: row.action,
    target: row.target,
    outcome: row.outcome,
    ip: row.ip,
  };
  if (row.detail !== null) record.detail = JSON.parse(row.detail) as Record<string, string | number | boolean>;
  return record;
}

export function pageOf(records: AuditRecord[], limit: number): AuditPage {
  // One row more than asked tells whether an older page exists.
  if (records.length <= limit) return { records };
  const page = records.slice(0, limit);
  return { records: page, next: page[page.length - 1]!.id };
}
