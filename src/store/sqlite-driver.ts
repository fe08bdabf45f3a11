/**
 * The SQLite driver: better-sqlite3, in the build that is safe on the running Node.
 *
 * - Node 20: better-sqlite3 12 (`better-sqlite3`), compiled at install. Version 13 needs Node 22
 *   and crashes on 20 (a segmentation fault at the first statement).
 * - Node 22 and later: better-sqlite3 13 (`better-sqlite3-napi`, an npm alias), Node-API, its
 *   binaries inside the package. Version 12 compiled against Node 24.19+'s headers aborts the
 *   process when the garbage collector frees a statement outside a JavaScript context (the
 *   `node::ObjectWrap` clean-up hook those headers add: nodejs/node#65446, WiseLibs/better-sqlite3#1515).
 *   Where 13 ships no binary for the platform (it has x64 and arm64 for Linux, macOS and Windows),
 *   12 is used, with a process warning.
 *
 * Both have the same API; the types are @types/better-sqlite3's. Loaded with `require` so that only
 * the chosen build is ever loaded into the process.
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

type DriverPackage = 'better-sqlite3' | 'better-sqlite3-napi';

export interface SqliteDriver {
  package: DriverPackage;
  Database: typeof BetterSqlite3;
}

/**
 * Pick the driver for Node `major`; `load` is `require`. 13's binary is only looked up when a
 * database opens, so one in-memory database is opened to know it is there.
 */
export function chooseSqliteDriver(major: number, load: (pkg: DriverPackage) => unknown, warn: (message: string) => void): SqliteDriver {
  if (major >= 22) {
    try {
      const Database = load('better-sqlite3-napi') as typeof BetterSqlite3;
      new Database(':memory:').close();
      return { package: 'better-sqlite3-napi', Database };
    } catch (err) {
      warn(
        `better-sqlite3 13 could not open a database here (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); ` +
          'using better-sqlite3 12, which can abort the process on Node 24.19 and later',
      );
    }
  }
  return { package: 'better-sqlite3', Database: load('better-sqlite3') as typeof BetterSqlite3 };
}

const driver = chooseSqliteDriver(
  Number(process.versions.node.split('.')[0]),
  createRequire(import.meta.url),
  (message) => process.emitWarning(message, { code: 'RAMPART_SQLITE_DRIVER' }),
);

/** The package that `Database` comes from on this Node. */
export const SQLITE_DRIVER_PACKAGE: DriverPackage = driver.package;

export const Database: typeof BetterSqlite3 = driver.Database;
