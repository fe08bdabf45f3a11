/**
 * Lifecycle helpers that must never end the process or hang a shutdown: a listener's later
 * 'error' goes to its handler; a QUIT to a Redis that never answers gives up after its bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { listen } from '../../src/server/listen.js';
import { quitRedis } from '../../src/redis/quit.js';
import { startServer } from '../helpers/harness.js';

/** The accept backlog the kernel reports for the TCP listener on `port` (`ss`: Send-Q of a LISTEN socket). */
function kernelBacklog(port: number): number {
  const out = spawnSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' });
  assert.equal(out.error, undefined, 'the ss command (iproute2) is needed to read a listener\'s backlog');
  const fields = out.stdout.trim().split(/\s+/);
  assert.equal(fields[0], 'LISTEN', out.stdout);
  return Number(fields[2]);
}

test('listen resolves the bound address; a later error reaches onError instead of throwing', async () => {
  const server = createServer();
  const errors: string[] = [];
  const address = await listen(server, 0, '127.0.0.1', (err) => errors.push(err.message));
  try {
    assert.equal(address.address, '127.0.0.1');
    assert.ok(address.port > 0);
    server.emit('error', new Error('accept failed'));
    assert.deepEqual(errors, ['accept failed']);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('listen rejects when the port is taken, and leaves no listener behind', async () => {
  const first = createServer();
  const { port } = await listen(first, 0, '127.0.0.1', () => {});
  const second = createServer();
  try {
    await assert.rejects(listen(second, port, '127.0.0.1', () => {}), { code: 'EADDRINUSE' });
    assert.equal(second.listenerCount('error'), 0);
  } finally {
    await new Promise((resolve) => first.close(resolve));
  }
});

test('listen passes the backlog to the kernel; Rampart listens with listenBacklog (4096 by default)', async () => {
  const server = createServer();
  const { port } = await listen(server, 0, '127.0.0.1', () => {}, 777);
  try {
    assert.equal(kernelBacklog(port), 777);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  for (const [given, expected] of [[undefined, 4096], [1234, 1234]] as const) {
    const srv = await startServer(given === undefined ? {} : { listenBacklog: given });
    try {
      assert.equal(kernelBacklog(srv.port), Math.min(expected, Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'))));
    } finally {
      await srv.close();
    }
  }
});

/** Just what quitRedis touches of an ioredis connection. */
function fakeConnection(quit: () => Promise<unknown>): { conn: Redis; disconnected: () => boolean } {
  let disconnected = false;
  const conn = {
    status: 'ready',
    quit,
    disconnect: () => {
      disconnected = true;
    },
  } as unknown as Redis;
  return { conn, disconnected: () => disconnected };
}

test('quitRedis: a QUIT that is answered closes politely, without dropping the socket', async () => {
  const f = fakeConnection(() => Promise.resolve('OK'));
  await quitRedis(f.conn, 50);
  assert.equal(f.disconnected(), false);
});

test('quitRedis: a QUIT never answered (a silently dead connection) drops the socket after the bound', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const f = fakeConnection(() => new Promise(() => {}));
  const quitting = quitRedis(f.conn, 50);
  t.mock.timers.tick(49);
  await new Promise((r) => setImmediate(r));
  assert.equal(f.disconnected(), false, 'still waiting for the answer before the bound');
  t.mock.timers.tick(1);
  await quitting;
  assert.equal(f.disconnected(), true, 'dropped when the bound ran out');
});

test('quitRedis: a QUIT that fails drops the socket', async () => {
  const f = fakeConnection(() => Promise.reject(new Error('Connection is closed.')));
  await quitRedis(f.conn, 50);
  assert.equal(f.disconnected(), true);
});
