/**
 * The SQLite driver: better-sqlite3, in the build that is safe on the running Node.
 *
 * - Node 20: better-sqlite3 12 (`better-sqlite3`), compiled at install. Version 13 needs Node 22
 *   and crashes on 20 (a segmentation fault at the first statement).
 * - Node 22 and later: better-sqlite3 13 (`better-sqlite3-napi`, an npm alias), Node-API, its
 *   binaries inside the package. Version 12 compiled against Node 24.19+'s headers aborts the
 *   process when the garbage collector frees a statement outside a JavaScript context (the
 *   `node::ObjectWrap` clean-up hook those headers add: nodejs/node#65446, WiseLibs/better-sqlite3#1515).
 *
 * Both have the same API; the types are @types/better-sqlite3's. Loaded with `require` so that only
 * the chosen build is ever loaded into the process.
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

const require = createRequire(import.meta.url);

/** The package that `Database` comes from on this Node. */
export const SQLITE_DRIVER_PACKAGE = Number(process.versions.node.split('.')[0]) >= 22 ? 'better-sqlite3-napi' : 'better-sqlite3';

export const Database = require(SQLITE_DRIVER_PACKAGE) as typeof BetterSqlite3;
