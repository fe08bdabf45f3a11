/**
 * The SQLite store's id caches: (tenant, user uuid) → users.id, conversation uuid ↔ its facts
 * (ConvInfo), and direct pair → conversations.id. Filled only from committed data: a fill made
 * inside a write transaction waits for its COMMIT (the store's `remember`).
 */
import { KIND_DIRECT, directKey } from './message-codec.js';
import type { ConvInfo, ConvRow } from './sqlite-rows.js';
import type { Statements } from './sqlite-statements.js';
import { bytesToUuid, isUuid, uuidToBytes } from './uuid-bytes.js';

/** Entries each id cache (users, conversations, direct pairs) holds before it starts over: bounds memory only. */
const ID_CACHE_LIMIT = 100_000;

export class SqliteIds {
  /** tenant → user uuid → integer id (two levels: no key string built per lookup). */
  readonly #userIds = new Map<string, Map<string, number>>();
  /** conversation uuid → info, and id → info */
  readonly #convsByUuid = new Map<string, ConvInfo>();
  readonly #convsById = new Map<number, ConvInfo>();
  /** direct_key → conversations.id */
  readonly #directIds = new Map<string, number>();
  /** Users in #userIds, all tenants (the caches start over at #limit: memory, not correctness). */
  #cachedUsers = 0;
  readonly #limit: number;
  /** Runs a cache fill now, or after COMMIT when inside a write transaction. */
  readonly #remember: (apply: () => void) => void;

  /** `limit`: SqliteStoreOptions.idCacheLimit (default ID_CACHE_LIMIT). */
  constructor(limit: number | undefined, remember: (apply: () => void) => void) {
    this.#limit = limit ?? ID_CACHE_LIMIT;
    this.#remember = remember;
  }

  /** How many ids the caches hold (see SqliteStore.cachedIds). */
  counts(): { users: number; conversations: number; directPairs: number } {
    return { users: this.#cachedUsers, conversations: this.#convsByUuid.size, directPairs: this.#directIds.size };
  }

  /** Forget everything (the store closed). */
  clear(): void {
    this.#userIds.clear();
    this.#cachedUsers = 0;
    this.#convsByUuid.clear();
    this.#convsById.clear();
    this.#directIds.clear();
  }

  userId(s: Statements, tenantId: string, uuid: string, create: true): number;
  userId(s: Statements, tenantId: string, uuid: string, create: false): number | undefined;
  userId(s: Statements, tenantId: string, uuid: string, create: boolean): number | undefined {
    const cached = this.#userIds.get(tenantId)?.get(uuid);
    if (cached !== undefined) return cached;
    if (!isUuid(uuid)) {
      if (create) throw new TypeError('user ids must be UUIDs');
      return undefined;
    }
    const bytes = uuidToBytes(uuid);
    let id = s.userId.get(tenantId, bytes);
    if (id === undefined) {
      if (!create) return undefined;
      id = Number(s.insertUser.run(tenantId, bytes).lastInsertRowid);
    }
    const found = id;
    this.#remember(() => {
      if (this.#cachedUsers >= this.#limit) {
        this.#userIds.clear();
        this.#cachedUsers = 0;
      }
      let ids = this.#userIds.get(tenantId);
      if (ids === undefined) this.#userIds.set(tenantId, (ids = new Map()));
      if (!ids.has(uuid)) this.#cachedUsers++;
      ids.set(uuid, found);
    });
    return id;
  }

  cacheConv(info: ConvInfo): void {
    this.#remember(() => {
      if (this.#convsByUuid.size >= this.#limit) {
        this.#convsByUuid.clear();
        this.#convsById.clear();
      }
      this.#convsByUuid.set(info.uuid, info);
      this.#convsById.set(info.id, info);
    });
  }

  cacheDirect(key: string, id: number): void {
    this.#remember(() => {
      if (this.#directIds.size >= this.#limit) this.#directIds.clear();
      this.#directIds.set(key, id);
    });
  }

  #infoOf(s: Statements, row: ConvRow): ConvInfo {
    const info: ConvInfo = { id: row.id, uuid: bytesToUuid(row.uuid), tenantId: row.tenant_id, kind: row.kind };
    if (row.kind === KIND_DIRECT) info.directMembers = s.directMembers.all(row.id).map(bytesToUuid);
    return info;
  }

  /** The conversation with this uuid in this tenant (any kind), or undefined. */
  conv(s: Statements, tenantId: string, uuid: string): ConvInfo | undefined {
    let info = this.#convsByUuid.get(uuid.toLowerCase());
    if (info === undefined) {
      if (!isUuid(uuid)) return undefined;
      const row = s.convByUuid.get(uuidToBytes(uuid));
      if (row === undefined) return undefined;
      info = this.#infoOf(s, row);
      this.cacheConv(info);
    }
    return info.tenantId === tenantId ? info : undefined;
  }

  convInfoById(s: Statements, id: number): ConvInfo {
    let info = this.#convsById.get(id);
    if (info === undefined) {
      info = this.#infoOf(s, s.convById.get(id)!);
      this.cacheConv(info);
    }
    return info;
  }

  directId(s: Statements, a: number, b: number): number | undefined {
    const key = directKey(a, b);
    const cached = this.#directIds.get(key);
    if (cached !== undefined) return cached;
    const id = s.convByDirectKey.get(key);
    if (id !== undefined) this.cacheDirect(key, id);
    return id;
  }
}
