/**
 * A node taken for dead while cut from Redis must record its users again and have them checked
 * once it is back (src/presence/presence-state.ts, `rejoin`; protocol.md §6a) — also when its own
 * sweep, just before, claimed the users of another dead node. That sweep records the node in
 * `presence:nodes` again and fills its user set with the dead node's users, so "recorded, with a
 * set at least as large as the users held here" no longer means "nothing was taken". Otherwise
 * its own users are recorded for no node: shown offline while still connected to it (another node
 * published them offline when it claimed them), and shown online for good once it dies (nobody
 * claims them).
 *
 * Also guarded: a node that was never taken for dead does not record its users again, nor have
 * them checked, when its sweep claims a dead node (the common case costs one round trip).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { REDIS_URL, dropRedisPrefix, newUserId, uniqueRedisPrefix, waitFor } from '../helpers/harness.js';
import { RedisPresenceState } from '../../src/presence/presence-state.js';
import { PresenceService } from '../../src/presence/presence-service.js';

const noop = (): void => {};
const LIVE_MS = 600_000;

function state(prefix: string, nodeId: string): RedisPresenceState {
  return new RedisPresenceState({ redisUrl: REDIS_URL, keyPrefix: prefix, nodeId, ping: { intervalMs: 0, timeoutMs: 1000 } });
}

/** Waits for the state's connection (its offline queue is off: a command before it fails). */
async function connected(...states: RedisPresenceState[]): Promise<void> {
  for (const st of states) {
    await waitFor(
      () => st.states(['check:connection']).then(
        () => true,
        () => false,
      ),
      5000,
      'connected to Redis',
    );
  }
}

/** Runs `work`, counting the MULTIs made on any Redis connection meanwhile, and the SADDs in them. */
async function counted<T>(work: () => Promise<T>): Promise<{ result: T; transactions: number; sadds: number }> {
  const proto = Redis.prototype as unknown as { multi: (...a: unknown[]) => unknown };
  const real = proto.multi;
  let transactions = 0;
  let sadds = 0;
  proto.multi = function (this: unknown, ...a: unknown[]) {
    transactions++;
    const pipeline = real.apply(this, a) as { sadd: (...x: unknown[]) => unknown };
    const sadd = pipeline.sadd;
    pipeline.sadd = function (this: unknown, ...x: unknown[]) {
      sadds++;
      return sadd.apply(this, x);
    };
    return pipeline;
  };
  try {
    return { result: await work(), transactions, sadds };
  } finally {
    proto.multi = real;
  }
}

const nodeId = (name: string): string => `${name}-${randomUUID().slice(0, 8)}`;
const user = (): string => `default:${newUserId()}`;
const writesLand = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

interface World {
  prefix: string;
  redis: Redis;
  alive(id: string): Promise<void>;
  dead(id: string): Promise<void>;
  /** A node that died holding `users` (recorded for it, its liveness key gone). */
  deadHolding(id: string, users: string[]): Promise<void>;
  recordedFor(id: string): Promise<string[]>;
}

async function world(): Promise<World> {
  const prefix = uniqueRedisPrefix('prejoin');
  const redis = new Redis(REDIS_URL);
  await redis.set(`${prefix}:presence:gen`, 'gen-1', 'NX');
  return {
    prefix,
    redis,
    alive: async (id) => void (await redis.set(`${prefix}:node:${id}`, '1', 'PX', LIVE_MS)),
    dead: async (id) => void (await redis.del(`${prefix}:node:${id}`)),
    async deadHolding(id, users) {
      await redis.sadd(`${prefix}:presence:nodes`, id);
      await redis.sadd(`${prefix}:presence:n:${id}`, ...users);
    },
    recordedFor: async (id) => (await redis.smembers(`${prefix}:presence:n:${id}`)).sort(),
  };
}

test('users of a node taken for dead are recorded again when its own sweep also claimed a dead node', async () => {
  const w = await world();
  const nId = nodeId('n');
  const sId = nodeId('s');
  const dId = nodeId('d');
  const n = state(w.prefix, nId);
  const s = state(w.prefix, sId);
  const alice = user(); // connected to N throughout
  const [d1, d2] = [user(), user()]; // held on D
  try {
    await connected(n, s);
    for (const id of [nId, sId, dId]) await w.alive(id);
    await n.sweep();
    await s.sweep();
    n.track(alice, true);
    await w.deadHolding(dId, [d1, d2]);
    await writesLand();

    // N is cut from Redis past its liveness: S takes it for dead, claims Alice, checks her.
    await w.dead(nId);
    assert.deepEqual(await s.sweep(), [alice]);
    s.track(alice, false);
    // N is back; meanwhile D died. N's sweep claims D's users, then N rejoins (PresenceService.#sweep).
    await w.alive(nId);
    await w.dead(dId);
    assert.deepEqual((await n.sweep()).sort(), [d1, d2].sort());
    assert.equal(await n.rejoin(new Set([alice])), true, 'N\'s users were taken: they are to be checked again');
    assert.deepEqual(await w.recordedFor(nId), [alice, d1, d2].sort(), 'Alice is recorded for N again');
    assert.equal(await n.rejoin(new Set([alice])), false, 'once recorded again, nothing more to do');

    // N dies for real: the survivor claims Alice with D's users.
    await w.dead(nId);
    assert.ok((await s.sweep()).includes(alice), 'the survivor claims Alice');
  } finally {
    await n.close();
    await s.close();
    await dropRedisPrefix(w.redis, w.prefix);
    w.redis.disconnect();
  }
});

