/**
 * A node killed with SIGKILL leaves no session-directory entries in Redis for good: the node that
 * finds its cluster membership lapsed (src/bus/peer-watch.ts) drops the dead node's entries
 * (RedisSessionDirectory.forgetNodes). Before, `list` dropped them only for users someone listed,
 * and every other entry stayed (docs/operations.md: entries live as long as their node).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { REDIS_URL, authedClient, dropRedisPrefix, newUserId, startServer, uniqueRedisPrefix, waitFor, type TestClient } from '../helpers/harness.js';
import { spawnServerProcess, stopServerProcesses, writeServerConfig } from '../helpers/server-process.js';
import { postgresBackend } from '../helpers/storage-backends.js';

test('a SIGKILLed node\'s session-directory entries are dropped once its membership lapses', { timeout: 60_000 }, async () => {
  const backend = postgresBackend('dead_dir');
  await backend.setup();
  const prefix = uniqueRedisPrefix('dead-dir');
  const redis = new Redis(REDIS_URL);
  const dir = mkdtempSync(join(tmpdir(), 'rampart-dead-dir-'));
  const children: ChildProcess[] = [];
  const settings = { storage: backend.allocate().storage, redisUrl: REDIS_URL, redisKeyPrefix: prefix, limits: { nodeLivenessMs: 1500 } };
  const clients: TestClient[] = [];
  const survivor = await startServer(settings, { nodeId: 'dead-dir-survivor' });
  try {
    const doomed = await spawnServerProcess(writeServerConfig(dir, 'rampart.json', settings), children);
    const users = Array.from({ length: 10 }, () => newUserId());
    for (const u of users) clients.push(await authedClient(doomed.url, u));
    // A user with a session on the survivor too: that entry stays.
    clients.push(await authedClient(survivor.url, users[0]));
    const dirKey = (u: string): string => `${prefix}admin:sessions:default:${u}`;
    const entriesOf = async (node: string): Promise<number> =>
      (await Promise.all(users.map(async (u) => (await redis.hkeys(dirKey(u))).filter((f) => f.startsWith(`${node}:`)).length))).reduce((a, b) => a + b, 0);
    await waitFor(async () => (await entriesOf(doomed.nodeId)) === users.length, 5000, 'directory entries written');
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    // Lapse after limits.nodeLivenessMs, noticed within a third of it.
    await waitFor(async () => (await entriesOf(doomed.nodeId)) === 0, 15_000, 'the dead node\'s entries dropped', 100);
    assert.equal(await entriesOf('dead-dir-survivor'), 1, 'the survivor\'s own entry stays');
  } finally {
    for (const c of clients) c.terminate();
    await survivor.close();
    await stopServerProcesses(children);
    await dropRedisPrefix(redis, prefix);
    await backend.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
});
