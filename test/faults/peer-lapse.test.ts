/**
 * A node killed after its COMMIT but before its PUBLISH reached Redis: the message is stored, but
 * no frame announces it. An online recipient on another node must still get it without
 * reconnecting — when the dead node's cluster membership lapses (`limits.nodeLivenessMs`), the
 * node that notices announces a resync and every session reads its gap from storage
 * (src/bus/peer-watch.ts). Two server processes sharing PostgreSQL and Redis; the killed node's
 * bus publisher reaches Redis through a proxy the test black-holes just before the send.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { closeAll, dropRedisPrefix, newUserId, REDIS_URL, startRedisProxy, uniqueRedisPrefix, within, type TcpProxy, type TestClient } from '../helpers/harness.js';
import { spawnServerProcess, stopServerProcesses, writeServerConfig } from '../helpers/server-process.js';
import { postgresBackend } from '../helpers/storage-backends.js';
import { deviceClient, said, waitEvent } from '../helpers/timeline.js';

const backend = postgresBackend('lapse');
const children: ChildProcess[] = [];
const clients: TestClient[] = [];
const prefix = uniqueRedisPrefix('lapse');
let dir: string;
let proxy: TcpProxy | undefined;

before(async () => {
  await backend.setup();
  dir = mkdtempSync(join(tmpdir(), 'rampart-lapse-'));
});

after(async () => {
  await closeAll(...clients);
  await stopServerProcesses(children);
  await proxy?.close();
  await backend.teardown();
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  await redis.connect();
  await dropRedisPrefix(redis, prefix);
  rmSync(dir, { recursive: true, force: true });
});

test('a node SIGKILLed between commit and publish: the recipient online on another node gets the message once the node lapses', { timeout: 30_000 }, async () => {
  proxy = await startRedisProxy(REDIS_URL);
  const location = backend.allocate();
  const common = { storage: location.storage, redisKeyPrefix: prefix, limits: { nodeLivenessMs: 1500 } };
  const a = await spawnServerProcess(writeServerConfig(dir, 'a.json', { ...common, redisUrl: proxy.url }), children);
  const b = await spawnServerProcess(writeServerConfig(dir, 'b.json', { ...common, redisUrl: REDIS_URL }), children);

  const recipientId = newUserId();
  const recipient = await deviceClient(b.url, recipientId, { deviceId: 'phone' });
  const sender = await deviceClient(a.url, newUserId(), { deviceId: 'laptop' });
  clients.push(recipient, sender);

  const first = await said(sender, recipientId, 'before the kill');
  const seen = await waitEvent(recipient, String(first.id));

  // A's bus publisher goes silent (its other Redis connections keep working), the message is
  // committed and acknowledged, its PUBLISH sits in a dead socket, and A dies.
  proxy.freeze(':pub');
  const lost = await said(sender, recipientId, 'committed, never published');
  a.child.kill('SIGKILL');
  await a.exited;

  // The lapse is noticed within nodeLivenessMs plus one refresh (a third of it): ~2 s here.
  const delivered = await within(waitEvent(recipient, String(lost.id)), 15_000, 'the lost message on the other node');
  assert.equal(delivered.content, 'committed, never published');
  assert.equal(delivered.pos, (seen.pos as number) + 1, 'the next position of the recipient\'s stream');
  assert.equal(recipient.ws.readyState, WebSocket.OPEN, 'without reconnecting');
});
