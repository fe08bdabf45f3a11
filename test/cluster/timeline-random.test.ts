/**
 * Seeded randomized test of the v2 delivery guarantee (issue #9) on two server processes sharing
 * Redis and PostgreSQL: six users with two devices each send direct and group messages, devices
 * go offline and come back (on either node, by device position or by `after`), acknowledge, and
 * groups change membership. At the end every session's observed stream must be exactly its
 * user's timeline (as storage holds it) from the session's resume point: strictly increasing,
 * contiguous, no gap, no duplicate, the same event at every position.
 *
 * The seed is printed; `RAMPART_TEST_SEED=<seed>` replays a run.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { REDIS_URL, closeAll, newUserId, uniqueRedisPrefix, waitFor, type Frame, dropRedisPrefix } from '../helpers/harness.js';
import { spawnServerProcess, writeServerConfig, type ServerProcess, stopServerProcesses } from '../helpers/server-process.js';
import { postgresBackend, type StorageLocation } from '../helpers/storage-backends.js';
import { ask, deviceClient, lastPosOf, prng, say, streamOf, testSeed, type DeviceClient, GENEROUS_BUDGETS } from '../helpers/timeline.js';
import { openStore } from '../../src/store/open-store.js';
import type { Store } from '../../src/store/store.js';
import { DEFAULT_TENANT } from '../../src/auth/token-verifier.js';

const SEED = testSeed();
const USERS = 6;
const DEVICES = 2;
const OPERATIONS = 200;
/** Sends in flight before the generator waits for their replies. */
const MAX_IN_FLIGHT = 16;

interface Device {
  userId: string;
  deviceId: string;
  /** The open session, if any. */
  client?: DeviceClient;
  /** Highest position this device acknowledged (confirmed in storage); undefined: never acked. */
  acked?: number;
  /** Highest position any session of this device received. */
  seen: number;
}

interface Group {
  owner: string;
  members: Set<string>;
}

