/**
 * UUID helpers shared by the storage adapters. On the wire and in the Store port a UUID is a
 * lowercase canonical string; SQLite keeps it as a 16-byte BLOB, PostgreSQL as `uuid`.
 *
 * Exports (stable):
 * - `uuidToBytes(uuid)` / `bytesToUuid(bytes)` — canonical string ↔ 16 bytes (SQLite BLOB).
 * - `isUuid(value)` — canonical-form check (any case).
 * - `uuidV7LowerBound(ms)` — the smallest UUIDv7 string of millisecond `ms`: every UUIDv7 id
 *   generated before `ms` sorts below it, both as a string and as bytes (prune by time through
 *   the id index: `DELETE … WHERE id < bound`).
 */

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** Canonical UUID string → 16 bytes. Throws on anything else (never stores a malformed id). */
export function uuidToBytes(uuid: string): Buffer {
  if (!UUID.test(uuid)) throw new TypeError(`not a UUID: ${JSON.stringify(uuid).slice(0, 60)}`);
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

/** 16 bytes → lowercase canonical UUID string. */
export function bytesToUuid(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  if (hex.length !== 32) throw new TypeError(`a UUID is 16 bytes, got ${bytes.byteLength}`);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The smallest UUIDv7 (as a canonical string) whose timestamp is `ms` (clamped to 0…2^48−1). */
export function uuidV7LowerBound(ms: number): string {
  const t = Math.min(Math.max(0, Math.floor(Number.isFinite(ms) ? ms : 0)), 2 ** 48 - 1);
  const ts = t.toString(16).padStart(12, '0');
  return `${ts.slice(0, 8)}-${ts.slice(8, 12)}-0000-0000-000000000000`;
}
