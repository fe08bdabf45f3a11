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

/** Hex digit value by char code (0–9, a–f, A–F), -1 for anything else. */
const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) HEX[97 + i] = HEX[65 + i] = 10 + i;

/** Canonical UUID string → 16 bytes. Throws on anything else (never stores a malformed id). */
export function uuidToBytes(uuid: string): Buffer {
  // One pass over the characters (every message id goes through here): no regex, no temporary string.
  const out = Buffer.allocUnsafe(16);
  let ok = uuid.length === 36;
  for (let i = 0, j = 0; ok && i < 36; ) {
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      ok = uuid.charCodeAt(i) === 45; // '-'
      i++;
      continue;
    }
    const hi = HEX[uuid.charCodeAt(i) & 127]!;
    const lo = HEX[uuid.charCodeAt(i + 1) & 127]!;
    ok = hi >= 0 && lo >= 0 && uuid.charCodeAt(i) < 128 && uuid.charCodeAt(i + 1) < 128;
    out[j++] = (hi << 4) | lo;
    i += 2;
  }
  if (!ok) throw new TypeError(`not a UUID: ${JSON.stringify(uuid).slice(0, 60)}`);
  return out;
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