describe(`randomized timelines on two nodes (seed ${SEED})`, () => {
  const children: ChildProcess[] = [];
  const sessions: DeviceClient[] = [];
  const backend = postgresBackend('rand');
  const prefix = uniqueRedisPrefix('rand');
  const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let dir: string;
  let location: StorageLocation;
  let nodes: ServerProcess[];
  let store: Store;

  before(async () => {
    console.log(`timeline-random: seed ${SEED} (replay with RAMPART_TEST_SEED=${SEED})`);
    await backend.setup();
    await admin.connect();
    dir = mkdtempSync(join(tmpdir(), 'rampart-rand-'));
    location = backend.allocate();
    const configFile = writeServerConfig(dir, 'rampart.json', {
      storage: location.storage,
      redisUrl: REDIS_URL,
      redisKeyPrefix: prefix,
      ...GENEROUS_BUDGETS,
      // Small pages: replays and gap reads cross several storage reads.
      chat: { replayPageSize: 3 },
    });
    nodes = await Promise.all([spawnServerProcess(configFile, children), spawnServerProcess(configFile, children)]);
    store = await openStore(location.storage);
  });

  after(async () => {
    await closeAll(...sessions);
    await store?.close();
    await stopServerProcesses(children);
    await dropRedisPrefix(admin, prefix);
    await backend.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  test('every device stream equals its user timeline from its resume point', { timeout: 90_000 }, async (t) => {
    t.diagnostic(`seed ${SEED}`);
    const rnd = prng(SEED);
    const users = Array.from({ length: USERS }, () => newUserId());
    const devices: Device[] = users.flatMap((userId, u) => Array.from({ length: DEVICES }, (_, d) => ({ userId, deviceId: `u${u}-d${d}`, seen: 0 })));
    const groups = new Map<string, Group>();
    const inFlight: { reply: Promise<Frame>; group: boolean; what: string }[] = [];
    const log: string[] = [];
    const counts: Record<string, number> = {};
    const fail = (msg: string): string => `${msg} (seed ${SEED}; last operations: ${log.slice(-15).join(' | ')})`;

    const online = (): Device[] => devices.filter((d) => d.client !== undefined);
    const offline = (): Device[] => devices.filter((d) => d.client === undefined);
    const onlineOf = (userId: string): Device[] => online().filter((d) => d.userId === userId);
    const userAcked = (userId: string): number => Math.max(0, ...devices.filter((d) => d.userId === userId && d.acked !== undefined).map((d) => d.acked!));
    const track = (d: Device): void => {
      const c = d.client!;
      c.ws.on('message', () => {
        d.seen = Math.max(d.seen, lastPosOf(c));
      });
    };

    async function connect(d: Device, after?: number): Promise<void> {
      const node = rnd.pick(nodes);
      // `after` may only go back from what the device (else the user) acknowledged.
      const acked = d.acked ?? userAcked(d.userId);
      const expected = after === undefined ? acked : Math.min(after, acked);
      const client = await deviceClient(node.url, d.userId, { deviceId: d.deviceId, ...(after !== undefined ? { after } : {}) });
      sessions.push(client);
      d.client = client;
      track(d);
      assert.equal(client.auth.resumeAfter, expected, fail(`${d.deviceId} resumeAfter (after=${after}, acked=${d.acked}, userAcked=${userAcked(d.userId)})`));
      assert.ok((client.auth.lastPos as number) >= expected, fail('lastPos ≥ resumeAfter'));
    }

    async function ack(d: Device, upTo: number): Promise<void> {
      d.client!.send({ type: 'ack', upTo });
      const target = Math.max(d.acked ?? 0, upTo);
      d.acked = target;
      // The ack has no reply: wait until storage holds it, so the model's resume points are exact.
      await waitFor(
        async () => (await store.syncState(DEFAULT_TENANT, d.userId, d.deviceId)).deviceAckedPos === target,
        10_000,
        `${d.deviceId}'s ack of ${target} to be stored`,
        5,
      );
    }

    function send(from: Device, target: string | { conversationId: string }, group: boolean): void {
      const what = `${from.deviceId} → ${typeof target === 'string' ? target.slice(0, 8) : `group ${target.conversationId.slice(0, 8)}`}`;
      inFlight.push({ reply: say(from.client!, target, `${what} #${log.length}`), group, what });
    }

    async function settle(): Promise<void> {
      const batch = inFlight.splice(0);
      for (const { reply, group, what } of batch) {
        const r = await reply;
        // A group message may race a removal of its sender (then forbidden); a direct one must be stored.
        if (r.type !== 'message_sent') assert.ok(group && r.type === 'error' && r.reason === 'forbidden', fail(`${what}: ${JSON.stringify(r)}`));
      }
    }

    /** A group change by `actor` (a member with an open session); updates the model from the reply. */
    async function groupChange(actor: Device, frame: Record<string, unknown>): Promise<Frame> {
      const reply = await ask(actor.client!, frame);
      assert.equal(reply.type, 'group_updated', fail(`${String(frame.type)}: ${JSON.stringify(reply)}`));
      return reply;
    }

    const opWeights: [string, number][] = [
      ['connect', 12],
      ['disconnect', 8],
      ['ack', 10],
      ['direct', 35],
      ['groupSend', 20],
      ['create', 4],
      ['add', 5],
      ['remove', 4],
      ['leave', 2],
    ];
    const totalWeight = opWeights.reduce((n, [, w]) => n + w, 0);
    const pickOp = (): string => {
      let x = rnd.int(totalWeight);
      for (const [op, w] of opWeights) if ((x -= w) < 0) return op;
      return 'direct';
    };

    // Every user starts with its first device online.
    for (const d of devices.filter((_, i) => i % DEVICES === 0)) await connect(d);

    for (let i = 0; i < OPERATIONS; i++) {
      const op = pickOp();
      const on = online();
      let done = op;
      switch (op) {
        case 'connect': {
          const d = offline();
          if (d.length === 0) break;
          const dev = rnd.pick(d);
          const after = rnd.chance(0.3) ? rnd.int(dev.seen + 1) : undefined;
          done = `connect ${dev.deviceId}${after !== undefined ? ` after ${after}` : ''}`;
          log.push(done);
          await connect(dev, after);
          break;
        }
        case 'disconnect': {
          if (on.length <= 2) break;
          const dev = rnd.pick(on);
          done = `disconnect ${dev.deviceId}`;
          log.push(done);
          await settle(); // its sends answered first
          const c = dev.client!;
          dev.client = undefined;
          await c.close();
          break;
        }
        case 'ack': {
          if (on.length === 0) break;
          const dev = rnd.pick(on);
          const last = lastPosOf(dev.client!);
          if (last === 0) break;
          const upTo = 1 + rnd.int(last);
          done = `ack ${dev.deviceId} ${upTo}`;
          log.push(done);
          await ack(dev, upTo);
          break;
        }
        case 'direct': {
          if (on.length === 0) break;
          const from = rnd.pick(on);
          const to = rnd.chance(0.05) ? from.userId : rnd.pick(users);
          send(from, to, false);
          done = `direct ${from.deviceId} → ${users.indexOf(to)}`;
          log.push(done);
          break;
        }
        case 'groupSend': {
          const candidates = [...groups].flatMap(([cid, g]) => [...g.members].flatMap((m) => onlineOf(m).map((d) => ({ cid, d }))));
          if (candidates.length === 0) break;
          const { cid, d } = rnd.pick(candidates);
          send(d, { conversationId: cid }, true);
          done = `group ${d.deviceId} → ${cid.slice(0, 8)}`;
          log.push(done);
          break;
        }
        case 'create': {
          if (groups.size >= 3 || on.length === 0) break;
          const actor = rnd.pick(on);
          const others = users.filter((u) => u !== actor.userId && rnd.chance(0.5));
          done = `create by ${actor.deviceId} with ${others.map((u) => users.indexOf(u)).join(',')}`;
          log.push(done);
          const reply = await groupChange(actor, { type: 'create_group', name: `g${i}`, memberIds: others });
          groups.set(String(reply.conversationId), { owner: actor.userId, members: new Set([actor.userId, ...others]) });
          break;
        }
        case 'add':
        case 'remove': {
          const choices = [...groups].filter(([, g]) => onlineOf(g.owner).length > 0);
          if (choices.length === 0) break;
          const [cid, g] = rnd.pick(choices);
          const pool = op === 'add' ? users.filter((u) => !g.members.has(u)) : [...g.members].filter((u) => u !== g.owner);
          if (pool.length === 0) break;
          const who = rnd.pick(pool);
          done = `${op} ${users.indexOf(who)} in ${cid.slice(0, 8)}`;
          log.push(done);
          const reply = await groupChange(rnd.pick(onlineOf(g.owner)), { type: op === 'add' ? 'add_members' : 'remove_members', conversationId: cid, userIds: [who] });
          assert.equal(reply.changed, true, fail(done));
          if (op === 'add') g.members.add(who);
          else g.members.delete(who);
          break;
        }
        case 'leave': {
          const choices = [...groups].flatMap(([cid, g]) => [...g.members].flatMap((m) => onlineOf(m).map((d) => ({ cid, g, d }))));
          if (choices.length === 0) break;
          const { cid, g, d } = rnd.pick(choices);
          done = `leave ${d.deviceId} from ${cid.slice(0, 8)}`;
          log.push(done);
          const reply = await groupChange(d, { type: 'leave_group', conversationId: cid });
          g.members.delete(d.userId);
          if (g.members.size === 0) groups.delete(cid);
          else if (g.owner === d.userId) {
            // The leaver's own session gets the `left` event; it names the new owner.
            const ev = await d.client!.next((f) => f.type === 'membership' && f.conversationId === cid && f.seq === reply.seq);
            assert.ok(typeof ev.newOwnerId === 'string' && g.members.has(ev.newOwnerId), fail(`newOwnerId ${String(ev.newOwnerId)}`));
            g.owner = ev.newOwnerId as string;
          }
          break;
        }
      }
      counts[done.split(' ')[0]!] = (counts[done.split(' ')[0]!] ?? 0) + 1;
      if (inFlight.length >= MAX_IN_FLIGHT) await settle();
    }
    await settle();
    t.diagnostic(`operations: ${JSON.stringify(counts)}`);

    // Quiescence: every open session reaches its user's last position.
    const timelines = new Map<string, Map<number, string>>();
    for (const userId of users) {
      const page = await store.timeline(DEFAULT_TENANT, userId, 0, 100_000);
      const byPos = new Map(page.entries.map((e) => [e.pos, e.event.id]));
      assert.deepEqual(page.entries.map((e) => e.pos), Array.from({ length: page.lastPos }, (_, k) => k + 1), fail('storage timeline is contiguous'));
      timelines.set(userId, byPos);
    }
    for (const d of online()) {
      const lastPos = timelines.get(d.userId)!.size;
      await waitFor(() => lastPosOf(d.client!) >= lastPos, 15_000, fail(`${d.deviceId} to reach pos ${lastPos} (at ${lastPosOf(d.client!)})`));
    }

    // Every session ever opened: exactly the timeline from its resume point.
    let checked = 0;
    for (const s of sessions) {
      const timeline = timelines.get(s.userId)!;
      const from = Number(s.auth.resumeAfter);
      const stream = streamOf(s);
      assert.deepEqual(
        stream.map((i) => i.pos),
        stream.map((_, k) => from + 1 + k),
        fail(`a session of ${s.userId.slice(0, 8)} (resume ${from}): pos stream ${JSON.stringify(stream.map((i) => i.pos))}`),
      );
      for (const item of stream) assert.equal(item.id, timeline.get(item.pos), fail(`event at pos ${item.pos} of ${s.userId.slice(0, 8)}`));
      if (s.closeCode === undefined) assert.equal(stream.length === 0 ? from : stream[stream.length - 1]!.pos, timeline.size, fail('an open session reached the end'));
      const unexpected = s.frames.filter((f: Frame) => f.type === 'timeline_pruned' || (f.type === 'error' && f.reason !== 'forbidden'));
      assert.deepEqual(unexpected, [], fail('no pruned notice, no error'));
      checked += stream.length;
    }
    t.diagnostic(`sessions: ${sessions.length}; timeline events checked: ${checked}; timeline lengths: ${users.map((u) => timelines.get(u)!.size).join(',')}`);
    assert.ok(checked > OPERATIONS / 2, 'the run exercised delivery');
  });
});
