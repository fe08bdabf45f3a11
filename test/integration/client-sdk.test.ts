/**
 * The client SDK against a real Rampart: two Node clients (rampart/client/node) talk while the
 * server process is killed (SIGKILL) and restarted, while a proxy cuts their TCP connections, and
 * while their tokens expire. Each application must see every message of the other exactly once,
 * in the order it was sent, and every send must resolve.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { createNodeClient, FileSyncStore, type RampartClient, type SendReceipt } from '../../src/client/node.js';
import { signDevToken } from '../../src/auth/dev-token.js';
import { startServer, startTcpProxy, newUserId, TEST_SECRET, waitFor, within } from '../helpers/harness.js';
import { spawnServerProcess, writeServerConfig } from '../helpers/server-process.js';

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Limits high enough that this test measures delivery, not rate limiting. */
const GENEROUS = {
  rateLimit: { burstLimit: 10_000, messagesPerMinute: 100_000, messagesPerHour: 100_000 },
  limits: { frames: { limit: 10_000, windowMs: 1000 }, requests: { limit: 10_000, windowMs: 1000 } },
};
const FAST_RETRY = { backoff: { baseMs: 50, maxMs: 400 }, shutdownDelayMaxMs: 200, ackDelayMs: 20 };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A client and what its application saw: every timeline event, in the order it was handed over. */
interface Peer {
  id: string;
  client: RampartClient;
  /** Contents of messages from the other user, in arrival order. */
  received: string[];
  /** Every message id handed to the application (message or sent event). */
  ids: string[];
  /** Positions of the events that carried one, in arrival order. */
  positions: number[];
  disconnects: number[];
  tokens: number;
}

function peer(url: string, o: { ttlSeconds?: number; store?: FileSyncStore; refresh?: { marginMs: number; minDelayMs: number } } = {}): Peer {
  const id = newUserId();
  const p: Peer = { id, client: undefined as unknown as RampartClient, received: [], ids: [], positions: [], disconnects: [], tokens: 0 };
  p.client = createNodeClient({
    url,
    token: () => {
      p.tokens++;
      return signDevToken(TEST_SECRET, { sub: id, ttl: o.ttlSeconds ?? 3600 });
    },
    ...FAST_RETRY,
    ...(o.store ? { store: o.store } : {}),
    ...(o.refresh ? { refresh: o.refresh } : {}),
  });
  p.client.on('message', (m) => {
    p.ids.push(m.id);
    p.positions.push(m.pos);
    if (!m.own) p.received.push(m.content);
  });
  p.client.on('sent', (s) => {
    p.ids.push(s.id);
    if (s.pos !== undefined) p.positions.push(s.pos);
  });
  p.client.on('disconnected', (d) => p.disconnects.push(d.code));
  return p;
}

/**
 * A and B each send `n` messages to the other, one every `everyMs`; `during(i)` runs after the
 * i-th pair (faults are injected there). Then every send must resolve and each side must have
 * the other's n messages exactly once, in order.
 */
