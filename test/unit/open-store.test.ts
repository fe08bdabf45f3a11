import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openStore, takeSchemaParam } from '../../src/store/open-store.js';

test('?schema=NAME is split off a postgres URL, other parameters are kept', () => {
  assert.deepEqual(takeSchemaParam('postgres://u@h:5432/db'), { connectionString: 'postgres://u@h:5432/db' });
  assert.deepEqual(takeSchemaParam('postgres://u@h/db?schema=rampart_a'), { connectionString: 'postgres://u@h/db', schema: 'rampart_a' });
  assert.deepEqual(takeSchemaParam('postgres://u:p%40ss@h/db?sslmode=require&schema=x_1'), {
    connectionString: 'postgres://u:p%40ss@h/db?sslmode=require',
    schema: 'x_1',
  });
  assert.deepEqual(takeSchemaParam('postgres://u@h/db?application_name=r'), { connectionString: 'postgres://u@h/db?application_name=r' });
  assert.throws(() => takeSchemaParam('postgres://u@h/db?schema=a&schema=b'), /more than once/);
});

test('an invalid schema name is refused before any connection is made', async () => {
  await assert.rejects(openStore('postgres://u@127.0.0.1:1/db?schema=Robert%22;DROP'), /must match/);
});

test('PostgreSQL: a connection string pg takes but a URL parser refuses (a socket path as ?host=) opens (it threw a TypeError that carried the string, password included)', async () => {
  const { PostgresStore } = await import('../../src/store/postgres-store.js');
  // Cloud SQL's socket form: no host before the path. pg connects lazily: nothing is dialled here.
  const store = new PostgresStore('postgres://app:s3cret@/chat?host=/cloudsql/project:region:instance&statement_timeout=2000');
  try {
    // Opening dials what pg read from the string — the socket in that directory, which does not
    // exist here — and the error names the socket, never the password.
    await assert.rejects(store.init(), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ENOENT');
      assert.match(err.message, /\/cloudsql\/project:region:instance\/\.s\.PGSQL\.5432/);
      assert.doesNotMatch(`${err.message}\n${err.stack}`, /s3cret/);
      return true;
    });
  } finally {
    await store.close();
  }
});

test('PostgreSQL: the client-side query bound follows the statement_timeout pg reads from the URL, in every form pg reads it', async () => {
  const { withQueryTimeout } = await import('../../src/store/pg-transaction.js');
  const bound = (connectionString: string) => withQueryTimeout({ connectionString, statement_timeout: 500 }).query_timeout;
  assert.equal(bound('postgres://u@h/db'), 1000, 'the pool default: 500 + 500');
  for (const url of [
    'postgres://u@h/db?statement_timeout=3000',
    'postgres://u@h/db?statement_timeout=3000#primary',
    'postgres://u@h/db?statement%5Ftimeout=3000',
    'postgres://u@h/db?statement_timeout=%33000',
    'postgres://u@h/db?statement_timeout=500&statement_timeout=3000',
    'postgres://app:pw@/chat?host=/cloudsql/p:r:i&statement_timeout=3000',
  ]) {
    assert.equal(bound(url), 6000, url);
  }
  assert.equal(bound('postgres://u@h/db?statement_timeout=0'), undefined, 'no statement timeout: no bound either');
});