test('users of a node taken for dead are recorded again when a new session and its sweep refilled its set', async () => {
  const w = await world();
  const nId = nodeId('n');
  const sId = nodeId('s');
  const dId = nodeId('d');
  const n = state(w.prefix, nId);
  const s = state(w.prefix, sId);
  const [alice, bob, carol] = [user(), user(), user()];
  const [d1, d2] = [user(), user()];
  try {
    await connected(n, s);
    for (const id of [nId, sId, dId]) await w.alive(id);
    await n.sweep();
    await s.sweep();
    n.track(alice, true);
    n.track(bob, true);
    await w.deadHolding(dId, [d1, d2]);
    await writesLand();

    await w.dead(nId);
    assert.deepEqual((await s.sweep()).sort(), [alice, bob].sort());
    s.track(alice, false);
    s.track(bob, false);
    await w.alive(nId);
    n.track(carol, true); // a session opens on N once it is back: N is recorded again by it
    await writesLand();
    await w.dead(dId);
    await n.sweep(); // N's set: carol, d1, d2 — as many as its three local users
    assert.equal(await n.rejoin(new Set([alice, bob, carol])), true);
    assert.deepEqual(await w.recordedFor(nId), [alice, bob, carol, d1, d2].sort());
  } finally {
    await n.close();
    await s.close();
    await dropRedisPrefix(w.redis, w.prefix);
    w.redis.disconnect();
  }
});

test('a node never taken for dead does not record its users again when its sweep claims a dead node', async () => {
  const w = await world();
  const nId = nodeId('n');
  const dId = nodeId('d');
  const n = state(w.prefix, nId);
  const local = [user(), user(), user()];
  try {
    await connected(n);
    for (const id of [nId, dId]) await w.alive(id);
    await n.sweep();
    for (const u of local) n.track(u, true);
    await writesLand();
    assert.equal(await n.rejoin(new Set(local)), false);
    await w.deadHolding(dId, [user()]);
    await w.dead(dId);
    assert.equal((await n.sweep()).length, 1, 'the dead node is claimed');
    const calls = await counted(() => n.rejoin(new Set(local)));
    assert.equal(calls.result, false, 'nothing was taken: no check of every local user');
    assert.deepEqual({ transactions: calls.transactions, sadds: calls.sadds }, { transactions: 1, sadds: 0 }, 'one read, no user written again');
  } finally {
    await n.close();
    await dropRedisPrefix(w.redis, w.prefix);
    w.redis.disconnect();
  }
});

test('a connected user published offline while their node was taken for dead is shown online again', { timeout: 15_000 }, async () => {
  const w = await world();
  const nId = nodeId('n');
  const dId = nodeId('d');
  const nState = state(w.prefix, nId);
  const alice = user();
  const d1 = user();
  const online = async (u: string): Promise<boolean> => (await w.redis.exists(`${w.prefix}:presence:u:${u}`)) === 1;
  let n: PresenceService | undefined;
  try {
    await connected(nState);
    for (const id of [nId, dId]) await w.alive(id);
    await w.deadHolding(dId, [d1]);
    n = new PresenceService({
      store: { presenceSettings: async () => new Map(), contactsOf: async () => [] } as never,
      bus: { publish: noop } as never,
      // D's user cannot be counted for now (their check fails and is retried, their claim stays).
      registry: {
        countUser: async (u: string) => {
          if (u === d1) throw new Error('registry away');
          return 0;
        },
      } as never,
      state: nState,
      debounceMs: 50,
      defaultVisible: true,
      sweepMs: 100,
      onError: noop,
    });
    n.changed(alice, true);
    await waitFor(() => online(alice), 5000, 'Alice shown online');

    // At once, as N sees it on its next sweep: another node took N for dead (cut from Redis),
    // claimed Alice and published her offline (its count did not see N's sessions); and D died.
    await w.redis
      .multi()
      .srem(`${w.prefix}:presence:nodes`, nId)
      .del(`${w.prefix}:presence:n:${nId}`)
      .del(`${w.prefix}:presence:u:${alice}`)
      .del(`${w.prefix}:node:${dId}`)
      .exec();
    await waitFor(async () => (await w.recordedFor(nId)).includes(d1), 5000, 'N\'s sweep claims D\'s user');
    await waitFor(() => online(alice), 5000, 'Alice, still connected to N, shown online again');
    assert.ok((await w.recordedFor(nId)).includes(alice), 'and recorded for N');
  } finally {
    await n?.close();
    await dropRedisPrefix(w.redis, w.prefix);
    w.redis.disconnect();
  }
});
