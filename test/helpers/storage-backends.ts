/**
 * Storage backends for end-to-end tests: each server gets its own SQLite file or its own
 * PostgreSQL schema (`?schema=NAME` on the `storage` URL), and tests can read the raw rows the
 * server wrote, bypassing the adapter. PostgreSQL being unreachable fails the test, never skips it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { Database } from '../../src/store/sqlite-driver.js';
import pg from 'pg';
import { PG_URL, startTcpProxy, type TcpProxy } from './harness.js';

export type BackendName = 'sqlite' | 'postgres';

/**
 * Raw `events` rows (storage v2), as the database holds them — every column (`content`, `key_id`,
 * `mentions`, … sealed when encryption is on) — plus, for convenience, the ids decoded to UUID
 * strings: `id`, `conversation_id`, `tenant_id`, `sender_id`, and for direct conversations
 * `recipient_id` (the other member; the sender for a note to self).
 */
export type RawRow = Record<string, unknown>;

export interface RowFilter {
  id?: string;
  senderId?: string;
  /** Direct messages to this user. */
  recipientId?: string;
  conversationId?: string;
}

/** A user's sync rows: their timeline and positions. */
export interface SyncRows {
  /** users.last_pos / acked_pos (0 when the user has no row). */
  lastPos: number;
  ackedPos: number;
  /** devices.acked_pos by device id. */
  devices: Record<string, number>;
  /** Timeline entries, ascending: position and the event id it points at. */
  timeline: { pos: number; eventId: string }[];
}

export interface StorageBackend {
  readonly name: BackendName;
  /** Check the database is reachable (rejects otherwise). */
  setup(): Promise<void>;
  /** A fresh storage location: the `storage` config value, and a reader of its raw rows. */
  allocate(): StorageLocation;
  /** Remove every file or schema this backend allocated and close its connections. */
  teardown(): Promise<void>;
}

export interface StorageLocation {
  readonly storage: string;
  /** Every event row (messages and membership changes), by conversation then seq. */
  rows(where?: RowFilter): Promise<RawRow[]>;
  /** The user's timeline and positions (`tenantId` defaults to the dev-token tenant). */
  sync(userId: string, tenantId?: string): Promise<SyncRows>;
}

const DEFAULT_TENANT_ID = 'default';

