/**
 * A node whose liveness key lapsed while its Redis connections stayed up (the process stalled
 * longer than limits.nodeLivenessMs: SIGSTOP, a VM pause, a long GC pause). While it is taken for
 * dead, another node's listing drops its session-directory entries (the LIST script HDELs fields
 * of nodes without a liveness key) and leaves a marker; once the node runs again it finds the
 * marker and writes its entries back, so its open sessions are listed again and `end_session`
 * reaches them (before, they stayed out of `list_sessions` for good).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { REDIS_URL, authedClient, closeAll, dropRedisPrefix, newUserId, uniqueRedisPrefix, waitFor, type TestClient } from '../helpers/harness.js';
import { spawnServerProcess, writeServerConfig, stopServerProcesses, type ServerProcess } from '../helpers/server-process.js';
import { postgresBackend } from '../helpers/storage-backends.js';
import { ask } from '../helpers/timeline.js';

describe('session directory after a liveness lapse', () => {
  const children: ChildProcess[] = [];
  const clients: TestClient[] = [];
  const backend = postgresBackend('review_dirlapse');
  const prefix = uniqueRedisPrefix('review-dirlapse');
  const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let dir: string;
  let n1: ServerProcess;
  let n2: ServerProcess;
  let stopped = false;

  before(async () => {
    await backend.setup();
    await admin.connect();
    dir = mkdtempSync(join(tmpdir(), 'rampart-review-dirlapse-'));
    const configFile = writeServerConfig(dir, 'rampart.json', {
      storage: backend.allocate().storage,
      redisUrl: REDIS_URL,
      redisKeyPrefix: prefix,
      // A short liveness TTL so the stall is short; a long ping timeout so the liveness PING does
      // not drop (and so reconnect) the connections when the process resumes.
      limits: { nodeLivenessMs: 2000 },
      redisPingTimeoutMs: 20_000,
    });
    [n1, n2] = await Promise.all([spawnServerProcess(configFile, children), spawnServerProcess(configFile, children)]);
  });

  after(async () => {
    if (stopped) n1.child.kill('SIGCONT');
    await closeAll(...clients);
    await stopServerProcesses(children);
    await dropRedisPrefix(admin, prefix);
    admin.disconnect();
    await backend.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a node that stalled past nodeLivenessMs and resumed: its sessions are listed again and end_session reaches them", { timeout: 60_000 }, async () => {
    const sub = newUserId();
    const s1 = await authedClient(n1.url, sub);
    clients.push(s1);
    const s2 = await authedClient(n2.url, sub);
    clients.push(s2);
    const list = async (): Promise<Array<{ sessionId: string; node: string }>> => {
      const reply = await ask(s2, { type: 'list_sessions' });
      assert.equal(reply.type, 'sessions', JSON.stringify(reply));
      return reply.sessions as Array<{ sessionId: string; node: string }>;
    };
    await waitFor(async () => (await list()).length === 2, 10_000, 'both sessions listed', 250);
    const onN1 = (await list()).find((d) => d.node === n1.nodeId);
    assert.ok(onN1, 'the session on node 1 is listed');

    const liveKey = `${prefix}:node:${n1.nodeId}`;
    n1.child.kill('SIGSTOP');
    stopped = true;
    await waitFor(async () => (await admin.exists(liveKey)) === 0, 20_000, "node 1's liveness key to lapse");
    // Taken for dead meanwhile: a listing on node 2 drops node 1's entries.
    assert.equal((await list()).length, 1);
    n1.child.kill('SIGCONT');
    stopped = false;
    await waitFor(async () => (await admin.exists(liveKey)) === 1, 20_000, "node 1's heartbeat to restore its liveness key");
    // The session on node 1 is open and served.
    s1.send({ type: 'ping', requestId: 'review-ping' });
    await s1.next((f) => f.type === 'pong' && f.requestId === 'review-ping');
    assert.equal(s1.closeCode, undefined);
    // Node 1 runs again and its session is open: it must be listed again (directory retry 1 s, heartbeat 0.67 s).
    let last: unknown[] = [];
    await waitFor(
      async () => {
        last = await list();
        return last.length === 2;
      },
      10_000,
      'the session on node 1 listed again',
      250,
    ).catch((err: Error) => assert.fail(`${err.message}; listed: ${JSON.stringify(last)}`));
    const ended = await ask(s2, { type: 'end_session', sessionId: onN1.sessionId });
    assert.equal(ended.type, 'session_ended', JSON.stringify(ended));
  });
});
