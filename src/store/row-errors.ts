/**
 * Errors that belong to one row of a batch, not to the database or the connection: a value the
 * database refuses (PostgreSQL classes 22 and 23, a trigger's RAISE; SQLite constraint, type and
 * size errors). The group committer stores the rest of such a batch without that row instead of
 * failing every sender in it. Timeouts, lost connections, a busy or full database are not: they
 * would fail any batch, and retrying its parts would only multiply the load.
 */
const PG_ROW_CLASSES = new Set(['22', '23']);
const PG_RAISE = 'P0001';
const SQLITE_ROW = /^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)/;

export function isRowError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return false;
  if (code.startsWith('SQLITE_')) return SQLITE_ROW.test(code);
  return code.length === 5 && (PG_ROW_CLASSES.has(code.slice(0, 2)) || code === PG_RAISE);
}
