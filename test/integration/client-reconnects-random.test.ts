/**
 * The SDK's headline promise, randomized (seeded): no lost messages across reconnects, no
 * duplicates on resend. A real in-process server on SQLite (a file in a temp dir), 4 users × 2
 * devices, each device a Node client (createNodeClient) with its own deviceId and a FileSyncStore
 * that keeps its position. Random operations: direct and group sends (some under a clientMsgId the
 * application chose, re-sent from the user's other device after a drop), abrupt TCP drops of a
 * client's socket (the socket destroyed, no close frame), a client closed and a new one opened
 * on the same device and store (sends the close rejected are sent again under their clientMsgId),
 * and once a server restart on the same database file. The SDK acknowledges by itself.
 *
 * When all is quiet, for every device: the messages its application saw (`message` and `sent`
 * events, over all its clients) are exactly the messages of its user's conversations, each once,
 * in per-conversation seq order; every send promise settled, resolved in the end with one
 * messageId per clientMsgId; the database holds one message per clientMsgId. (docs/client.md
 * promises exactly once within a client's life: a key sent again from a later client of the
 * device, after an earlier one handed the message over, is answered by a `sent` without `pos` —
 * the one thing let through twice, and counted.)
 *
 * A server restart drains: a client whose reconnect (or reopen) lands in the drain gets 503 with
 * `Retry-After: 1` (it was 60: client-restart-drain.test.ts).
 *
 * Replay a run with RAMPART_TEST_SEED=<seed printed at the start>.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createNodeClient, FileSyncStore, SendError, type RampartClient, type SendReceipt } from '../../src/client/node.js';
import { signDevToken } from '../../src/auth/dev-token.js';
import { freePort, startServer, newUserId, TEST_SECRET, waitFor, within, type TestServer } from '../helpers/harness.js';
import { GENEROUS_BUDGETS, prng, testSeed } from '../helpers/timeline.js';
import { sqliteBackend } from '../helpers/storage-backends.js';

const USERS = 4;
const DEVICES = 2;
const STEPS = 300;
const EVENT_MESSAGE = 0; // events.kind of a chat message (src/store/message-codec.ts)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every client-side `ws` socket by the deviceId its `auth` frame named (the SDK's own factory is used). */
function spySockets(): { byDevice: Map<string, WebSocket>; restore(): void } {
  const byDevice = new Map<string, WebSocket>();
  const orig = WebSocket.prototype.send;
  WebSocket.prototype.send = function (this: WebSocket, ...args: Parameters<WebSocket['send']>) {
    const data = args[0];
    if (this.url && typeof data === 'string' && data.includes('"type":"auth"')) {
      try {
        const frame = JSON.parse(data) as { type?: string; deviceId?: string };
        if (frame.type === 'auth' && typeof frame.deviceId === 'string') byDevice.set(frame.deviceId, this);
      } catch {
        // not JSON: not an auth frame
      }
    }
    return orig.apply(this, args);
  } as WebSocket['send'];
  return { byDevice, restore: () => void (WebSocket.prototype.send = orig) };
}

/** One message id handed to a device's application. */
interface Seen {
  id: string;
  conversationId: string;
  seq: number;
  pos?: number;
  via: 'message' | 'sent';
  life: number;
}

interface Device {
  user: number;
  index: number;
  deviceId: string;
  store: FileSyncStore;
  client: RampartClient | undefined;
  life: number;
  seen: Seen[];
  gaps: number;
  /** What the device's clients said happened to them (for a failure's report). */
  log: string[];
  /** Sends the last close rejected: sent again under their clientMsgId by the next client. */
  toResend: Send[];
  reopening: Promise<void> | undefined;
}

interface Attempt {
  device: string;
  life: number;
  settled: number;
  receipt?: SendReceipt;
  error?: unknown;
  done: Promise<void>;
}

