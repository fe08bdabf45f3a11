/**
 * The audit log reads the `storage` URL exactly as the message store does (open-store.ts), so the
 * two live in the same schema and file. Its own parser took a `#fragment` into the schema name
 * (`?schema=chat#x` put the audit log in schema "chat#x") and the first of repeated `schema`
 * parameters, which the store refuses; both now go through the store's parser.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openAuditLog } from '../../src/admin/open-audit-log.js';
import { PG_URL } from '../helpers/harness.js';

test('postgres: a #fragment after ?schema= is not part of the schema name, as for the store', async () => {
  const schema = `rampart_audit_url_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
  try {
    const log = await openAuditLog(`${PG_URL}?schema=${schema}#section`);
    await log.close();
    const { rows } = await admin.query<{ table_schema: string }>(`SELECT table_schema FROM information_schema.tables WHERE table_name = 'audit_log' AND table_schema LIKE $1`, [`${schema}%`]);
    assert.deepEqual(rows.map((r) => r.table_schema), [schema]);
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}#section" CASCADE`);
    await admin.end();
  }
});

test('postgres: a schema given twice is refused, as the store refuses it', async () => {
  await assert.rejects(openAuditLog(`${PG_URL}?schema=a_${randomBytes(3).toString('hex')}&schema=b`), /schema.*more than once/);
});
