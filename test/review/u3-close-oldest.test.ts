/**
 * u3 probe: `onUserLimit: close_oldest` under churn — every slot the replaced sessions held is
 * given back once everything closed (the registry's counts are deleted at zero: memory-registry.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openClient, newUserId, token, waitFor, type TestClient } from '../helpers/harness.js';

test('u3: close_oldest churn returns every user slot', { timeout: 60_000 }, async () => {
  const s = await startServer({
    maxConnectionsPerIP: 100_000, maxConnectionsPerUser: 2,
    limits: { onUserLimit: 'close_oldest', connectionAttemptsPerMinute: 100_000, maxUnauthenticated: 100_000, maxUnauthenticatedPerIP: 100_000, frames: { limit: 100_000, windowMs: 1000 }, requests: { limit: 100_000, windowMs: 1000 } },
    chat: { presenceDebounceMs: 20 },
  } as never);
  try {
    const users = Array.from({ length: 10 }, () => newUserId());
    for (let round = 0; round < 4; round++) {
      const all: TestClient[] = [];
      await Promise.all(users.flatMap((u) => Array.from({ length: 6 }, async (_, k) => {
        const c = openClient(s.url);
        all.push(c);
        await c.opened.catch(() => {});
        c.send({ type: 'auth', token: await token({ sub: u }) });
        await c.next((f) => f.type === 'auth_success' || f.type === 'auth_failure').catch(() => {});
        if (k % 2) c.terminate();
      })));
      for (const c of all) c.terminate();
      await Promise.all(all.map((c) => c.closed));
    }
    const registry = (s.server.limits as unknown as { registry: { size(): number } }).registry;
    await waitFor(() => registry.size() === 0 && s.server.stats().users === 0, 5000, 'slots back').catch(() => {});
    assert.deepEqual({ registry: registry.size(), ...s.server.stats() }, { registry: 0, open: 0, unauthenticated: 0, unauthenticatedIps: 0, users: 0 });
  } finally {
    await s.close();
  }
});
