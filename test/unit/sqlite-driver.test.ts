import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Database, SQLITE_DRIVER_PACKAGE } from '../../src/store/sqlite-driver.js';

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
