/**
 * Storage backends for end-to-end tests: each server gets its own SQLite file or its own
 * PostgreSQL schema (`?schema=NAME` on the `storage` URL), and tests can read the raw rows the
 * server wrote, bypassing the adapter. PostgreSQL being unreachable fails the test, never skips it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { PG_URL } from './harness.js';

export type BackendName = 'sqlite' | 'postgres';

/** Raw `messages` rows, as the database holds them. */
export type RawRow = Record<string, unknown>;

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
  /** Every row of the messages table, in insertion order. */
  rows(where?: { id?: string; recipientId?: string; senderId?: string }): Promise<RawRow[]>;
}

export function uniquePgSchema(tag = 't'): string {
  return `rampart_${tag}_${randomBytes(6).toString('hex')}`;
}

export function pgStorageUrl(schema: string, base = PG_URL): string {
  return `${base}${base.includes('?') ? '&' : '?'}schema=${schema}`;
}

function filterSql(where: { id?: string; recipientId?: string; senderId?: string }, placeholder: (i: number) => string) {
  const clauses: string[] = [];
  const values: string[] = [];
  if (where.id !== undefined) {
    values.push(where.id);
    clauses.push(`id = ${placeholder(values.length)}`);
  }
  if (where.recipientId !== undefined) {
    values.push(where.recipientId);
    clauses.push(`recipient_id = ${placeholder(values.length)}`);
  }
  if (where.senderId !== undefined) {
    values.push(where.senderId);
    clauses.push(`sender_id = ${placeholder(values.length)}`);
  }
  return { sql: clauses.length === 0 ? '' : ` WHERE ${clauses.join(' AND ')}`, values };
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
            const f = filterSql(where, () => '?');
            return db.prepare(`SELECT * FROM messages${f.sql} ORDER BY seq`).all(...f.values) as RawRow[];
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
          const f = filterSql(where, (i) => `$${i}`);
          return (await pool().query(`SELECT * FROM "${schema}".messages${f.sql} ORDER BY seq`, f.values)).rows as RawRow[];
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
