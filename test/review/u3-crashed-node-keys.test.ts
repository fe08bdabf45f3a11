/**
 * u3 probe: a node killed with -9 while holding sessions. Its per-user Redis state must not stay
 * behind for good: operations.md says the session directory's "Entries live as long as their node"
 * (and the presence sweep and the registry's start-up clean do reclaim a dead node's presence and
 * counts). Expected: once the dead node's liveness lapsed and the surviving nodes ran their sweeps
 * (here: even after a new node started and the survivors churned), no `admin:sessions:<user>` hash
 * holds an entry of the dead node. Actual: they are only dropped when someone lists that very user's
 * sessions (redis-session-directory.ts LIST_LUA) — a user who never lists again leaks a hash forever
 * (no TTL, no sweep).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { REDIS_URL, authedClient, dropRedisPrefix, newUserId, startServer, uniqueRedisPrefix, waitFor, type TestClient } from '../helpers/harness.js';
import { spawnServerProcess, writeServerConfig, stopServerProcesses } from '../helpers/server-process.js';
import { postgresBackend } from '../helpers/storage-backends.js';

test('u3: a SIGKILLed node leaves its session-directory entries in Redis for good', { timeout: 90_000 }, async () => {
  const backend = postgresBackend();
  await backend.setup();
  const prefix = uniqueRedisPrefix('u3k');
  const admin = new Redis(REDIS_URL);
  const dir = mkdtempSync(join(tmpdir(), 'rampart-u3k-'));
  const children: ChildProcess[] = [];
  const settings = { storage: backend.allocate().storage, redisUrl: REDIS_URL, redisKeyPrefix: prefix, limits: { nodeLivenessMs: 1500 }, chat: { presenceDebounceMs: 20 } };
  const clients: TestClient[] = [];
  const survivor = await startServer(settings as never, { nodeId: 'u3k-survivor' });
  let late: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    const doomed = await spawnServerProcess(writeServerConfig(dir, 'rampart.json', settings), children);
    const users = Array.from({ length: 10 }, () => newUserId());
    for (const u of users) clients.push(await authedClient(doomed.url, u));
    const dirKey = (u: string): string => `${prefix}admin:sessions:default:${u}`;
    await waitFor(async () => (await admin.exists(...users.map(dirKey))) === users.length, 5000, 'directory entries written');
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    await Promise.all(clients.map((c) => c.closed));
    // The dead node's liveness key lapses; the survivor's presence sweep claims its users.
    await waitFor(async () => (await admin.exists(`${prefix}:node:${doomed.nodeId}`)) === 0, 10_000, 'liveness lapsed');
    await waitFor(async () => (await admin.exists(`${prefix}:presence:n:${doomed.nodeId}`)) === 0, 10_000, 'presence swept');
    // A node starting afterwards cleans the registry's counts of dead nodes (redis-registry.ts start()).
    late = await startServer(settings as never, { nodeId: 'u3k-late' });
    // Churn on the survivors (other users).
    for (let i = 0; i < 5; i++) (await authedClient(i % 2 ? late.url : survivor.url)).terminate();
    await waitFor(() => survivor.server.stats().open === 0 && late!.server.stats().open === 0, 5000, 'churn closed');
    const regKeys = await admin.keys(`${prefix}:*`);
    for (const k of regKeys) if (/:user:|:ip:/.test(k)) console.log('REG', k.slice(prefix.length), await admin.hgetall(k));
    const registryLeft = (await admin.keys(`${prefix}:user:*`)).length;
    const left = (await Promise.all(users.map(async (u) => ((await admin.hkeys(dirKey(u))).filter((f) => f.startsWith(`${doomed.nodeId}:`)).length)))).reduce((a, b) => a + b, 0);
    console.log({ registryLeft, directoryEntriesOfDeadNode: left });
    assert.equal(left, 0, `${left} session-directory entries of the dead node are still in Redis`);
  } finally {
    for (const c of clients) c.terminate();
    await late?.close();
    await survivor.close();
    await stopServerProcesses(children);
    await dropRedisPrefix(admin, prefix);
    await backend.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
});
