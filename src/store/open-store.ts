/**
 * Turn the `storage` config value into an initialised Store:
 *   sqlite:PATH (also sqlite:///abs/path, sqlite::memory:)  → SqliteStore, parent directory created
 *     `?synchronous=normal|full` picks SQLite's durability (see SqliteStoreOptions.synchronous).
 *   postgres://… or postgresql://…                           → PostgresStore
 *     `?schema=NAME` (or `&schema=NAME`) selects the PostgreSQL schema that holds the tables
 *     (created if missing; default `public`), so one database can host isolated deployments or
 *     test runs. It is removed from the URL before pg sees it; `options.postgres.schema` wins.
 * Error messages name the scheme only, never the URL: it may carry a password (a SQLite path,
 * which carries none, is named: `storage: cannot open sqlite:PATH (reason)`).
 *
 * The SQLite file holds every message: a directory Rampart creates for it is 0700, and a database
 * file it creates is 0600 (SQLite gives its -wal and -shm files the database file's mode). A
 * directory or file the operator made keeps its mode.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { ContentCipher } from './content-cipher.js';
import { PostgresStore, SCHEMA_NAME, type PostgresStoreOptions } from './postgres-store.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { Store } from './store.js';

export interface OpenStoreOptions {
  cipher?: ContentCipher;
  /** See store.ts Audience (default true). */
  strangerPrivacy?: boolean;
  /** See store.ts PrivacyOption (default 100). */
  maxDevicesPerUser?: number;
  sqlite?: Omit<SqliteStoreOptions, 'cipher'>;
  postgres?: Omit<PostgresStoreOptions, 'cipher'>;
}

export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  const store = createStore(url, options);
  try {
    await store.init();
  } catch (err) {
    await store.close().catch(() => {});
    // SQLite's own messages ("unable to open database file") name neither the key nor the file.
    if (store instanceof SqliteStore) throw cannotOpenSqlite(sqlitePath(url), err);
    throw err;
  }
  return store;
}

/** The file path of a `sqlite:` storage value (`sqlite:///abs` → `/abs`; parameters dropped). */
export function sqlitePath(url: string): string {
  const path = url.slice('sqlite:'.length);
  return takeSynchronousParam(path.startsWith('//') ? path.slice(2) : path).path;
}

/** `storage: cannot open sqlite:PATH (reason)`; an error that already names `storage` is kept. */
export function cannotOpenSqlite(path: string, err: unknown): Error {
  if (err instanceof Error && err.message.startsWith('storage:')) return err;
  return new Error(`storage: cannot open sqlite:${path} (${err instanceof Error ? err.message : String(err)})`, { cause: err });
}

/**
 * Before SQLite opens `path`: its directory made if missing (0700, like the development key's),
 * and the database file created empty with mode 0600 if missing (SQLite would make it 0644 under
 * the usual umask, and its -wal and -shm files follow the database file's mode). An existing
 * directory or file is left as the operator made it. Throws `storage: cannot open …`.
 */
export function prepareSqliteFile(path: string): void {
  if (path === ':memory:') return;
  try {
    mkdirSync(dirname(resolve(path)), { recursive: true, mode: 0o700 });
    if (existsSync(path)) return;
    try {
      // `wx`: never truncate a database another process created meanwhile.
      writeFileSync(path, '', { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
      throw err;
    }
  } catch (err) {
    throw cannotOpenSqlite(path, err);
  }
}

function createStore(url: string, options: OpenStoreOptions): Store {
  const cipherOption = {
    ...(options.cipher === undefined ? {} : { cipher: options.cipher }),
    ...(options.strangerPrivacy === undefined ? {} : { strangerPrivacy: options.strangerPrivacy }),
    ...(options.maxDevicesPerUser === undefined ? {} : { maxDevicesPerUser: options.maxDevicesPerUser }),
  };
  if (url.startsWith('sqlite:')) {
    let path = url.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2); // sqlite:///var/lib/x.db → /var/lib/x.db
    const { path: filePath, synchronous } = takeSynchronousParam(path);
    path = filePath;
    if (path === '') throw new Error('storage: "sqlite:" needs a file path, e.g. sqlite:./data/rampart.db');
    prepareSqliteFile(path);
    return new SqliteStore(path, { ...(synchronous === undefined ? {} : { synchronous }), ...options.sqlite, ...cipherOption });
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { connectionString, schema } = takeSchemaParam(url);
    return new PostgresStore(connectionString, {
      ...(schema === undefined ? {} : { schema }),
      ...options.postgres,
      ...cipherOption,
    });
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1];
  throw new Error(
    `storage: unsupported value${scheme === undefined ? '' : ` with scheme "${scheme}:"`}; ` +
      'expected "sqlite:PATH" or a "postgres://" URL',
  );
}

/**
 * What `openStore` would refuse in a `storage` value, found without opening anything (`rampart
 * check-config`, start-up): the same parsing, so the two cannot disagree. Never echoes the value.
 */
export function storageConfigProblems(url: string): string[] {
  try {
    if (url.startsWith('sqlite:')) {
      const path = url.slice('sqlite:'.length);
      if (takeSynchronousParam(path.startsWith('//') ? path.slice(2) : path).path === '') return ['storage: "sqlite:" needs a file path, e.g. sqlite:./data/rampart.db'];
    } else if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
      const { schema } = takeSchemaParam(url);
      if (schema !== undefined && !SCHEMA_NAME.test(schema)) return [`storage: the "schema" parameter must match ${SCHEMA_NAME.source}`];
      // PostgreSQL would refuse the connection's startup packet, so every query would fail.
      const query = url.indexOf('?') === -1 ? '' : url.slice(url.indexOf('?') + 1).split('#')[0]!;
      for (const value of new URLSearchParams(query).getAll('statement_timeout')) {
        if (!/^\d{1,10}$/.test(value) || Number(value) > 2_147_483_647) return ['storage: the "statement_timeout" parameter must be a whole number of ms from 0 to 2147483647'];
      }
    }
    return [];
  } catch (err) {
    return [err instanceof Error ? err.message : 'storage: not usable'];
  }
}

/** Split a `schema` query parameter off a postgres URL (string-level: the authority is untouched). */
export function takeSchemaParam(url: string): { connectionString: string; schema?: string } {
  const q = url.indexOf('?');
  if (q === -1) return { connectionString: url };
  const hash = url.indexOf('#', q);
  const query = url.slice(q + 1, hash === -1 ? undefined : hash);
  const params = new URLSearchParams(query);
  const schemas = params.getAll('schema');
  if (schemas.length === 0) return { connectionString: url };
  if (schemas.length > 1) throw new Error('storage: the "schema" parameter is given more than once');
  params.delete('schema');
  const rest = params.toString();
  const connectionString = url.slice(0, q) + (rest === '' ? '' : `?${rest}`) + (hash === -1 ? '' : url.slice(hash));
  return { connectionString, schema: schemas[0]! };
}

/** Split `?synchronous=normal|full` off a SQLite path. */
export function takeSynchronousParam(path: string): { path: string; synchronous?: 'FULL' | 'NORMAL' } {
  const q = path.indexOf('?');
  if (q === -1) return { path };
  const params = new URLSearchParams(path.slice(q + 1));
  const value = params.get('synchronous')?.toUpperCase();
  params.delete('synchronous');
  if (params.size > 0) throw new Error('storage: the only parameter a sqlite: path takes is "synchronous"');
  if (value !== 'FULL' && value !== 'NORMAL') throw new Error('storage: "synchronous" must be "normal" or "full"');
  return { path: path.slice(0, q), synchronous: value };
}
