/**
 * Receipts and presence across two Rampart processes sharing Redis (bus, registry, presence
 * state) and one PostgreSQL schema: a receipt made on node 2 reaches the sender on node 1; a user
 * online on either node is online for everyone (one frame per change and session, whichever node
 * closed the session); a node killed with SIGKILL: its users go offline for the survivor once
 * `limits.nodeLivenessMs` passes (the dead-node sweep), with no close ever happening.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { REDIS_URL, closeAll, newUserId, uniqueRedisPrefix, waitFor, within, type Frame, type TestClient, dropRedisPrefix } from '../helpers/harness.js';
import { spawnServerProcess, writeServerConfig, type ServerProcess, stopServerProcesses } from '../helpers/server-process.js';
import { postgresBackend } from '../helpers/storage-backends.js';
import { createGroup, deviceClient, expectReply, said, waitEvent, type DeviceClient } from '../helpers/timeline.js';

const LIVENESS_MS = 1500;
const PRESENCE_DEBOUNCE_MS = 100;

describe('receipts and presence on two nodes sharing Redis', () => {
  const children: ChildProcess[] = [];
  const clients: TestClient[] = [];
  const backend = postgresBackend('rcluster');
  const prefix = uniqueRedisPrefix('rcluster');
  const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let dir: string;
  let n1: ServerProcess;
  let n2: ServerProcess;
  let configFile: string;

  const user = async (node: ServerProcess, sub = newUserId()): Promise<DeviceClient> => {
    const c = await deviceClient(node.url, sub);
    clients.push(c);
    return c;
  };

  /**
   * `userId` writes once in the group `gid` and goes offline: a member's presence reaches a
   * conversation only once they wrote in it (protocol.md §6a). Resolves once every watcher saw them offline.
   */
  const writeOnce = async (node: ServerProcess, userId: string, gid: string, ...watchers: TestClient[]): Promise<void> => {
    const c = await user(node, userId);
    await said(c, { conversationId: gid }, 'hello, group');
    // Shown online first (after chat.presenceDebounceMs): a close before that publishes no change at all.
    const shown = async (): Promise<boolean> =>
      ((await expectReply(watchers[0]!, { type: 'presence', conversationId: gid }, 'presence')).online as string[]).includes(userId);
    await waitFor(shown, 5000, `${userId} shown online`);
    const offline = watchers.map((w) => w.next((f) => f.type === 'presence_changed' && f.userId === userId && f.online === false, true));
    await c.close();
    await Promise.all(offline);
  };

  before(async () => {
    await backend.setup();
    await admin.connect();
    dir = mkdtempSync(join(tmpdir(), 'rampart-rcluster-'));
    configFile = writeServerConfig(dir, 'rampart.json', {
      storage: backend.allocate().storage,
      redisUrl: REDIS_URL,
      redisKeyPrefix: prefix,
      limits: { nodeLivenessMs: LIVENESS_MS },
      chat: { receiptCoalesceMs: 0, presenceDebounceMs: PRESENCE_DEBOUNCE_MS },
    });
    [n1, n2] = await Promise.all([spawnServerProcess(configFile, children), spawnServerProcess(configFile, children)]);
  });

  after(async () => {
    await closeAll(...clients);
    await stopServerProcesses(children);
    await dropRedisPrefix(admin, prefix);
    await backend.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a delivered and a read receipt made on node 2 reach the sender on node 1', { timeout: 20_000 }, async () => {
    const a = await user(n1);
    const b = await user(n2);
    const sent = await said(a, b.userId, 'across');
    const got = await waitEvent(b, String(sent.id));
    await said(b, a.userId, 'back'); // both have written: the conversation is no longer private
    const delivered = a.next((f) => f.type === 'receipt' && f.delivered === 1, true);
    b.send({ type: 'ack', upTo: got.pos });
    assert.equal((await delivered).userId, b.userId);
    const read = a.next((f) => f.type === 'receipt' && f.read === 1, true);
    await expectReply(b, { type: 'read', conversationId: sent.conversationId, upToSeq: 1 }, 'read_updated');
    await read;
  });

  test('presence counts sessions on every node; one frame per change and watching session', { timeout: 20_000 }, async () => {
    const watcher = await user(n1);
    const watcherOnN2 = await user(n2, watcher.userId);
    const peerId = newUserId();
    const gid = await createGroup(watcher, [peerId]);
    await writeOnce(n2, peerId, gid, watcher, watcherOnN2);
    const mark = [watcher.frames.length, watcherOnN2.frames.length];
    const online = (c: TestClient, value: boolean): Promise<Frame> =>
      c.next((f) => f.type === 'presence_changed' && f.userId === peerId && f.online === value, true);
    const p1 = await user(n1, peerId);
    await Promise.all([online(watcher, true), online(watcherOnN2, true)]);
    // A second session on the other node, then the first closes: still online (counted on node 2).
    const p2 = await user(n2, peerId);
    await p1.close();
    const p = await expectReply(watcher, { type: 'presence', conversationId: gid }, 'presence');
    assert.ok((p.online as string[]).includes(peerId));
    await p2.close();
    await Promise.all([online(watcher, false), online(watcherOnN2, false)]);
    for (const [i, w] of [watcher, watcherOnN2].entries()) {
      assert.deepEqual(w.frames.slice(mark[i]).filter((f) => f.type === 'presence_changed' && f.userId === peerId).map((f) => f.online), [true, false]);
    }
  });

  test('a node killed with SIGKILL: its users go offline for the others after limits.nodeLivenessMs', { timeout: 30_000 }, async () => {
    const n3 = await spawnServerProcess(configFile, children);
    const watcher = await user(n1);
    const victimId = newUserId();
    const gid = await createGroup(watcher, [victimId]);
    await writeOnce(n1, victimId, gid, watcher);
    const up = watcher.next((f) => f.type === 'presence_changed' && f.userId === victimId && f.online === true, true);
    await user(n3, victimId);
    await up;
    const killedAt = Date.now();
    const down = watcher.next((f) => f.type === 'presence_changed' && f.userId === victimId && f.online === false, true);
    n3.child.kill('SIGKILL');
    await within(down, LIVENESS_MS * 4 + 2000, 'the dead node\'s user to go offline');
    const took = Date.now() - killedAt;
    // Functional bounds of the contract, from the config: offline only once the dead node's
    // liveness lapsed (not earlier: a live node's users never flap), and then within one sweep
    // (nodeLivenessMs / 3, docs/protocol.md; written out, not taken from the code under test) and chat.presenceDebounceMs, plus slack for two child processes on a busy machine.
    const sweepMs = Math.floor(LIVENESS_MS / 3);
    assert.ok(took >= LIVENESS_MS / 2, `not before the liveness TTL (${took} ms)`);
    assert.ok(took <= LIVENESS_MS + sweepMs + PRESENCE_DEBOUNCE_MS + 1500, `within nodeLivenessMs plus a sweep and the debounce (${took} ms)`);
  });
});
