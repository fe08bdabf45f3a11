import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Database, SQLITE_DRIVER_PACKAGE, chooseSqliteDriver } from '../../src/store/sqlite-driver.js';

const require = createRequire(import.meta.url);

test('the SQLite driver is better-sqlite3 12 on Node 20 and 13 (Node-API) from Node 22 on', () => {
  const major = Number(process.versions.node.split('.')[0]);
  const expected = major >= 22 ? { pkg: 'better-sqlite3-napi', version: /^13\./ } : { pkg: 'better-sqlite3', version: /^12\./ };
  assert.equal(SQLITE_DRIVER_PACKAGE, expected.pkg);
  const { version } = require(`${SQLITE_DRIVER_PACKAGE}/package.json`) as { version: string };
  assert.match(version, expected.version);
  assert.equal(Database, require(SQLITE_DRIVER_PACKAGE));
});

test('the chosen driver opens a database, runs statements and frees them under GC pressure', () => {
  // The crash this choice avoids (12 on Node 24.19+) came when the GC freed statements: make many.
  const db = new Database(':memory:');
  db.exec('CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)');
  for (let i = 0; i < 2000; i++) db.prepare('INSERT INTO t (b) VALUES (?)').run(`row ${i}`);
  assert.deepEqual(db.prepare('SELECT count(*) AS n FROM t').get(), { n: 2000 });
  // A real collection of the 2,000 unreferenced statements, while the database is open.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  assert.deepEqual(db.prepare('SELECT count(*) AS n FROM t').get(), { n: 2000 });
  db.close();
  gc();
});

test('from Node 22 on, a platform without a binary of 13 falls back to 12 with a warning; Node 20 never tries 13', () => {
  const warnings: string[] = [];
  const tried: string[] = [];
  class Twelve {}
  class NoBinary {
    constructor() {
      throw new Error('Cannot find module ../build/Release/better_sqlite3.node\nRequire stack: …');
    }
  }
  const load = (pkg: string): unknown => {
    tried.push(pkg);
    return pkg === 'better-sqlite3' ? Twelve : NoBinary;
  };
  const fallback = chooseSqliteDriver(24, load, (m) => warnings.push(m));
  assert.equal(fallback.package, 'better-sqlite3');
  assert.equal(fallback.Database as unknown, Twelve);
  assert.deepEqual(tried, ['better-sqlite3-napi', 'better-sqlite3']);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /could not open a database here \(Cannot find module/);
  tried.length = 0;
  assert.equal(chooseSqliteDriver(20, load, (m) => warnings.push(m)).package, 'better-sqlite3');
  assert.deepEqual(tried, ['better-sqlite3'], 'Node 20 never loads 13');
  assert.equal(warnings.length, 1);
});
