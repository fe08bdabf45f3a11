/**
 * Small value helpers every part of the PostgreSQL adapter uses: text PostgreSQL can store, map
 * keys of composite ids, and the UUID check every id from a client passes before it reaches SQL.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** PostgreSQL text cannot hold U+0000: one such value would fail the whole batch, so replace it. */
export function pgText(value: string): string {
  return value.indexOf('\u0000') === -1 ? value : value.replaceAll('\u0000', '\uFFFD');
}

/** Map key of a (tenant, user) pair, or (sender, clientMsgId). */
export function key(...parts: (string | number)[]): string {
  return parts.join('\u0000');
}

export function isUuid(value: string): boolean {
  return UUID.test(value);
}