/** A logical send: one message the application means to store once. */
interface Send {
  key: number;
  user: number;
  target: { recipientId: string } | { conversationId: string };
  content: string;
  /** Chosen by the application, or the SDK's (from the first attempt's receipt or SendError). */
  clientMsgId: string | undefined;
  attempts: Attempt[];
}

test('SDK clients under random drops, reopens, resends and a server restart: every message once, in order, every send once', { timeout: 90_000 }, async () => {
  const seed = testSeed();
  console.log(`client-reconnects-random seed=${seed} (replay: RAMPART_TEST_SEED=${seed})`);
  const rnd = prng(seed);
  const dir = mkdtempSync(join(tmpdir(), 'rampart-reconnects-'));
  const backend = sqliteBackend();
  const location = backend.allocate();
  const port = await freePort();
  const serverConfig = { ...GENEROUS_BUDGETS, port, storage: location.storage };
  let srv: TestServer | undefined = await startServer(serverConfig, { keepDir: dir });
  const url = `ws://127.0.0.1:${port}/ws`;
  const spy = spySockets();

  const userIds = Array.from({ length: USERS }, () => newUserId());
  const devices: Device[] = [];
  const allClients: RampartClient[] = [];
  const sends: Send[] = [];
  const counts = { drops: 0, reopens: 0, resends: 0, crossDeviceResends: 0, restarts: 0, lateResends: 0 };
  let acrossLives = 0;

  // Every random draw happens in the operation loop's order (never after an await of a timer or
  // a socket), so a seed always makes the same operations.
  const open = (d: Device, ackDelayMs: number): RampartClient => {
    d.life++;
    const life = d.life;
    const client = createNodeClient({
      url,
      deviceId: d.deviceId,
      store: d.store,
      token: () => signDevToken(TEST_SECRET, { sub: userIds[d.user]!, ttl: 3600 }),
      backoff: { baseMs: 30, maxMs: 300 },
      shutdownDelayMaxMs: 100,
      ackDelayMs,
      sendBudget: { limit: 1000, windowMs: 1000 },
      requestBudget: { limit: 1000, windowMs: 1000 },
    });
    client.on('message', (m) => d.seen.push({ id: m.id, conversationId: m.conversationId, seq: m.seq, pos: m.pos, via: 'message', life }));
    client.on('sent', (s) => d.seen.push({ id: s.id, conversationId: s.conversationId, seq: s.seq, ...(s.pos !== undefined ? { pos: s.pos } : {}), via: 'sent', life }));
    client.on('gap', () => d.gaps++);
    const t0 = Date.now();
    const note = (what: string) => d.log.push(`#${life} +${Date.now() - t0}ms ${what}`);
    client.on('disconnected', (e) => note(`disconnected ${e.code} ${e.reason} retryIn=${e.retryInMs}`));
    client.on('error', (e) => note(`error ${e.reason} ${JSON.stringify(e.details ?? '')}`));
    client.on('state', (e) => note(`state ${e.state}`));
    client.on('ready', (e) => note(`ready after=${e.resumeAfter} reconnect=${e.reconnect}`));
    allClients.push(client);
    d.client = client;
    return client;
  };

  const attempt = (send: Send, d: Device): void => {
    const client = d.client!;
    const a: Attempt = { device: d.deviceId, life: d.life, settled: 0, done: Promise.resolve() };
    const p = client.sendMessage(send.target, send.content, send.clientMsgId !== undefined ? { clientMsgId: send.clientMsgId } : {});
    a.done = p.then(
      (r) => {
        a.settled++;
        a.receipt = r;
        send.clientMsgId ??= r.clientMsgId;
      },
      (err: unknown) => {
        a.settled++;
        a.error = err;
        if (err instanceof SendError) send.clientMsgId ??= err.clientMsgId;
        // A send the close rejected goes out again from the device's next client, under its key.
        if (err instanceof SendError && err.reason === 'closed') d.toResend.push(send);
      },
    );
    send.attempts.push(a);
  };

  const reopen = async (d: Device, delayMs: number, ackDelayMs: number): Promise<void> => {
    d.client!.close();
    d.client = undefined;
    counts.reopens++;
    await sleep(delayMs);
    const client = open(d, ackDelayMs);
    await client.connect();
    // Every attempt of the old client has settled (close() rejects what it had not confirmed).
    await Promise.all(sends.flatMap((s) => s.attempts.filter((a) => a.device === d.deviceId).map((a) => a.done)));
    const again = d.toResend.splice(0);
    for (const s of again) {
      counts.resends++;
      attempt(s, d);
    }
  };

  try {
    for (let u = 0; u < USERS; u++) {
      for (let i = 0; i < DEVICES; i++) {
        const deviceId = `fz-${seed.toString(36)}-u${u}d${i}`;
        const d: Device = { user: u, index: i, deviceId, store: new FileSyncStore(join(dir, `${deviceId}.json`)), client: undefined, life: 0, seen: [], gaps: 0, toResend: [], reopening: undefined, log: [] };
        devices.push(d);
        open(d, 20 + rnd.int(200));
      }
    }
    await Promise.all(devices.map((d) => d.client!.connect()));

    // Two groups, made through the SDK before anything else: every device sees them from the start.
    const g1 = await devices[0]!.client!.createGroup('g1', [userIds[1]!, userIds[2]!]);
    const g2 = await devices[2 * DEVICES - 1]!.client!.createGroup('g2', [userIds[2]!, userIds[3]!]);
    const groups = [
      { id: g1.conversationId, members: [0, 1, 2] },
      { id: g2.conversationId, members: [1, 2, 3] },
    ];

    const restartAt = Math.floor(STEPS / 4) + rnd.int(Math.floor(STEPS / 2));
    const restartPauseMs = rnd.int(150);
    const isOpen = (d: Device) => d.client !== undefined && d.reopening === undefined;
    const dropSocket = (d: Device) => {
      const ws = spy.byDevice.get(d.deviceId);
      if (ws === undefined) return;
      counts.drops++;
      (ws as unknown as { _socket?: { destroy(): void } })._socket?.destroy(); // a network drop: no close frame
    };

    for (let step = 0; step < STEPS; step++) {
      // Each step draws the same numbers whatever happened before: a seed always asks for the same
      // operations (one the moment does not allow — its device is being reopened — is skipped).
      const [r, pu, pd, pt, pg, pr, pk, pdrop, pother, pms] = Array.from({ length: 10 }, () => rnd.next()) as [number, number, number, number, number, number, number, number, number, number];
      const of = (n: number, p: number) => Math.floor(p * n);
      if (step === restartAt) {
        // The server restarts on the same database file, while sends go on.
        const old = srv!;
        srv = undefined;
        await old.close();
        await sleep(restartPauseMs);
        srv = await startServer(serverConfig, { keepDir: dir });
        counts.restarts++;
      }
      const u = of(USERS, pu);
      const d = devices[u * DEVICES + of(DEVICES, pd)]!;
      const other = devices[u * DEVICES + ((of(DEVICES, pd) + 1 + of(DEVICES - 1, pother)) % DEVICES)]!;
      if (r < 0.55) {
        if (!isOpen(d)) continue;
        const mine = groups.filter((g) => g.members.includes(u));
        const target = pt < 0.5 ? { conversationId: mine[of(mine.length, pg)]!.id } : { recipientId: userIds[(u + 1 + of(USERS - 1, pr)) % USERS]! };
        const key = sends.length;
        const send: Send = { key, user: u, target, content: `s${key} from u${u}`, clientMsgId: pk < 0.35 ? `app-${seed.toString(36)}-${key}` : undefined, attempts: [] };
        sends.push(send);
        attempt(send, d);
        // An application-chosen key, and the network drops: the application sends it again from
        // the user's other device (the server stores it once; both promises name that message).
        if (send.clientMsgId !== undefined && pdrop < 0.5) {
          await sleep(of(5, pms));
          if (isOpen(d)) dropSocket(d);
          if (isOpen(other)) {
            counts.crossDeviceResends++;
            attempt(send, other);
          }
        }
      } else if (r < 0.67) {
        if (isOpen(d)) dropSocket(d);
      } else if (r < 0.73) {
        if (!isOpen(d)) continue;
        d.reopening = reopen(d, of(200, pms), 20 + of(200, pk)).finally(() => {
          d.reopening = undefined;
        });
      } else if (r < 0.77) {
        // The application sends one of its messages again under its key, from either device (it
        // could not tell whether it was confirmed): answered with the same message, stored once.
        const s = sends[of(sends.length, pk)];
        if (s === undefined || !s.clientMsgId?.startsWith('app-')) continue;
        const from = devices[s.user * DEVICES + of(DEVICES, pd)]!;
        // Not where the key is still queued: that is refused (duplicate_client_msg_id), by design.
        if (!isOpen(from) || s.attempts.some((a) => a.device === from.deviceId && a.settled === 0)) continue;
        counts.lateResends++;
        attempt(s, from);
      } else {
        await sleep(5 + of(35, pms));
      }
    }

    // Quiet down: every reopen done, every send settled, resends of closed ones included.
    for (let round = 0; ; round++) {
      await within(Promise.all(devices.map((d) => d.reopening)), 30_000, 'every reopen to finish');
      await within(Promise.all(sends.flatMap((s) => s.attempts.map((a) => a.done))), 20_000, 'every send promise to settle').catch((err: unknown) => {
        const open = sends.flatMap((s) => s.attempts.filter((a) => a.settled === 0).map((a) => ({ a, s })));
        const detail = open.map(({ a, s }) => {
          const d = devices.find((x) => x.deviceId === a.device)!;
          return `send ${s.key} ${s.clientMsgId} to ${JSON.stringify(s.target)} on ${a.device}#${a.life} (device now #${d.life}, state ${d.client?.state}, pending ${d.client?.pendingSends}; attempts ${s.attempts.map((x) => `${x.device.slice(-4)}#${x.life}:${x.receipt ? 'ok ' + x.receipt.id.slice(0, 8) : x.error ? String(x.error) : 'open'}`).join(' | ')})`;
        });
        const logs = [...new Set(open.map(({ a }) => a.device))].map((id) => `${id}:\n  ${devices.find((x) => x.deviceId === id)!.log.slice(-40).join('\n  ')}`);
        throw new Error(`${String(err)}: seed ${seed}: ${open.length} unsettled:\n${detail.join('\n')}\n${logs.join('\n')}`);
      });
      if (devices.every((d) => d.reopening === undefined && d.toResend.length === 0)) break;
      assert.ok(round < 20, 'sends keep being rejected');
    }
    // Every device's client catches up to its user's last timeline position, then a moment for
    // a late duplicate to show.
    await waitFor(
      async () => {
        for (const d of devices) {
          const sync = await location.sync(userIds[d.user]!);
          if (d.client!.pos !== sync.lastPos) return false;
        }
        return true;
      },
      30_000,
      'every device to reach its user’s last position',
    );
    await sleep(300);

    console.log(`client-reconnects-random seed=${seed}: ${sends.length} sends, ${JSON.stringify(counts)}, gaps ${devices.map((d) => d.gaps).join(',')}`);

    // Every send promise settled once; each logical send resolved, one messageId per clientMsgId.
    const rows = (await location.rows()).filter((row) => Number(row.kind) === EVENT_MESSAGE);
    const rowByClientMsgId = new Map<string, (typeof rows)[number][]>();
    for (const row of rows) {
      const key = `${String(row.sender_id)} ${String(row.client_msg_id)}`;
      rowByClientMsgId.set(key, [...(rowByClientMsgId.get(key) ?? []), row]);
    }
    for (const [key, list] of rowByClientMsgId) assert.equal(list.length, 1, `one stored message per clientMsgId (${key})`);
    for (const s of sends) {
      const where = `seed ${seed}, send ${s.key} (${s.clientMsgId})`;
      for (const a of s.attempts) assert.equal(a.settled, 1, `${where}: attempt on ${a.device}#${a.life} settled once`);
      const resolved = s.attempts.filter((a) => a.receipt !== undefined);
      assert.ok(resolved.length >= 1, `${where}: resolved (attempts: ${s.attempts.map((a) => (a.error ? String((a.error as Error).message ?? a.error) : 'ok')).join(' | ')})`);
      for (const a of s.attempts) {
        if (a.error !== undefined) assert.ok(a.error instanceof SendError && a.error.reason === 'closed', `${where}: only close() rejects a send, got ${String(a.error)}`);
      }
      const ids = new Set(resolved.map((a) => a.receipt!.id));
      assert.equal(ids.size, 1, `${where}: one messageId for every attempt under one clientMsgId: ${[...ids].join(', ')}`);
      const stored = rowByClientMsgId.get(`${userIds[s.user]} ${s.clientMsgId}`);
      assert.equal(stored?.length, 1, `${where}: stored once`);
      assert.equal(stored![0]!.id, [...ids][0], `${where}: the stored message is the one the promise named`);
      assert.equal(stored![0]!.content, s.content, `${where}: content`);
    }
    assert.equal(rows.length, sends.length, 'no message stored that no send asked for');

    // Every device saw its user's messages, each once, per conversation in seq order.
    for (const d of devices) {
      const me = userIds[d.user]!;
      const inMine = (row: (typeof rows)[number]) => {
        const g = groups.find((x) => x.id === row.conversation_id);
        if (g !== undefined) return g.members.includes(d.user);
        return row.sender_id === me || row.recipient_id === me;
      };
      const expected = rows.filter(inMine);
      const where = `seed ${seed}, device u${d.user}d${d.index}`;
      // docs/client.md: exactly once within a client's life. A send close() rejected and the
      // application sent again from the device's next client is answered without `pos` when it was
      // stored already; that client cannot know an earlier one handed the message's copy over.
      const seen = d.seen.filter((s, i) => {
        const first = d.seen.findIndex((x) => x.id === s.id);
        if (first === i || s.via !== 'sent' || s.pos !== undefined || d.seen[first]!.life === s.life) return true;
        acrossLives++;
        return false;
      });
      const seenIds = seen.map((s) => s.id);
      const twice = seenIds.filter((id, i) => seenIds.indexOf(id) !== i);
      assert.deepEqual(
        twice.map((id) => d.seen.filter((s) => s.id === id)),
        [],
        `${where}: no message handed over twice`,
      );
      const missing = expected.filter((row) => !seenIds.includes(String(row.id)));
      assert.deepEqual(
        missing.map((row) => `${String(row.conversation_id)}#${String(row.seq)}`),
        [],
        `${where}: no message missing`,
      );
      const expectedIds = new Set(expected.map((row) => String(row.id)));
      assert.deepEqual(seenIds.filter((id) => !expectedIds.has(id)), [], `${where}: nothing from other conversations`);
      const lastSeq = new Map<string, number>();
      for (const s of seen) {
        const prev = lastSeq.get(s.conversationId) ?? 0;
        assert.ok(s.seq > prev, `${where}: ${s.conversationId} in seq order (${prev} then ${s.seq})`);
        lastSeq.set(s.conversationId, s.seq);
      }
      const positions = d.seen.flatMap((s) => (s.pos !== undefined ? [s.pos] : []));
      for (let i = 1; i < positions.length; i++) assert.ok(positions[i]! > positions[i - 1]!, `${where}: positions increase (${positions[i - 1]} then ${positions[i]})`);
    }
    console.log(`client-reconnects-random seed=${seed}: passed; ${acrossLives} own message(s) confirmed again, without pos, to a later client of a device`);
  } finally {
    for (const c of allClients) c.close();
    spy.restore();
    await Promise.all(devices.map((d) => d.reopening?.catch(() => {})));
    for (const c of allClients) c.close();
    await srv?.close();
    await backend.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
});
