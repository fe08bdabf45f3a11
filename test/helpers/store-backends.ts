/**
 * A store adapter on each real database, opened as often as a test likes (a restart, another key
 * ring) on the same SQLite file or PostgreSQL schema, and read back with raw SQL written once for
 * both: `t(table)` names a table, `p.value(i)` / `p.uuid(i)` the i-th parameter (1-based; a uuid
 * is a 16-byte blob in SQLite, a `uuid` in PostgreSQL).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { ContentCipher } from '../../src/store/content-cipher.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { Database } from '../../src/store/sqlite-driver.js';
import type { Store } from '../../src/store/store.js';
import { PG_URL } from './harness.js';

export interface Placeholders {
  value(i: number): string;
  uuid(i: number): string;
}

export type Sql = (t: (table: string) => string, p: Placeholders) => string;

export interface StoreBackend {
  name: 'sqlite' | 'postgres';
  /** A new store on this backend's database (close it; the database stays until teardown). */
  open(cipher?: ContentCipher): Promise<Store>;
  rows<T = Record<string, unknown>>(sql: Sql, params?: readonly unknown[]): Promise<T[]>;
  /** Every value of every row of every table, one per line (a blob as latin1): to search for plaintext. */
  dump(): Promise<string>;
  /** The database's raw file bytes, WAL included (SQLite only). */
  files?(): Buffer;
  teardown(): Promise<void>;
}

const lines = (rows: readonly Record<string, unknown>[]): string => {
  let out = '';
  for (const row of rows) for (const v of Object.values(row)) out += `${Buffer.isBuffer(v) ? v.toString('latin1') : String(v)}\n`;
  return out;
};

function sqlite(tag: string): StoreBackend {
  const dir = mkdtempSync(join(tmpdir(), `rampart-${tag}-`));
  const file = join(dir, 'db.sqlite');
  const p: Placeholders = { value: () => '?', uuid: () => `unhex(replace(?, '-', ''))` };
  return {
    name: 'sqlite',
    async open(cipher) {
      const s = new SqliteStore(file, cipher ? { cipher } : {});
      await s.init();
      return s;
    },
    async rows<T>(sql: Sql, params: readonly unknown[] = []) {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      try {
        return db.prepare(sql((table) => table, p)).all(...params) as T[];
      } finally {
        db.close();
      }
    },
    async dump() {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      try {
        const tables = db.prepare<[], string>("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all();
        return tables.map((t) => lines(db.prepare(`SELECT * FROM "${t}"`).all() as Record<string, unknown>[])).join('');
      } finally {
        db.close();
      }
    },
    files() {
      return Buffer.concat([file, `${file}-wal`, `${file}-journal`].filter(existsSync).map((f) => readFileSync(f)));
    },
    async teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgres(tag: string): StoreBackend {
  const schema = `rampart_${tag.replaceAll('-', '_')}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
  const p: Placeholders = { value: (i) => `$${i}`, uuid: (i) => `$${i}` };
  return {
    name: 'postgres',
    async open(cipher) {
      const s = new PostgresStore(PG_URL, { schema, pool: { max: 3 }, ...(cipher ? { cipher } : {}) });
      await s.init();
      return s;
    },
    async rows<T>(sql: Sql, params: readonly unknown[] = []) {
      return (await admin.query(sql((table) => `"${schema}".${table}`, p), [...params])).rows as T[];
    },
    async dump() {
      const { rows: tables } = await admin.query<{ table_name: string }>('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [schema]);
      let out = '';
      for (const { table_name } of tables) out += lines((await admin.query(`SELECT * FROM "${schema}"."${table_name}"`)).rows as Record<string, unknown>[]);
      return out;
    },
    async teardown() {
      try {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** SQLite and PostgreSQL, each on a database of its own (`tag` names them). */
export function storeBackends(tag: string): StoreBackend[] {
  return [sqlite(tag), postgres(tag)];
}
