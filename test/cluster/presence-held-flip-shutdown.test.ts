/**
 * An offline flip held back after Redis lost the presence states (docs/protocol.md §6a) is decided
 * when its node shuts down gracefully before it was due — "on a graceful shutdown pending checks run
 * before the node stops" — and the node keeps such a user recorded meanwhile, so a crash leaves them
 * to the dead-node sweep. Before, the held flip was dropped and the contact kept the user online.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { postgresBackend } from '../helpers/storage-backends.js';
import { createGroup, deviceClient, expectReply, said } from '../helpers/timeline.js';
import { REDIS_URL, closeAll, newUserId, waitFor, deleteRedisPrefix, dropRedisPrefix, startServer, uniqueRedisPrefix, within, type TestClient, type TestServer } from '../helpers/harness.js';

test('an offline flip held back after a Redis loss is still published when its node shuts down gracefully', { timeout: 40_000 }, async () => {
  const backend = postgresBackend('held_presence_held');
  const prefix = uniqueRedisPrefix('rev-held');
  const redis = new Redis(REDIS_URL);
  const clients: TestClient[] = [];
  let n1: TestServer | undefined;
  let n2: TestServer | undefined;
  try {
    await backend.setup();
    const common = { storage: backend.allocate().storage, redisKeyPrefix: prefix, redisUrl: REDIS_URL, limits: { nodeLivenessMs: 6000 }, chat: { presenceDebounceMs: 0 } };
    // nodeLivenessMs 6 s: a held flip would be due 2.5 s after the loss — the shutdown comes well before.
    n1 = await startServer(common);
    n2 = await startServer(common);
    const watcher = await deviceClient(n2.url, newUserId());
    const victimId = newUserId();
    clients.push(watcher);
    const gid = await createGroup(watcher, [victimId]);
    const victim = await deviceClient(n1.url, victimId);
    clients.push(victim);
    await said(victim, { conversationId: gid }, 'hello');
    const listed = async (): Promise<boolean> => ((await expectReply(watcher, { type: 'presence', conversationId: gid }, 'presence')).online as string[]).includes(victimId);
    await waitFor(listed, 8000, 'victim shown online', 100);

    await deleteRedisPrefix(redis, prefix);
    const seen = watcher.frames.length;
    victim.terminate();
    await victim.closed;
    const node1 = n1;
    await waitFor(async () => node1.server.stats().users === 0, 5000, 'node 1 saw the victim leave', 20);
    // Graceful shutdown of node 1 while the victim's offline flip is held back.
    await n1.close();
    n1 = undefined;
    const offline = await within(
      waitFor(async () => watcher.frames.slice(seen).some((f) => f.type === 'presence_changed' && f.userId === victimId && f.online === false), 8000, 'offline flip', 50),
      9000,
      'watcher told the victim went offline',
    ).catch((e: Error) => e);
    assert.ok(!(offline instanceof Error), `the watcher was never told the victim went offline (held flip dropped at shutdown): ${String(offline)}`);
  } finally {
    await closeAll(...clients);
    await n2?.close();
    await n1?.close();
    await dropRedisPrefix(redis, prefix);
    redis.disconnect();
    await backend.teardown();
  }
});
