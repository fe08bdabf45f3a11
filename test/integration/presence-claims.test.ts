/**
 * Presence claims of dead nodes (src/presence/presence-state.ts) must survive what can go wrong
 * between the claim and the check, or a user whose last session was on a dead node stays shown
 * online for ever (protocol.md §6a promises offline within about nodeLivenessMs +
 * nodeLivenessMs / 3 + chat.presenceDebounceMs):
 *
 * - the sweep that claimed them ran in Redis but its reply never came (a connection drop): the next
 *   sweep of the same node returns them again, until their check ran;
 * - the node that claimed them died before their check ran: the next survivor claims them, as it
 *   claims the dead node's own users — and so does a node of the previous build (rolling upgrade),
 *   whose sweep only knows `presence:n:<node>`;
 * - a node of the previous build that sweeps a dead node of this build takes (and checks) its users
 *   but leaves its claim set `presence:c:<node>`: a sweep of this build takes that over too (checks
 *   the users once more, then settles them), so it does not stay in Redis for good — but never the
 *   claim set of a node still recorded;
 * - the node that held their last session was killed and restarted under the same nodeId before
 *   anybody took it for dead: its new life claims what its previous life left, and checks it (a user
 *   who opened a session on it since is simply restated online).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { REDIS_URL, dropRedisPrefix, newUserId, uniqueRedisPrefix, waitFor } from '../helpers/harness.js';
import { PresenceService } from '../../src/presence/presence-service.js';
import { RedisPresenceState } from '../../src/presence/presence-state.js';

const noop = (): void => {};

function state(prefix: string, nodeId: string): RedisPresenceState {
  return new RedisPresenceState({ redisUrl: REDIS_URL, keyPrefix: prefix, nodeId, ping: { intervalMs: 0, timeoutMs: 1000 } });
}

/** A presence service whose registry counts sessions from `sessions` (nobody else holds any). */
function service(s: RedisPresenceState, sessions: Map<string, number> = new Map()): PresenceService {
  return new PresenceService({
    store: { presenceSettings: async () => new Map(), contactsOf: async () => [] } as never,
    bus: { publish: noop } as never,
    registry: { countUser: async (userKey: string) => sessions.get(userKey) ?? 0 } as never,
    state: s,
    debounceMs: 50,
    defaultVisible: true,
    sweepMs: 100,
    onError: noop,
  });
}

/** What a node that died holding the only session of `userKey` leaves: recorded, shown online, no liveness key. */
async function deadNodeHolding(redis: Redis, prefix: string, node: string, userKey: string): Promise<void> {
  await redis.set(`${prefix}:presence:gen`, 'gen-1', 'NX');
  await redis.sadd(`${prefix}:presence:n:${node}`, userKey);
  await redis.set(`${prefix}:presence:u:${userKey}`, '1');
  await redis.sadd(`${prefix}:presence:nodes`, node);
}

/** The sweep of the previous build (before claim sets), run as an old node would. */
const OLD_SWEEP_LUA = `
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if n ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. n) == 0 then
    redis.call('SREM', KEYS[1], n)
    for _, u in ipairs(redis.call('SMEMBERS', ARGV[3] .. n)) do out[#out + 1] = u end
    redis.call('DEL', ARGV[3] .. n)
  end
end
return out
`;

test('a claim whose sweep reply was lost is returned again by the next sweep, until the user was checked', async () => {
  const prefix = uniqueRedisPrefix('prclaim');
  const redis = new Redis(REDIS_URL);
  const a = state(prefix, `a-${randomUUID().slice(0, 8)}`);
  const userKey = `default:${newUserId()}`;
  try {
    await deadNodeHolding(redis, prefix, `dead-${randomUUID().slice(0, 8)}`, userKey);
    assert.deepEqual(await a.sweep(), [userKey], 'the dead node is claimed');
    // As if that reply had been lost: nothing was scheduled, the next sweep must still say so.
    assert.deepEqual(await a.sweep(), [userKey], 'the unchecked claim is returned again');
    a.track(userKey, false); // what the check does once it ran
    assert.deepEqual(await a.sweep(), [], 'a checked claim is settled');
  } finally {
    await a.close();
    await dropRedisPrefix(redis, prefix);
    redis.disconnect();
  }
});

test('a user claimed by a node that died before checking them goes offline through the next survivor', { timeout: 15_000 }, async () => {
  const prefix = uniqueRedisPrefix('prclaim');
  const redis = new Redis(REDIS_URL);
  const aId = `a-${randomUUID().slice(0, 8)}`;
  const a = state(prefix, aId);
  const userKey = `default:${newUserId()}`;
  let b: PresenceService | undefined;
  try {
    await redis.set(`${prefix}:node:${aId}`, '1', 'PX', 60_000); // A is alive while it sweeps
    await deadNodeHolding(redis, prefix, `dead-${randomUUID().slice(0, 8)}`, userKey);
    assert.deepEqual(await a.sweep(), [userKey]);
    // A dies before its check ran: no close of a service, its liveness key goes.
    await a.close();
    await redis.del(`${prefix}:node:${aId}`);
    b = service(state(prefix, `b-${randomUUID().slice(0, 8)}`));
    await waitFor(async () => (await redis.exists(`${prefix}:presence:u:${userKey}`)) === 0, 5000, 'the user published offline by the survivor');
    assert.equal(await redis.exists(`${prefix}:presence:c:${aId}`), 0, 'the dead sweeper\'s claims were taken');
  } finally {
    await b?.close();
    await dropRedisPrefix(redis, prefix);
    redis.disconnect();
  }
});

