/**
 * Presence frames of two nodes published out of order: a check swaps the shared state in Redis,
 * then reads the contacts from storage before it publishes. Node 1 flips the user offline (their
 * last session there closed) and is slow to publish; meanwhile the user connects to node 2, whose
 * check flips them online and publishes at once. Node 1's "offline" arrives last — and would stand
 * (protocol.md §6a: online while holding a session on any node) but that a flip's publisher reads
 * the published state again after its frame and restates it while it moved. The same for a user
 * who hides on node 2 while node 1 shows them: they end hidden.
 *
 * Node 1's storage goes through a pausable TCP proxy (no code is changed; the pause stands for a
 * slow query).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import { PG_URL } from '../helpers/harness.js';
import { REDIS_URL, closeAll, newUserId, startServer, uniqueRedisPrefix, waitFor, dropRedisPrefix, type Frame, type TestClient, type TestServer } from '../helpers/harness.js';
import { postgresBackend } from '../helpers/storage-backends.js';
import { deviceClient, expectReply, said, waitEvent, type DeviceClient, GENEROUS_BUDGETS } from '../helpers/timeline.js';

interface PausableProxy {
  port: number;
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

async function pausableProxy(host: string, port: number): Promise<PausableProxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let paused = false;
  const link = ([a, b]: [net.Socket, net.Socket]): void => {
    a.pipe(b);
    b.pipe(a);
  };
  const server = net.createServer((inbound) => {
    const outbound = net.connect(port, host);
    const pair: [net.Socket, net.Socket] = [inbound, outbound];
    pairs.add(pair);
    for (const s of pair) {
      s.on('error', () => {});
      s.on('close', () => {
        pairs.delete(pair);
        inbound.destroy();
        outbound.destroy();
      });
    }
    if (!paused) link(pair);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    pause: () => {
      paused = true;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    resume: () => {
      if (!paused) return;
      paused = false;
      for (const pair of pairs) link(pair);
    },
    close: async () => {
      const closed = new Promise((r) => server.close(r));
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await closed;
    },
  };
}

describe('presence frames of two nodes out of order', () => {
  const clients: TestClient[] = [];
  const backend = postgresBackend('whor');
  const prefix = uniqueRedisPrefix('whor');
  const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let n1: TestServer;
  let n2: TestServer;
  let proxy: PausableProxy;
  let schema: string;

  const user = async (node: TestServer, sub = newUserId()): Promise<DeviceClient> => {
    const c = await deviceClient(node.url, sub);
    clients.push(c);
    return c;
  };
  const listed = async (asker: TestClient, conv: string, who: string): Promise<boolean> =>
    ((await expectReply(asker, { type: 'presence', conversationId: conv }, 'presence')).online as string[]).includes(who);

  before(async () => {
    await backend.setup();
    await admin.connect();
    const storage = backend.allocate().storage;
    schema = new URL(storage).searchParams.get('schema')!;
    proxy = await pausableProxy('127.0.0.1', 5432);
    const viaProxy = storage.replace('127.0.0.1:5432', `127.0.0.1:${proxy.port}`);
    assert.notEqual(viaProxy, storage, `storage url ${storage} names 127.0.0.1:5432`);
    const common = { ...GENEROUS_BUDGETS, redisUrl: REDIS_URL, redisKeyPrefix: prefix, chat: { presenceDebounceMs: 50, receiptCoalesceMs: 0 } };
    n1 = await startServer({ ...common, storage: viaProxy });
    n2 = await startServer({ ...common, storage });
  });

  after(async () => {
    proxy?.resume();
    await closeAll(...clients);
    await n2?.close();
    await n1?.close();
    await proxy?.close();
    await dropRedisPrefix(admin, prefix);
    await backend.teardown();
  });

  test('a user who left node 1 and came back on node 2 ends shown online to their contacts', { timeout: 40_000 }, async () => {
    const w = await user(n2);
    const xId = newUserId();
    const x1 = await user(n1, xId);
    const sent = await said(x1, w.userId, 'x writes to w');
    const m = await waitEvent(w, String(sent.id));
    const conv = String(m.conversationId);
    await waitFor(() => listed(w, conv, xId), 5000, 'x shown online', 50);
    const stateKeys = async (): Promise<string[]> => admin.keys(`${prefix}*presence:u:*${xId}`);
    assert.equal((await stateKeys()).length, 1, 'x has a published-online state key');

    // Node 1's storage stalls; x's only session (on node 1) closes: node 1 flips x offline in Redis, then waits on storage.
    proxy.pause();
    await x1.close();
    await waitFor(async () => (await stateKeys()).length === 0, 10_000, 'node 1 swapped x offline', 20);

    // x comes back on node 2: node 2 flips x online and publishes it.
    const online = w.next((f) => f.type === 'presence_changed' && f.userId === xId && f.online === true, true);
    const x2 = await user(n2, xId);
    await online;

    // Node 1's storage answers: its late "offline" goes out.
    const lateOffline = w.next((f) => f.type === 'presence_changed' && f.userId === xId && f.online === false, true);
    proxy.resume();
    await lateOffline;

    // x is online (session on node 2, visible): the published state says so …
    await waitFor(() => listed(w, conv, xId), 5000, 'x listed online by presence', 50);
    assert.equal(x2.ws.readyState, 1);
    // … and so must the last presence_changed w was sent about x.
    const last = (): Frame | undefined => w.frames.filter((f) => f.type === 'presence_changed' && f.userId === xId).at(-1);
    await waitFor(() => last()?.online === true, 5000, `w's last presence_changed about x says online (got ${JSON.stringify(w.frames.filter((f) => f.type === 'presence_changed' && f.userId === xId))})`, 50).catch((err: unknown) => {
      assert.fail(String(err instanceof Error ? err.message : err) + ` — frames: ${JSON.stringify(w.frames.filter((f) => f.type === 'presence_changed' && f.userId === xId).map((f) => f.online))}`);
    });
  });
  test('a user hiding on node 2 while node 1 shows them online ends hidden for their contacts', { timeout: 40_000 }, async () => {
    const w = await user(n2);
    const xId = newUserId();
    const x1 = await user(n1, xId);
    const x2 = await user(n2, xId);
    const sent = await said(x2, w.userId, 'x writes to w');
    const m = await waitEvent(w, String(sent.id));
    const conv = String(m.conversationId);
    await waitFor(() => listed(w, conv, xId), 5000, 'x shown online', 50);
    const off0 = w.next((f) => f.type === 'presence_changed' && f.userId === xId && f.online === false, true);
    await expectReply(x2, { type: 'set_presence', visible: false }, 'presence_updated');
    await off0;
    const stateKeys = async (): Promise<string[]> => admin.keys(`${prefix}*presence:u:*${xId}`);

    // Storage is slow for everyone's contact lookups (a lock on members stands for it), node 1's more so.
    const locker = new pg.Client({ connectionString: PG_URL });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE "${schema}".members IN ACCESS EXCLUSIVE MODE`);
      // x shows themselves on node 1: node 1 flips x online, then waits for x's contacts.
      await expectReply(x1, { type: 'set_presence', visible: true }, 'presence_updated');
      await waitFor(async () => (await stateKeys()).length === 1, 10_000, 'node 1 swapped x online', 20);
      proxy.pause();
      // x hides again on node 2: node 2 flips x offline, then waits for x's contacts too.
      await expectReply(x2, { type: 'set_presence', visible: false }, 'presence_updated');
      await waitFor(async () => (await stateKeys()).length === 0, 10_000, 'node 2 swapped x offline', 20);
      const off = w.next((f) => f.type === 'presence_changed' && f.userId === xId && f.online === false, true);
      await locker.query('COMMIT');
      await off; // node 2's "offline" first
      const late = w.next((f) => f.type === 'presence_changed' && f.userId === xId && f.online === true, true);
      proxy.resume();
      await late; // node 1's "online" after it
    } finally {
      proxy.resume();
      await locker.end();
    }
    assert.equal(await listed(w, conv, xId), false, 'x is hidden: not listed');
    const seen = (): boolean[] => w.frames.filter((f) => f.type === 'presence_changed' && f.userId === xId).map((f) => f.online as boolean);
    await waitFor(() => seen().at(-1) === false, 5000, 'w last told x is offline (hidden)', 50).catch((err: unknown) => {
      assert.fail(`${err instanceof Error ? err.message : String(err)} — frames about x at w: ${JSON.stringify(seen())}`);
    });
  });
});
