/**
 * A SQLite `storage` path the server cannot open fails start-up naming `storage` and the path:
 * `storage: cannot open sqlite:PATH (reason)`.
 *
 * protocol.md §9: a bad configuration exits "with the key and the rule named". SQLite's own
 * message ("unable to open database file") named neither, so an operator could not tell which of
 * the files the server touches was at fault. The message store and the audit log (which opens the
 * same file on its own) say the same.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../helpers/harness.js';
import { openStore } from '../../src/store/open-store.js';
import { openAuditLog } from '../../src/admin/open-audit-log.js';

function scratch(): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-storage-open-'));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const cannotOpen = (path: string) => (err: Error) => {
  assert.ok(err.message.startsWith(`storage: cannot open sqlite:${path} (`), err.message);
  return true;
};

test('serve: a storage path that is a directory refuses start-up naming storage and the path', async () => {
  const { dir, done } = scratch();
  try {
    const target = join(dir, 'is-a-directory');
    mkdirSync(target);
    await assert.rejects(startServer({ storage: `sqlite:${target}` }, { keepDir: dir }), cannotOpen(target));
  } finally {
    done();
  }
});

test('openStore: a directory, a file that is not a database, a parent that is a file: each names storage and the path', async () => {
  const { dir, done } = scratch();
  try {
    const directory = join(dir, 'dir.db');
    mkdirSync(directory);
    const notADatabase = join(dir, 'text.db');
    writeFileSync(notADatabase, 'this is not a SQLite database, it is long enough to have a header '.repeat(4));
    const parentIsFile = join(notADatabase, 'inner.db');
    for (const path of [directory, notADatabase, parentIsFile]) {
      await assert.rejects(openStore(`sqlite:${path}`), cannotOpen(path));
      await assert.rejects(openStore(`sqlite://${path}?synchronous=full`), cannotOpen(path), 'the path without the sqlite:// prefix and parameters');
    }
  } finally {
    done();
  }
});

test('the audit log opening the same path says the same', async () => {
  const { dir, done } = scratch();
  try {
    const directory = join(dir, 'dir.db');
    mkdirSync(directory);
    await assert.rejects(openAuditLog(`sqlite:${directory}`), cannotOpen(directory));
  } finally {
    done();
  }
});

test('errors that already name storage are kept as they are', async () => {
  await assert.rejects(openStore('sqlite:'), /^Error: storage: "sqlite:" needs a file path/);
  await assert.rejects(openStore('sqlite:x.db?cache=shared'), /^Error: storage: the only parameter a sqlite: path takes is "synchronous"/);
});
