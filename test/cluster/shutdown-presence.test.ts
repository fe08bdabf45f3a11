/**
 * A graceful shutdown of a Redis node whose clients do not answer the close frame: the drain waits,
 * then terminates them. docs/protocol.md §6a: on a graceful shutdown pending checks run before the
 * node stops, so sessions closed by it go offline for the other nodes at once. The terminated
 * sockets closed only after presence had stopped, and their users stayed shown online in Redis.
 * After close(): no user shown online, no directory entry, no registry count. The grace is 2 s:
 * the checks of sockets terminated at the drain deadline get half its reserve (shutdown.ts), which
 * at 800 ms was 100 ms and a loaded machine (the full suite on 2 cores) sometimes missed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { REDIS_URL, dropRedisPrefix, newUserId, startServer, token, uniqueRedisPrefix, waitFor } from '../helpers/harness.js';
import { RawSocket } from '../helpers/raw-ws.js';
import { postgresBackend } from '../helpers/storage-backends.js';

test('shutdown with unresponsive clients leaves no per-user Redis state', { timeout: 60_000 }, async () => {
  const backend = postgresBackend();
  await backend.setup();
  const prefix = uniqueRedisPrefix('shutdown-keys');
  const admin = new Redis(REDIS_URL);
  const s = await startServer({ storage: backend.allocate().storage, redisUrl: REDIS_URL, redisKeyPrefix: prefix, shutdownGraceMs: 2000, chat: { presenceDebounceMs: 20 } }, { nodeId: 'shutdown-1' });
  const raws: RawSocket[] = [];
  try {
    const users = Array.from({ length: 10 }, () => newUserId());
    for (const u of users) {
      const r = await RawSocket.open(s.port);
      raws.push(r);
      assert.equal(await r.upgrade('/ws', [['Origin', 'http://localhost:3000']]), 101);
      r.sendText(JSON.stringify({ type: 'auth', token: await token({ sub: u }) }));
      await r.until(() => r.json().some((f) => f.type === 'auth_success'));
    }
    await waitFor(async () => (await admin.keys(`${prefix}:presence:u:*`)).length === users.length, 5000, 'shown online');
    await s.close(); // the raw clients never answer the close frame
    const left = {
      presenceOnline: (await admin.keys(`${prefix}:presence:u:*`)).length,
      presenceNodeSet: await admin.scard(`${prefix}:presence:n:shutdown-1`),
      directory: (await admin.keys(`${prefix}admin:sessions:*`)).length,
      registryUsers: (await admin.keys(`${prefix}:user:*`)).length,
    };
    assert.deepEqual(left, { presenceOnline: 0, presenceNodeSet: 0, directory: 0, registryUsers: 0 });
  } finally {
    for (const r of raws) await r.destroy();
    await s.close();
    await dropRedisPrefix(admin, prefix);
    await backend.teardown();
  }
});