function uuidOf(value: unknown): string {
  if (typeof value === 'string') return value.toLowerCase();
  const hex = Buffer.from(value as Uint8Array).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Rows of `SELECT e.*, c.uuid AS conv_uuid, c.tenant_id, c.kind AS conv_kind, u.user_id AS sender_uuid` + member uuids per conv. */
function decorate(rows: RawRow[], members: Map<unknown, string[]>, where: RowFilter): RawRow[] {
  const out: RawRow[] = [];
  for (const raw of rows) {
    const row: RawRow = { ...raw, id: uuidOf(raw.id), conversation_id: uuidOf(raw.conv_uuid), sender_id: uuidOf(raw.sender_uuid) };
    const convMembers = members.get(String(raw.conv)) ?? [];
    if (Number(raw.conv_kind) === DIRECT_KIND) {
      row.recipient_id = convMembers.find((m) => m !== row.sender_id) ?? row.sender_id;
    }
    if (where.id !== undefined && row.id !== where.id.toLowerCase()) continue;
    if (where.senderId !== undefined && row.sender_id !== where.senderId.toLowerCase()) continue;
    if (where.recipientId !== undefined && row.recipient_id !== where.recipientId.toLowerCase()) continue;
    if (where.conversationId !== undefined && row.conversation_id !== where.conversationId.toLowerCase()) continue;
    out.push(row);
  }
  return out;
}

/** conversations.kind of a direct conversation (src/store: KIND_DIRECT). */
const DIRECT_KIND = 0;

export function uniquePgSchema(tag = 't'): string {
  return `rampart_${tag}_${randomBytes(6).toString('hex')}`;
}

export function pgStorageUrl(schema: string, base = PG_URL): string {
  return `${base}${base.includes('?') ? '&' : '?'}schema=${schema}`;
}

/**
 * PostgreSQL storage reached through a TCP proxy the test can stop and start (storage down and
 * back), in a schema of its own; `close()` closes the proxy and drops the schema.
 */
export async function proxiedPgStorage(tag: string): Promise<{ proxy: TcpProxy; storage: string; close(): Promise<void> }> {
  const pgUrl = new URL(PG_URL);
  const proxy = await startTcpProxy(pgUrl.hostname, Number(pgUrl.port || 5432));
  const schema = uniquePgSchema(tag);
  pgUrl.port = String(proxy.port);
  return {
    proxy,
    storage: pgStorageUrl(schema, pgUrl.toString()),
    async close() {
      await proxy.close();
      const admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect();
      try {
        await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await admin.end();
      }
    },
  };
}

export function sqliteBackend(): StorageBackend {
  let n = 0;
  let dir: string | undefined;
  return {
    name: 'sqlite',
    async setup() {},
    allocate() {
      dir ??= mkdtempSync(join(tmpdir(), 'rampart-sqlite-'));
      const file = join(dir, `chat-${++n}.db`);
      return {
        storage: `sqlite:${file}`,
        async rows(where = {}) {
          // A second connection on the WAL file: sees exactly what the server committed.
          const db = new Database(file, { readonly: true, fileMustExist: true });
          try {
            const rows = db
              .prepare(
                `SELECT e.*, c.uuid AS conv_uuid, c.tenant_id AS tenant_id, c.kind AS conv_kind, u.user_id AS sender_uuid
                 FROM events e JOIN conversations c ON c.id = e.conv JOIN users u ON u.id = e.sender ORDER BY e.conv, e.seq`,
              )
              .all() as RawRow[];
            const members = new Map<unknown, string[]>();
            for (const m of db.prepare('SELECT m.conv AS conv, u.user_id AS uuid FROM members m JOIN users u ON u.id = m.user').all() as { conv: number; uuid: Buffer }[]) {
              const list = members.get(String(m.conv)) ?? [];
              list.push(uuidOf(m.uuid));
              members.set(String(m.conv), list);
            }
            return decorate(rows, members, where);
          } finally {
            db.close();
          }
        },
        async sync(userId, tenantId = DEFAULT_TENANT_ID) {
          const db = new Database(file, { readonly: true, fileMustExist: true });
          try {
            const user = db.prepare('SELECT id, last_pos, acked_pos FROM users WHERE tenant_id = ? AND user_id = ?').get(tenantId, Buffer.from(userId.replaceAll('-', ''), 'hex')) as
              | { id: number; last_pos: number; acked_pos: number }
              | undefined;
            if (user === undefined) return { lastPos: 0, ackedPos: 0, devices: {}, timeline: [] };
            const devices: Record<string, number> = {};
            for (const d of db.prepare('SELECT device_id, acked_pos FROM devices WHERE user = ?').all(user.id) as { device_id: string; acked_pos: number }[]) devices[d.device_id] = Number(d.acked_pos);
            const timeline = (db.prepare('SELECT t.pos AS pos, e.id AS id FROM (SELECT * FROM timeline UNION ALL SELECT * FROM timeline_recent) t JOIN events e ON e.conv = t.conv AND e.seq = t.seq WHERE t.user = ? ORDER BY t.pos').all(user.id) as { pos: number; id: Buffer }[]).map((r) => ({
              pos: Number(r.pos),
              eventId: uuidOf(r.id),
            }));
            return { lastPos: Number(user.last_pos), ackedPos: Number(user.acked_pos), devices, timeline };
          } finally {
            db.close();
          }
        },
      };
    },
    async teardown() {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    },
  };
}

export function postgresBackend(tag = 't'): StorageBackend {
  const schemas: string[] = [];
  let admin: pg.Pool | undefined;
  const pool = (): pg.Pool => (admin ??= new pg.Pool({ connectionString: PG_URL, max: 2, connectionTimeoutMillis: 5000 }));
  return {
    name: 'postgres',
    async setup() {
      await pool().query('SELECT 1'); // unreachable → the suite fails here
    },
    allocate() {
      const schema = uniquePgSchema(tag);
      schemas.push(schema);
      return {
        storage: pgStorageUrl(schema),
        async rows(where = {}) {
          const q = (t: string): string => `"${schema}".${t}`;
          const rows = (
            await pool().query(
              `SELECT e.*, c.uuid AS conv_uuid, c.tenant_id AS tenant_id, c.kind AS conv_kind, u.user_id AS sender_uuid
               FROM ${q('events')} e JOIN ${q('conversations')} c ON c.id = e.conv JOIN ${q('users')} u ON u.id = e.sender ORDER BY e.conv, e.seq`,
            )
          ).rows as RawRow[];
          const members = new Map<unknown, string[]>();
          for (const m of (await pool().query(`SELECT m.conv AS conv, u.user_id AS uuid FROM ${q('members')} m JOIN ${q('users')} u ON u.id = m."user"`)).rows as { conv: number; uuid: string }[]) {
            const list = members.get(String(m.conv)) ?? [];
            list.push(uuidOf(m.uuid));
            members.set(String(m.conv), list);
          }
          return decorate(rows, members, where);
        },
        async sync(userId, tenantId = DEFAULT_TENANT_ID) {
          const q = (t: string): string => `"${schema}".${t}`;
          const user = (await pool().query(`SELECT id, last_pos, acked_pos FROM ${q('users')} WHERE tenant_id = $1 AND user_id = $2`, [tenantId, userId])).rows[0] as
            | { id: number; last_pos: string; acked_pos: string }
            | undefined;
          if (user === undefined) return { lastPos: 0, ackedPos: 0, devices: {}, timeline: [] };
          const devices: Record<string, number> = {};
          for (const d of (await pool().query(`SELECT device_id, acked_pos FROM ${q('devices')} WHERE "user" = $1`, [user.id])).rows as { device_id: string; acked_pos: string }[]) {
            devices[d.device_id] = Number(d.acked_pos);
          }
          const timeline = (
            (await pool().query(`SELECT t.pos AS pos, e.id AS id FROM ${q('timeline')} t JOIN ${q('events')} e ON e.conv = t.conv AND e.seq = t.seq WHERE t."user" = $1 ORDER BY t.pos`, [user.id])).rows as {
              pos: string;
              id: string;
            }[]
          ).map((r) => ({ pos: Number(r.pos), eventId: uuidOf(r.id) }));
          return { lastPos: Number(user.last_pos), ackedPos: Number(user.acked_pos), devices, timeline };
        },
      };
    },
    async teardown() {
      if (admin === undefined) return;
      try {
        for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await admin.end();
        admin = undefined;
      }
    },
  };
}

export function backends(tag = 't'): StorageBackend[] {
  return [sqliteBackend(), postgresBackend(tag)];
}
