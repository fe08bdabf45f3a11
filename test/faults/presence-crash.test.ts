/**
 * A node killed (SIGKILL) while the presence check of a user whose last session just closed on it
 * is still waiting out chat.presenceDebounceMs: the user stays recorded for that node until the
 * check has run, so the survivors' dead-node sweep claims and checks them, and they go offline.
 *
 * protocol.md §6a: "A user is online while they hold at least one authenticated session on any
 * node … a node killed without closing drops out … they go offline within about nodeLivenessMs +
 * nodeLivenessMs / 3 + chat.presenceDebounceMs."
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { REDIS_URL, closeAll, newUserId, uniqueRedisPrefix, waitFor, within, type TestClient, dropRedisPrefix } from '../helpers/harness.js';
import { spawnServerProcess, writeServerConfig, type ServerProcess, stopServerProcesses } from '../helpers/server-process.js';
import { postgresBackend } from '../helpers/storage-backends.js';
import { createGroup, deviceClient, expectReply, said, type DeviceClient } from '../helpers/timeline.js';

const LIVENESS_MS = 1500;

describe('presence after a node crash', () => {
  const children: ChildProcess[] = [];
  const clients: TestClient[] = [];
  const backend = postgresBackend('prcrash');
  const prefix = uniqueRedisPrefix('prcrash');
  const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let dir: string;
  let n1: ServerProcess;
  let slow: ServerProcess;

  const user = async (node: ServerProcess, sub = newUserId()): Promise<DeviceClient> => {
    const c = await deviceClient(node.url, sub);
    clients.push(c);
    return c;
  };

  before(async () => {
    await backend.setup();
    await admin.connect();
    dir = mkdtempSync(join(tmpdir(), 'rampart-prcrash-'));
    const storage = backend.allocate().storage;
    const common = { storage, redisUrl: REDIS_URL, redisKeyPrefix: prefix, limits: { nodeLivenessMs: LIVENESS_MS } };
    const fast = writeServerConfig(dir, 'fast.json', { ...common, chat: { presenceDebounceMs: 100 } });
    // Same cluster, a longer debounce on the node that will die (so the kill lands inside it).
    const slowCfg = writeServerConfig(dir, 'slow.json', { ...common, chat: { presenceDebounceMs: 2000 } });
    n1 = await spawnServerProcess(fast, children);
    slow = await spawnServerProcess(slowCfg, children);
  });

  after(async () => {
    await closeAll(...clients);
    await stopServerProcesses(children);
    await dropRedisPrefix(admin, prefix);
    await backend.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a user whose last session closed just before its node was killed goes offline eventually', { timeout: 40_000 }, async () => {
    const watcher = await user(n1);
    const victimId = newUserId();
    const gid = await createGroup(watcher, [victimId]);
    const victim = await user(slow, victimId);
    await said(victim, { conversationId: gid }, 'hello'); // shares presence in gid from now on
    const listed = async (): Promise<boolean> =>
      ((await expectReply(watcher, { type: 'presence', conversationId: gid }, 'presence')).online as string[]).includes(victimId);
    await waitFor(listed, 8000, 'victim shown online', 200);

    // The victim's only session closes; the node's check waits 2000 ms; the node dies at ~500 ms.
    await victim.close();
    await sleep(500);
    slow.child.kill('SIGKILL');
    await slow.exited;

    // Promised: offline within about nodeLivenessMs + nodeLivenessMs/3 + debounce (≈ 2.1 s here). Give it 4x.
    const bound = 4 * (LIVENESS_MS + LIVENESS_MS / 3 + 100) + 2000;
    const told = watcher.next((f) => f.type === 'presence_changed' && f.userId === victimId && f.online === false);
    await waitFor(async () => !(await listed()), bound, 'the victim, with no session anywhere, listed offline', 250);
    await within(told, bound, 'the watcher to be told the victim went offline');
  });
});