async function converse(a: Peer, b: Peer, n: number, everyMs: number, during: (i: number) => Promise<void> | void): Promise<void> {
  const sends: Promise<SendReceipt>[] = [];
  for (let i = 0; i < n; i++) {
    sends.push(a.client.sendMessage({ recipientId: b.id }, `a${i}`));
    sends.push(b.client.sendMessage({ recipientId: a.id }, `b${i}`));
    await during(i);
    await sleep(everyMs);
  }
  const receipts = await within(Promise.all(sends), 30_000, 'every send to be confirmed');
  assert.equal(new Set(receipts.map((r) => r.id)).size, 2 * n, 'one stored message per send');
  await waitFor(() => a.received.length >= n && b.received.length >= n, 30_000, `both sides to receive ${n} messages (a has ${a.received.length}, b has ${b.received.length})`);
  await sleep(100); // anything extra (a duplicate) would arrive now
  const expect = (prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  assert.deepEqual(b.received, expect('a'), 'B saw each of A’s messages once, in order');
  assert.deepEqual(a.received, expect('b'), 'A saw each of B’s messages once, in order');
  for (const p of [a, b]) {
    assert.equal(new Set(p.ids).size, p.ids.length, 'no message id handed over twice');
    for (let i = 1; i < p.positions.length; i++) assert.ok(p.positions[i]! > p.positions[i - 1]!, `positions increase: ${p.positions.join(',')}`);
  }
}

test('the server process is killed (SIGKILL) mid-conversation and restarted: nothing lost, nothing twice', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-sdk-kill-'));
  const port = await freePort();
  const config = writeServerConfig(dir, 'rampart.json', { port, storage: `sqlite:${join(dir, 'db.sqlite')}`, ...GENEROUS });
  let server = await spawnServerProcess(config, children);
  const url = `ws://127.0.0.1:${port}/ws`;
  const a = peer(url, { store: new FileSyncStore(join(dir, 'a-sync.json')) });
  const b = peer(url, { store: new FileSyncStore(join(dir, 'b-sync.json')) });
  try {
    await Promise.all([a.client.connect(), b.client.connect()]);
    await converse(a, b, 30, 15, async (i) => {
      if (i !== 12) return;
      server.child.kill('SIGKILL');
      await server.exited;
      server = await spawnServerProcess(config, children);
    });
    assert.ok(a.disconnects.length >= 1 && b.disconnects.length >= 1, 'both clients lost the server');
    // The file store kept the device and its position.
    a.client.close();
    const saved = new FileSyncStore(join(dir, 'a-sync.json')).load();
    assert.equal(saved?.deviceId, a.client.deviceId);
    assert.equal(saved?.pos, a.client.pos);
  } finally {
    a.client.close();
    b.client.close();
    server.child.kill('SIGTERM');
    await server.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a proxy cuts the TCP connections while messages flow both ways: each message once, in order', { timeout: 120_000 }, async () => {
  const srv = await startServer(GENEROUS);
  const proxy = await startTcpProxy('127.0.0.1', srv.port);
  const url = `ws://127.0.0.1:${proxy.port}/ws`;
  const a = peer(url);
  const b = peer(url);
  try {
    await Promise.all([a.client.connect(), b.client.connect()]);
    await converse(a, b, 40, 10, async (i) => {
      if (i % 10 !== 5) return;
      await proxy.stop(); // every connection dropped mid-stream, and no new one for a moment
      await sleep(80);
      await proxy.start();
    });
    assert.ok(a.disconnects.length >= 3, `A reconnected after each cut (${a.disconnects.join(',')})`);
    assert.ok(b.disconnects.length >= 3);
  } finally {
    a.client.close();
    b.client.close();
    await proxy.close();
    await srv.close();
  }
});

test('tokens expire during the conversation: refreshed on the open socket, or renewed on reconnect', { timeout: 120_000 }, async () => {
  const srv = await startServer({ ...GENEROUS, jwt: { secret: TEST_SECRET, clockTolerance: 0 } });
  // A refreshes 1 s before exp (tokens of 2 s): it never loses its socket.
  const a = peer(srv.url, { ttlSeconds: 2, refresh: { marginMs: 1000, minDelayMs: 100 } });
  // B never refreshes in time: the server closes it at exp (4005) and it comes back with a fresh token.
  const b = peer(srv.url, { ttlSeconds: 2, refresh: { marginMs: 0, minDelayMs: 600_000 } });
  try {
    await Promise.all([a.client.connect(), b.client.connect()]);
    await converse(a, b, 40, 100, () => {});
    assert.deepEqual(a.disconnects, [], 'A kept its socket through the refreshes');
    assert.ok(a.tokens >= 3, `A asked for fresh tokens (${a.tokens})`);
    assert.ok(b.disconnects.length >= 1 && b.disconnects.every((c) => c === 4005), `B was closed for expiry: ${b.disconnects.join(',')}`);
    assert.equal(b.tokens, b.disconnects.length + 1, 'a fresh token for every reconnect');
  } finally {
    a.client.close();
    b.client.close();
    await srv.close();
  }
});

test('production mode: no demo page, no SDK files, no token endpoint; development: all of them', { timeout: 60_000 }, async () => {
  const prod = await startServer({
    mode: 'production',
    jwt: { secret: TEST_SECRET, issuer: 'https://id.example.com', audience: 'chat' },
    allowedOrigins: ['https://chat.example.com'],
    behindProxy: ['127.0.0.1'],
    metrics: { port: 0 },
  });
  const dev = await startServer();
  try {
    const paths = ['/', '/demo.js', '/client/rampart-client.js', '/protocol/reasons.js', '/dev/token?name=alice', '/dev/user?name=alice'];
    for (const p of paths) assert.equal((await fetch(`${prod.httpUrl}${p}`)).status, 404, `production ${p}`);
    const issued = (await (await fetch(`${dev.httpUrl}/dev/token?name=alice`)).json()) as { token: string; userId: string };
    // The development token works with the SDK against the same server.
    const client = createNodeClient({ url: dev.url, token: issued.token });
    await client.connect();
    assert.equal(client.userId, issued.userId);
    client.close();
  } finally {
    await prod.close();
    await dev.close();
  }
});
