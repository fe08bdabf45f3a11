/**
 * The PostgreSQL adapter's id caches: users.id by (tenant, uuid), direct conversations by their
 * pair, conversations by uuid, and the members known to have written. Ids never change, so only
 * committed rows are cached (a transaction's own ones once it commits), each map bounded by
 * starting over when full. Also finds or creates the user and direct-conversation rows they hold.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { directKey } from './message-codec.js';
import type { StoreSql } from './pg-store-sql.js';
import { isUuid, key } from './pg-values.js';

/** Entries each id cache may hold before it starts over (ids never change; this only bounds memory). */
export const CACHE_LIMIT = 100_000;
/** Entries the writers cache may hold before it starts over (bounds memory only). */
const WRITERS_CACHE_LIMIT = 100_000;

/** One write transaction, with the ids it created (cached only once it committed). */
export interface Tx {
  client: pg.PoolClient;
  newUsers: Map<string, number>;
  newDirects: Map<string, DirectConversation>;
  /** Members marked as having written (`conv user`). */
  newWriters: Set<string>;
}

export interface DirectConversation {
  id: number;
  uuid: string;
}

export class PgIdCaches {
  readonly #sql: StoreSql;
  readonly #idCacheLimit: number;
  /** (tenant, user uuid) → users.id, committed rows only. */
  readonly #userIds = new Map<string, number>();
  /** direct_key → conversation, committed rows only. */
  readonly #directs = new Map<string, DirectConversation>();
  /**
   * Members known (committed) to have written in a conversation, `conv user` (a group's: `conv
   * user joinedSeq`): their next messages skip the members update. Never stale in a harmful way:
   * the flag goes back only when a former member is added back, with a new joinedSeq, so a key
   * any node cached from the earlier membership no longer matches.
   */
  readonly #writers = new Set<string>();
  /** (tenant, two user uuids in order) → their direct conversation, once found (directConversationId). */
  readonly #directByPair = new Map<string, string>();
  /** (tenant, conversation uuid) → conversations.id and kind, committed rows only. */
  readonly #convIds = new Map<string, { id: number; kind: number }>();

  constructor(sql: StoreSql, idCacheLimit: number = CACHE_LIMIT) {
    this.#sql = sql;
    this.#idCacheLimit = idCacheLimit;
  }

  /** A conversation's id and kind by key(tenant, uuid), when cached. */
  conversation(k: string): { id: number; kind: number } | undefined {
    return this.#convIds.get(k);
  }

