/**
 * SqliteRowBatches against a real in-memory SQLite: chunking, one statement per chunk size, query
 * results in order, and values that are not whole rows refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type BetterSqlite3 from 'better-sqlite3';
import { Database } from '../../src/store/sqlite-driver.js';
import { SqliteRowBatches } from '../../src/store/sqlite-row-batches.js';

function table(): BetterSqlite3.Database {
  const db = new Database(':memory:');
  db.exec('CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT NOT NULL)');
  return db;
}

test('130 rows in chunks of 64 go in as 64, 64 and 2, and read back in order', () => {
  const db = table();
  try {
    const prepared: string[] = [];
    const insert = new SqliteRowBatches(db, (v) => (prepared.push(v), `INSERT INTO t (a, b) VALUES ${v}`), 2, 64);
    const rows: unknown[] = [];
    for (let i = 1; i <= 130; i++) rows.push(i, `row ${i}`);
    insert.run(rows);
    insert.run(rows.map((x) => (typeof x === 'number' ? x + 1000 : x)));
    assert.deepEqual(prepared.map((v) => v.split('(').length - 1), [64, 2], 'one statement per chunk size, prepared once');
    assert.equal((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, 260);

    const find = new SqliteRowBatches(db, (v) => `SELECT a, b FROM t WHERE a IN (VALUES ${v}) ORDER BY a`, 1, 64);
    const wanted = [1, 64, 65, 128, 129, 130, 1130, 5000];
    assert.deepEqual(find.all<{ a: number; b: string }>(wanted).map((r) => r.a), [1, 64, 65, 128, 129, 130, 1130]);
    assert.deepEqual(find.all([]), []);
    insert.run([]); // nothing to write: no statement
  } finally {
    db.close();
  }
});

test('values that are not whole rows are refused before anything is written', () => {
  const db = table();
  try {
    const insert = new SqliteRowBatches(db, (v) => `INSERT INTO t (a, b) VALUES ${v}`, 2, 64);
    assert.throws(() => insert.run([1, 'one', 2]), /3 values are not whole rows of 2/);
    assert.equal((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, 0);
  } finally {
    db.close();
  }
});
