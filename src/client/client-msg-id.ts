/**
 * Idempotency keys for sends: `m-` + a UUIDv7 (48 bits of millisecond time, then random bits).
 * Time first, so the server's dedupe index receives them in order: each new key lands at the
 * right edge of the index instead of in a random page (measured with SQLite: see
 * docs/benchmarks.md). Random bits come from WebCrypto when the platform has it.
 */
function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  const c = globalThis.crypto;
  if (c && typeof c.getRandomValues === 'function') c.getRandomValues(out);
  else for (let i = 0; i < n; i++) out[i] = Math.floor(Math.random() * 256);
  return out;
}

const hex = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

export function newClientMsgId(now: number = Date.now()): string {
  const ts = Math.max(0, Math.floor(now)).toString(16).padStart(12, '0').slice(-12);
  const r = randomBytes(10);
  r[0] = 0x70 | (r[0]! & 0x0f); // version 7
  r[2] = 0x80 | (r[2]! & 0x3f); // RFC 9562 variant
  const h = hex(r);
  return `m-${ts.slice(0, 8)}-${ts.slice(8, 12)}-${h.slice(0, 4)}-${h.slice(4, 8)}-${h.slice(8, 20)}`;
}