test('a node of the previous build finds the claims of a dead node among its users', async () => {
  const prefix = uniqueRedisPrefix('prclaim');
  const redis = new Redis(REDIS_URL);
  const aId = `a-${randomUUID().slice(0, 8)}`;
  const a = state(prefix, aId);
  const userKey = `default:${newUserId()}`;
  try {
    await redis.set(`${prefix}:node:${aId}`, '1', 'PX', 60_000);
    await deadNodeHolding(redis, prefix, `dead-${randomUUID().slice(0, 8)}`, userKey);
    assert.deepEqual(await a.sweep(), [userKey]);
    await a.close();
    await redis.del(`${prefix}:node:${aId}`);
    const old = (await redis.eval(OLD_SWEEP_LUA, 1, `${prefix}:presence:nodes`, 'old-node', `${prefix}:node:`, `${prefix}:presence:n:`)) as string[];
    assert.deepEqual(old, [userKey], 'the old sweep returns the unchecked claim');
  } finally {
    await dropRedisPrefix(redis, prefix);
    redis.disconnect();
  }
});

test('a node restarted under its id checks the users its previous life left; one connected since stays online', { timeout: 15_000 }, async () => {
  const prefix = uniqueRedisPrefix('prclaim');
  const redis = new Redis(REDIS_URL);
  const nodeId = `r-${randomUUID().slice(0, 8)}`;
  const gone = `default:${newUserId()}`;
  const back = `default:${newUserId()}`;
  let svc: PresenceService | undefined;
  try {
    // The previous life (killed) held both users; its liveness key is the new life's now.
    await redis.set(`${prefix}:node:${nodeId}`, '1', 'PX', 60_000);
    await deadNodeHolding(redis, prefix, nodeId, gone);
    await deadNodeHolding(redis, prefix, nodeId, back);
    svc = service(state(prefix, nodeId));
    svc.changed(back, true); // `back` opened a session on the new life at once
    await waitFor(async () => (await redis.exists(`${prefix}:presence:u:${gone}`)) === 0, 5000, 'the previous life\'s user published offline');
    await waitFor(async () => (await redis.scard(`${prefix}:presence:c:${nodeId}`)) === 0, 5000, 'every claim settled');
    assert.equal(await redis.exists(`${prefix}:presence:u:${back}`), 1, 'the user connected to the new life is still online');
    assert.deepEqual(await redis.smembers(`${prefix}:presence:n:${nodeId}`), [back], 'only the user held here stays recorded for the node');
  } finally {
    await svc?.close();
    await dropRedisPrefix(redis, prefix);
    redis.disconnect();
  }
});

test('rolling upgrade: the claim set of a node swept by a node of the previous build is taken over and settled; a recorded node\'s is not', { timeout: 15_000 }, async () => {
  const prefix = uniqueRedisPrefix('prclaim');
  const redis = new Redis(REDIS_URL);
  const aId = `a-${randomUUID().slice(0, 8)}`;
  const liveId = `l-${randomUUID().slice(0, 8)}`;
  const a = state(prefix, aId);
  const live = state(prefix, liveId);
  const userKey = `default:${newUserId()}`;
  const liveUser = `default:${newUserId()}`;
  let b: PresenceService | undefined;
  try {
    await redis.set(`${prefix}:node:${aId}`, '1', 'PX', 60_000);
    await redis.set(`${prefix}:node:${liveId}`, '1', 'PX', 60_000);
    // A (this build) claims a dead node's user, then dies before its check ran.
    await deadNodeHolding(redis, prefix, `dead-${randomUUID().slice(0, 8)}`, userKey);
    assert.deepEqual(await a.sweep(), [userKey]);
    // A live node of this build holds an unchecked claim of its own.
    await deadNodeHolding(redis, prefix, `dead-${randomUUID().slice(0, 8)}`, liveUser);
    assert.deepEqual(await live.sweep(), [liveUser]);
    await a.close();
    await redis.del(`${prefix}:node:${aId}`);
    // A node of the previous build sweeps A: it takes (and checks) A's users, not A's claim set.
    const old = (await redis.eval(OLD_SWEEP_LUA, 1, `${prefix}:presence:nodes`, 'old-node', `${prefix}:node:`, `${prefix}:presence:n:`)) as string[];
    assert.deepEqual(old, [userKey]);
    assert.equal(await redis.exists(`${prefix}:presence:c:${aId}`), 1, 'the old sweep left the claim set');
    // A node of this build sweeps next.
    const bId = `b-${randomUUID().slice(0, 8)}`;
    await redis.set(`${prefix}:node:${bId}`, '1', 'PX', 60_000);
    b = service(state(prefix, bId));
    await waitFor(async () => (await redis.exists(`${prefix}:presence:c:${aId}`)) === 0, 5000, 'the orphaned claim set taken over');
    await waitFor(async () => (await redis.exists(`${prefix}:presence:c:${bId}`)) === 0, 5000, 'the taken claims checked and settled');
    assert.equal(await redis.exists(`${prefix}:presence:u:${userKey}`), 0, 'the user is offline');
    assert.deepEqual(await redis.smembers(`${prefix}:presence:c:${liveId}`), [liveUser], 'a recorded node keeps its claims');
    // The index: nodes that may have claims (a node leaves it at its first sweep with none).
    await waitFor(async () => (await redis.smembers(`${prefix}:presence:claimants`)).join() === liveId, 5000, 'the index lists only the node with claims');
  } finally {
    await b?.close();
    await live.close();
    await dropRedisPrefix(redis, prefix);
    redis.disconnect();
  }
});