  /** Cache a committed conversation's id and kind (key(tenant, uuid)). */
  cacheConversation(k: string, c: { id: number; kind: number }): void {
    if (this.#convIds.size >= this.#idCacheLimit) this.#convIds.clear();
    this.#convIds.set(k, c);
  }

  /** Whether `wk` (`conv user`, a group's `conv user joinedSeq`) is known to have written. */
  isWriter(wk: string): boolean {
    return this.#writers.has(wk);
  }

  /** The direct conversation of two users, cached once found. */
  async directConversationId(pool: pg.Pool, tenantId: string, userId: string, peerId: string): Promise<string | undefined> {
    if (!isUuid(userId) || !isUuid(peerId)) return undefined;
    // Cached once found (a direct conversation never changes or goes away): no round trip per typing frame.
    const [x, y] = [userId.toLowerCase(), peerId.toLowerCase()].sort();
    const pair = key(tenantId, x!, y!);
    const known = this.#directByPair.get(pair);
    if (known !== undefined) return known;
    const a = this.#userIds.get(key(tenantId, x!));
    const b = this.#userIds.get(key(tenantId, y!));
    const written = a === undefined || b === undefined ? undefined : this.#directs.get(directKey(a, b));
    if (written !== undefined) return written.uuid; // this node wrote in it
    const { rows } = await pool.query<{ uuid: string }>({ ...this.#sql.directOf, values: [tenantId, userId, peerId] });
    const found = rows[0]?.uuid;
    if (found !== undefined) {
      if (this.#directByPair.size >= this.#idCacheLimit) this.#directByPair.clear();
      this.#directByPair.set(pair, found);
    }
    return found;
  }

  /** users.id of every (tenant, uuid), created when missing. Keys: key(tenant, lowercase uuid). */
  async resolveUsers(tx: Tx, wanted: readonly (readonly [string, string])[]): Promise<Map<string, number>> {
    const ids = new Map<string, number>();
    const missing = new Map<string, [string, string]>();
    for (const [tenant, uuid] of wanted) {
      const lower = uuid.toLowerCase();
      const k = key(tenant, lower);
      if (ids.has(k) || missing.has(k)) continue;
      const id = this.#userIds.get(k) ?? tx.newUsers.get(k);
      if (id === undefined) missing.set(k, [tenant, lower]);
      else ids.set(k, id);
    }
    if (missing.size === 0) return ids;
    const columns = (): [string[], string[]] => {
      const tenants: string[] = [];
      const uuids: string[] = [];
      for (const [tenant, uuid] of missing.values()) {
        tenants.push(tenant);
        uuids.push(uuid);
      }
      return [tenants, uuids];
    };
    type Row = { id: number; tenant_id: string; user_id: string };
    // Committed rows: cached at once.
    const found = await tx.client.query<Row>({ ...this.#sql.findUsers, values: columns() });
    for (const row of found.rows) this.#found(ids, missing, row, this.#userIds);
    if (missing.size === 0) return ids;
    // Ours until COMMIT: cached only then.
    const inserted = await tx.client.query<Row>({ ...this.#sql.insertUsers, values: columns() });
    for (const row of inserted.rows) this.#found(ids, missing, row, tx.newUsers);
    if (missing.size === 0) return ids;
    // Created by another transaction that committed while ours waited on its unique key.
    const raced = await tx.client.query<Row>({ ...this.#sql.findUsers, values: columns() });
    for (const row of raced.rows) this.#found(ids, missing, row, this.#userIds);
    if (missing.size > 0) throw new Error('PostgresStore: a user row was neither created nor found');
    return ids;
  }

  #found(ids: Map<string, number>, missing: Map<string, unknown>, row: { id: number; tenant_id: string; user_id: string }, cache: Map<string, number>): void {
    const k = key(row.tenant_id, row.user_id);
    ids.set(k, row.id);
    missing.delete(k);
    if (cache === this.#userIds && cache.size >= this.#idCacheLimit) cache.clear();
    cache.set(k, row.id);
  }

  /** The direct conversation of every pair (direct_key → conversation), created with its members when missing. */
  async resolveDirects(tx: Tx, wanted: Map<string, { tenant: string; at: number }>): Promise<Map<string, DirectConversation>> {
    const out = new Map<string, DirectConversation>();
    const missing = new Map<string, { tenant: string; at: number }>();
    for (const [k, v] of wanted) {
      const c = this.#directs.get(k) ?? tx.newDirects.get(k);
      if (c === undefined) missing.set(k, v);
      else out.set(k, c);
    }
    if (missing.size === 0) return out;
    type Row = { id: number; uuid: string; direct_key: string };
    const take = (rows: Row[], cache: Map<string, DirectConversation>) => {
      for (const row of rows) {
        const c = { id: row.id, uuid: row.uuid };
        out.set(row.direct_key, c);
        missing.delete(row.direct_key);
        if (cache === this.#directs && cache.size >= this.#idCacheLimit) cache.clear();
        cache.set(row.direct_key, c);
      }
    };
    take((await tx.client.query<Row>({ ...this.#sql.findDirect, values: [[...missing.keys()]] })).rows, this.#directs);
    if (missing.size === 0) return out;
    const keys = [...missing.keys()];
    const inserted = await tx.client.query<Row>({
      ...this.#sql.insertDirect,
      values: [keys.map(() => randomUUID()), keys.map((k) => missing.get(k)!.tenant), keys, keys.map((k) => missing.get(k)!.at)],
    });
    take(inserted.rows, tx.newDirects);
    if (missing.size === 0) return out;
    take((await tx.client.query<Row>({ ...this.#sql.findDirect, values: [[...missing.keys()]] })).rows, this.#directs);
    if (missing.size > 0) throw new Error('PostgresStore: a direct conversation was neither created nor found');
    return out;
  }

  /**
   * After `tx` committed, the rows it created are visible to others: cache their ids, starting over
   * at the bound as a lookup does (a node that creates every user it sees would otherwise hold them
   * all for good).
   */
  committed(tx: Tx): void {
    if (this.#userIds.size + tx.newUsers.size > this.#idCacheLimit) this.#userIds.clear();
    for (const [k, id] of tx.newUsers) this.#userIds.set(k, id);
    if (this.#directs.size + tx.newDirects.size > this.#idCacheLimit) this.#directs.clear();
    for (const [k, c] of tx.newDirects) this.#directs.set(k, c);
    if (this.#writers.size + tx.newWriters.size > WRITERS_CACHE_LIMIT) this.#writers.clear();
    for (const k of tx.newWriters) this.#writers.add(k);
  }

  /** How many ids the caches hold (see PostgresStore.cachedIds). */
  sizes(): { users: number; conversations: number; directPairs: number } {
    return { users: this.#userIds.size, conversations: this.#convIds.size, directPairs: this.#directs.size };
  }
}
