/**
 * The SQLite database (every message, the audit log) is private to the server's user: a directory
 * Rampart creates for it is 0700 and the database files it creates (the file, -wal, -shm) are 0600,
 * whatever the umask. A directory or database the operator made keeps its mode.
 *
 * With its own jwt key (every real deployment) the server never creates the development key, whose
 * code made `dataDir` 0700; so `./data` was made 0755 and `rampart.db` 0644 under the usual umask
 * 022, and any local account could copy the whole chat history.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, TEST_SECRET } from '../helpers/harness.js';
import { openStore } from '../../src/store/open-store.js';
import { openAuditLog } from '../../src/admin/open-audit-log.js';

const mode = (path: string): number => statSync(path).mode & 0o777;

/** Runs `fn` under umask 022 (the usual default), restoring the previous one. */
async function withUmask022<T>(fn: () => Promise<T>): Promise<T> {
  const previous = process.umask(0o022);
  try {
    return await fn();
  } finally {
    process.umask(previous);
  }
}

test('serve with its own jwt key: the directory it creates is 0700, rampart.db and its -wal/-shm are 0600', { skip: process.platform === 'win32' }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'rampart-dbmode-'));
  const dataDir = join(root, 'data');
  try {
    await withUmask022(async () => {
      const s = await startServer({ storage: `sqlite:${join(dataDir, 'rampart.db')}`, dataDir, jwt: { secret: TEST_SECRET }, admin: { token: 'a'.repeat(32) } }, { keepDir: root });
      try {
        const files = readdirSync(dataDir);
        assert.ok(files.includes('rampart.db'), 'database created');
        assert.ok(files.includes('rampart.db-wal') && files.includes('rampart.db-shm'), `WAL files present: ${files.join(', ')}`);
        assert.ok(!files.includes('dev-signing-key'), 'no development key (its code made the directory private)');
        assert.equal(mode(dataDir).toString(8), '700');
        for (const f of files) assert.equal(mode(join(dataDir, f)).toString(8), '600', f);
      } finally {
        await s.close();
      }
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the store and the audit log opened alone: the same modes; nested directories are all 0700', { skip: process.platform === 'win32' }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'rampart-dbmode-'));
  try {
    await withUmask022(async () => {
      for (const [name, open] of [
        ['store', async (db: string) => openStore(`sqlite:${db}?synchronous=full`)],
        ['audit', async (db: string) => openAuditLog(`sqlite:${db}`)],
      ] as const) {
        const deepest = join(root, name, 'a', 'b');
        const opened = await open(join(deepest, 'chat.db'));
        try {
          for (const d of [join(root, name), join(root, name, 'a'), deepest]) assert.equal(mode(d).toString(8), '700', d);
          const files = readdirSync(deepest);
          assert.ok(files.includes('chat.db-wal'), `${name}: WAL files present while open: ${files.join(', ')}`);
          for (const f of files) assert.equal(mode(join(deepest, f)).toString(8), '600', `${name}: ${f}`);
        } finally {
          await opened.close();
        }
      }
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a directory and a database file the operator made keep their modes', { skip: process.platform === 'win32' }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'rampart-dbmode-'));
  try {
    await withUmask022(async () => {
      const shared = join(root, 'shared');
      mkdirSync(shared);
      chmodSync(shared, 0o750);
      await (await openStore(`sqlite:${join(shared, 'new.db')}`)).close();
      assert.equal(mode(shared).toString(8), '750', 'an existing directory is not changed');
      assert.equal(mode(join(shared, 'new.db')).toString(8), '600', 'a file Rampart creates is private even there');
      const existing = join(shared, 'existing.db');
      writeFileSync(existing, '');
      chmodSync(existing, 0o640);
      await (await openStore(`sqlite:${existing}`)).close();
      assert.equal(mode(existing).toString(8), '640', 'an existing database keeps the mode its operator chose');
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
