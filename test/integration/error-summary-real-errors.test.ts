/**
 * errorSummary on real errors whose quoted value itself holds a quote character (an apostrophe in
 * a V8 message's quoted string, a double quote inside PostgreSQL's "…", JSON-escaped quotes): the
 * message is cut at its first quote, so no part of the value reaches the log (pairing quotes, an
 * earlier version let the rest of such a value through).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { errorSummary } from '../../src/observability/error-summary.js';
import { PG_URL } from '../helpers/harness.js';

test('a V8 TypeError quoting a string with an apostrophe does not leak the string', () => {
  let caught: unknown;
  try {
    const s: any = "it's TOP SECRET";
    s.foo = 1; // strict mode (ES module): TypeError: Cannot create property 'foo' on string '…'
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof TypeError);
  const summary = errorSummary(caught);
  assert.ok(!summary.includes('SECRET'), `logged: ${summary}`);
});

test('a PostgreSQL error quoting a value that holds a double quote does not leak the value', async () => {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  let caught: unknown;
  try {
    await client.query('select $1::uuid', ['x" TOP SECRET']);
  } catch (err) {
    caught = err;
  } finally {
    await client.end();
  }
  assert.ok(caught instanceof Error, 'the query failed');
  const summary = errorSummary(caught);
  assert.ok(!summary.includes('SECRET'), `logged: ${summary}`);
});

test("the store's own 'not a UUID' error (JSON.stringify escapes an inner quote as \\\") does not leak the value", async () => {
  const { uuidToBytes } = await import('../../src/store/uuid-bytes.js');
  let caught: unknown;
  try {
    uuidToBytes('0123456789abcdef0123456789a"SECRET');
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof TypeError);
  const summary = errorSummary(caught);
  assert.ok(!summary.includes('SECRET'), `logged: ${summary}`);
});
