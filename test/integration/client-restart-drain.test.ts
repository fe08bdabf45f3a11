/**
 * A server restart costs an SDK client seconds, not a minute. A draining node closes its sessions
 * with 1001 and answers new handshakes with 503 until they are gone (one client that does not
 * answer the close frame holds the drain open up to its deadline); the SDK reconnects within
 * shutdownDelayMaxMs and honours a 503's Retry-After, which was 60 s: every client whose
 * reconnect landed in the drain waited a minute. A draining node now says 1 s.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeClient } from '../../src/client/node.js';
import { signDevToken } from '../../src/auth/dev-token.js';
import { authedClient, freePort, startServer, startTcpProxy, newUserId, TEST_SECRET, waitFor, type TestServer } from '../helpers/harness.js';

test('a client reconnecting into a draining node is back on the restarted server within seconds, not after Retry-After: 60', { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-drain-'));
  const port = await freePort();
  const config = { port, shutdownGraceMs: 2000 };
  let srv: TestServer | undefined = await startServer(config, { keepDir: dir });
  // A second user whose path dies silently: the drain waits for its close until its deadline.
  const proxy = await startTcpProxy('127.0.0.1', port);
  const silent = await authedClient(`ws://127.0.0.1:${proxy.port}/ws`);
  const id = newUserId();
  const disconnects: string[] = [];
  let readies = 0;
  const client = createNodeClient({
    url: `ws://127.0.0.1:${port}/ws`,
    token: () => signDevToken(TEST_SECRET, { sub: id, ttl: 3600 }),
    shutdownDelayMaxMs: 200,
    backoff: { baseMs: 50, maxMs: 400 },
  });
  client.on('disconnected', (d) => disconnects.push(`${d.code} ${d.reason} retryInMs=${d.retryInMs}`));
  client.on('ready', () => readies++);
  try {
    await client.connect();
    proxy.freeze();
    const old = srv;
    srv = undefined;
    await old.close(); // drains: 1001 to both, the frozen one holds the listener open ~1.5 s
    srv = await startServer(config, { keepDir: dir });
    const restartedAt = Date.now();
    await waitFor(() => readies >= 2, 10_000, 'the client to be back on the restarted server').catch(() => {});
    assert.equal(readies, 2, `not back within 10 s of the restart (${Date.now() - restartedAt} ms); disconnects: ${disconnects.join('; ')}`);
  } finally {
    client.close();
    silent.terminate();
    await proxy.close();
    await srv?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
