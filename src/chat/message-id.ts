/**
 * Message ids are UUIDv7 (RFC 9562): 48 bits of millisecond time, then random bits. Time-ordered
 * ids append to the right edge of the storage index instead of dirtying a random B-tree page per
 * row (measured with SQLite: 43 → 32 µs per stored message on this machine's disk).
 *
 * Every stored event takes one, so the random part comes from a pool of CSPRNG bytes (as
 * `crypto.randomUUID` keeps its own) turned into hex by table, not from a `randomUUID()` sliced
 * and re-joined: 0.45 → 0.19 µs per id here.
 */
import { randomFillSync } from 'node:crypto';

/** Byte → two lowercase hex digits. */
const BYTE_HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
/** Random bytes per id: 74 random bits (12 + 62) rounded up. */
const RANDOM_BYTES = 10;
const pool = Buffer.allocUnsafe(RANDOM_BYTES * 512);
let poolAt = pool.length;

/** `now`: milliseconds since the epoch (fractions dropped), below 2^48 (the year 10889). */
export function messageId(now: number = Date.now()): string {
  // Out of range, the hex below would wrap into a valid-looking id at the wrong time (and sort, and
  // be pruned, as that time): refuse it, as storing a malformed id always was.
  if (!(now >= 0 && now < 2 ** 48)) throw new RangeError(`message id time out of range: ${now}`);
  if (poolAt + RANDOM_BYTES > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const b = pool;
  const r = poolAt;
  poolAt += RANDOM_BYTES;
  const high = BYTE_HEX[Math.floor(now / 2 ** 40) & 255]! + BYTE_HEX[Math.floor(now / 2 ** 32) & 255]!;
  const low = (now % 2 ** 32) >>> 0;
  return (
    high +
    BYTE_HEX[low >>> 24]! +
    BYTE_HEX[(low >>> 16) & 255]! +
    '-' +
    BYTE_HEX[(low >>> 8) & 255]! +
    BYTE_HEX[low & 255]! +
    '-7' +
    BYTE_HEX[b[r]!]![0]! + // 12 random bits after the version
    BYTE_HEX[b[r + 1]!]! +
    '-' +
    BYTE_HEX[0x80 | (b[r + 2]! & 0x3f)]! + // the variant (10xx), then 62 random bits
    BYTE_HEX[b[r + 3]!]! +
    '-' +
    BYTE_HEX[b[r + 4]!]! +
    BYTE_HEX[b[r + 5]!]! +
    BYTE_HEX[b[r + 6]!]! +
    BYTE_HEX[b[r + 7]!]! +
    BYTE_HEX[b[r + 8]!]! +
    BYTE_HEX[b[r + 9]!]!
  );
}
