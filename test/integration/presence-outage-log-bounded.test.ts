/**
 * A Redis outage writes a bounded few `presence failed` lines, not one per sweep and per user's
 * offline check and retry for as long as Redis is away (4 users whose sessions close during a
 * 6 s outage wrote 23). The lines are throttled; what they held back is counted in `unlogged`.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { REDIS_URL, authedClient, startRedisProxy, startServer, uniqueRedisPrefix, waitFor, type TestServer } from '../helpers/harness.js';

const servers: TestServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

test('a Redis outage is a bounded number of presence error lines', { timeout: 60_000 }, async () => {
  const proxy = await startRedisProxy(REDIS_URL);
  after(() => proxy.close());
  const srv = await startServer({ redisUrl: proxy.url, redisKeyPrefix: uniqueRedisPrefix('fix28p'), limits: { nodeLivenessMs: 3000 } });
  servers.push(srv);
  const clients = await Promise.all([0, 1, 2, 3].map(() => authedClient(srv.url)));
  await waitFor(async () => (await fetch(`${srv.httpUrl}/readyz`)).status === 200, 5000, 'ready');
  const from = srv.logs.length;
  await proxy.stop();
  await new Promise((r) => setTimeout(r, 500));
  for (const c of clients) c.terminate();
  await new Promise((r) => setTimeout(r, 6000));
  const lines = srv.logs.slice(from).map((l) => JSON.parse(l) as { msg: string; err?: string });
  await proxy.start();
  const presence = lines.filter((l) => l.msg === 'presence failed');
  assert.ok(presence.length <= 3, `${presence.length} 'presence failed' lines in a 6 s outage: ${JSON.stringify(presence.map((l) => l.err))}`);
});
