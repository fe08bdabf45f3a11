/**
 * Turn the `storage` config value into an initialised Store:
 *   sqlite:PATH (also sqlite:///abs/path, sqlite::memory:)  → SqliteStore, parent directory created
 *   postgres://… or postgresql://…                           → PostgresStore
 * Error messages name the scheme only, never the URL: it may carry a password.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { ContentCipher } from './content-cipher.js';
import { PostgresStore, type PostgresStoreOptions } from './postgres-store.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { Store } from './store.js';

export interface OpenStoreOptions {
  cipher?: ContentCipher;
  sqlite?: Omit<SqliteStoreOptions, 'cipher'>;
  postgres?: Omit<PostgresStoreOptions, 'cipher'>;
}

export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  const store = createStore(url, options);
  try {
    await store.init();
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  return store;
}

function createStore(url: string, options: OpenStoreOptions): Store {
  const cipherOption = options.cipher === undefined ? {} : { cipher: options.cipher };
  if (url.startsWith('sqlite:')) {
    let path = url.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2); // sqlite:///var/lib/x.db → /var/lib/x.db
    if (path === '') throw new Error('storage: "sqlite:" needs a file path, e.g. sqlite:./data/rampart.db');
    if (path !== ':memory:') mkdirSync(dirname(resolve(path)), { recursive: true });
    return new SqliteStore(path, { ...options.sqlite, ...cipherOption });
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    return new PostgresStore(url, { ...options.postgres, ...cipherOption });
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1];
  throw new Error(
    `storage: unsupported value${scheme === undefined ? '' : ` with scheme "${scheme}:"`}; ` +
      'expected "sqlite:PATH" or a "postgres://" URL',
  );
}
