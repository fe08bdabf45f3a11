/**
 * The presence state on Redis, for a cluster (the port: presence-state.ts). Each node records which
 * users it holds sessions for, so that when a node dies (its liveness key, kept by the connection
 * registry, expires) one surviving node claims its users and re-checks them.
 *
 * A claim is kept in Redis until its check has run: the claiming node moves the dead node's users
 * into its own user set (`presence:n:<self>`, so that if it dies too, the next survivor claims them
 * with its own users — a node of the previous build included) and into its claim set
 * (`presence:c:<self>`, the checks it still owes). Every sweep returns the whole claim set, so a
 * sweep whose reply was lost loses nothing; a user leaves it once checked. A node restarted under
 * the same id claims, on its first sweep, the users its previous life left in `presence:n:<self>`.
 * A node of the previous build that sweeps a dead node takes only its user set (and checks those
 * users, claims included) and leaves its claim set: every node with a claim set is listed in
 * `presence:claimants` (kept by the sweep), and a sweep also claims the claim set of each one
 * listed there that is no longer in `presence:nodes` (its users are checked once more).
 *
 * A node taken for dead while cut from Redis (its users claimed by another node, perhaps published
 * offline) records them again and has them checked (`rejoin`). It knows it was taken when an SADD
 * of itself to `presence:nodes` (a new session's, or its own sweep's when that claims a dead node)
 * answers that it was not there, after it had been: the size of its user set cannot tell, as its
 * own sweep may have filled it with a dead node's users meanwhile.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createRedisClient, type BackendErrorHandler } from '../limits/redis-health.js';
import { quitRedis } from '../redis/quit.js';
import { watchLiveness, type RedisLiveness } from '../redis/liveness.js';
import type { PresenceState } from './presence-state.js';

const SWAP_LUA = `
-- KEYS[1]: the user's state key, KEYS[2]: the generation marker. ARGV[1]: '1' online, '0' offline,
-- ARGV[2]: the generation this node knows. Returns 1 when it changed, -1 when the generation is
-- not the one known (the states were lost: Redis restarted empty or its keys were deleted).
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return -1 end
local cur = redis.call('EXISTS', KEYS[1])
if ARGV[1] == '1' then
  if cur == 1 then return 0 end
  redis.call('SET', KEYS[1], '1')
  return 1
end
if cur == 0 then return 0 end
redis.call('DEL', KEYS[1])
return 1
`;

const SWEEP_LUA = `
-- KEYS[1]: set of nodes holding sessions, KEYS[2]: nodes that may have a claim set.
-- ARGV[1]: own node, ARGV[2]: liveness key prefix,
-- ARGV[3]: per-node user set prefix, ARGV[4]: per-node claim set prefix, ARGV[5]: '1' on the first
-- sweep of this life. Claims every dead node: its users, and the claims it had not checked, move to
-- our user set (a claim of a node that dies too is claimed with its users) and our claim set.
-- Returns {1 if it recorded us in KEYS[1] (we were not: taken for dead, or never recorded), 0 if
-- we were there already, -1 if it did not look; then our claim set (claims whose checks have not
-- run: a reply lost here loses none)...}.
local mine = ARGV[3] .. ARGV[1]
local claims = ARGV[4] .. ARGV[1]
local took = false
if ARGV[5] == '1' and redis.call('EXISTS', mine) == 1 then
  -- Users a previous life of our id left (killed, then restarted before it was taken for dead).
  redis.call('SUNIONSTORE', claims, claims, mine)
  took = true
end
-- A dead node's set (its users, or its claims) becomes ours: our users and our claims.
local function take(set)
  if redis.call('EXISTS', set) == 1 then
    redis.call('SUNIONSTORE', mine, mine, set)
    redis.call('SUNIONSTORE', claims, claims, set)
    redis.call('DEL', set)
    took = true
  end
end
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if n ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. n) == 0 then
    redis.call('SREM', KEYS[1], n)
    take(ARGV[3] .. n)
    take(ARGV[4] .. n)
    redis.call('SREM', KEYS[2], n)
  end
end
-- Claim sets of nodes no longer recorded, yet not claimed: a node of the previous build swept them
-- (its sweep takes the user set only). Claimed as above: checked once more, then settled.
for _, n in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if n ~= ARGV[1] and redis.call('SISMEMBER', KEYS[1], n) == 0 then
    take(ARGV[4] .. n)
    redis.call('SREM', KEYS[2], n)
  end
end
local recorded = -1
if took then recorded = redis.call('SADD', KEYS[1], ARGV[1]) end
if redis.call('EXISTS', claims) == 1 then
  redis.call('SADD', KEYS[2], ARGV[1])
else
  redis.call('SREM', KEYS[2], ARGV[1])
end
local out = redis.call('SMEMBERS', claims)
table.insert(out, 1, recorded)
return out
`;

/** Users re-added per SADD when a node rejoins. */
const REJOIN_CHUNK = 1000;

interface PresenceScripts {
  rampartPresenceSwap(key: string, generation: string, online: string, known: string): Promise<number>;
  rampartPresenceSweep(nodes: string, claimants: string, nodeId: string, livePrefix: string, setPrefix: string, claimPrefix: string, first: '0' | '1'): Promise<[number, ...string[]]>;
}

export interface RedisPresenceOptions {
  redisUrl: string;
  /** Same prefix as the connection registry (its liveness keys are `${keyPrefix}:node:<nodeId>`). */
  keyPrefix: string;
  nodeId: string;
  onError?: BackendErrorHandler;
  /** Liveness PINGs on the connection (config `redisPingIntervalMs`, `redisPingTimeoutMs`), as on every Redis connection. */
  ping?: { intervalMs: number; timeoutMs: number };
  /**
   * After the states were lost, how long an offline flip waits before it is believed: until every
   * node has written its session counts back (one registry heartbeat) — till then a user still
   * connected elsewhere counts as gone. Default 5500 ms.
   */
  settleMs?: number;
  /**
   * How long after a loss an offline flip that finds no state is held back too (the user may have
   * been shown online before the loss): until every node re-checked its users. Default 16 000 ms.
   */
  recoverMs?: number;
  now?: () => number;
}

export class RedisPresenceState implements PresenceState {
  readonly #client: Redis;
  readonly #liveness: RedisLiveness;
  readonly #scripts: PresenceScripts;
  readonly #o: RedisPresenceOptions;
  readonly #nodes: string;
  readonly #mine: string;
  /** Users this node claimed (from dead nodes) whose checks have not run yet. */
  readonly #claims: string;
  /** No sweep of this life has succeeded yet (the first takes over a previous life's users). */
  #firstSweep = true;
  /** This life has seen this node recorded in `presence:nodes` (its own SADD, or a read). */
  #seen = false;
  /**
   * Since the last rejoin, this node was found gone from `presence:nodes` after it had been
   * recorded (an SADD of it added it back): another node took it for dead and claimed its users.
   * Its own sweep or a new session may have filled its user set again since, so that set's size
   * says nothing: `rejoin` records every local user again and has them checked.
   */
  #taken = false;
  /**
   * A write that records this node or its users failed, or a sweep's reply was lost (it may have
   * recorded this node unseen): `rejoin` makes sure every local user is recorded.
   */
  #doubt = false;
  /**
   * The published states live as long as the generation marker (`<prefix>:presence:gen`, a random
   * token the first node writes). Keys lost without a reconnect (a restart while this node was
   * between commands, a FLUSHDB, eviction) take it with them: the next swap sees another token (or
   * none), so an offline flip is published even though its key was gone (a contact may still show
   * the user online), and the node's users are checked again (`rejoin`).
   */
  readonly #generation: string;
  #known: string | undefined;
  #lost = false;
  /** Until when an offline flip that finds no state may be hiding a lost "online" (ms). */
  #recoveringUntil = 0;
  /** Users whose offline flip was held back after a loss, and since when. */
  readonly #unsure = new Map<string, number>();
  readonly #settleMs: number;
  readonly #recoverMs: number;
  readonly #now: () => number;

  constructor(o: RedisPresenceOptions) {
    this.#o = o;
    this.#client = createRedisClient(o.redisUrl, {}, o.onError);
    // A path that died silently would otherwise fail every check until TCP keepalive gives up.
    this.#liveness = watchLiveness(this.#client, 'presence', o.ping, (err) => o.onError?.(err, 'connection'));
    this.#client.defineCommand('rampartPresenceSwap', { lua: SWAP_LUA, numberOfKeys: 2 });
    this.#client.defineCommand('rampartPresenceSweep', { lua: SWEEP_LUA, numberOfKeys: 2 });
    this.#scripts = this.#client as unknown as PresenceScripts;
    this.#nodes = `${o.keyPrefix}:presence:nodes`;
    this.#mine = `${o.keyPrefix}:presence:n:${o.nodeId}`;
    this.#claims = `${o.keyPrefix}:presence:c:${o.nodeId}`;
    this.#generation = `${o.keyPrefix}:presence:gen`;
    this.#settleMs = o.settleMs ?? 5500;
    this.#recoverMs = o.recoverMs ?? 16_000;
    this.#now = o.now ?? Date.now;
  }

  async swap(userKey: string, online: boolean): Promise<boolean> {
    const key = this.#key(userKey);
    const flag = online ? '1' : '0';
    const known = this.#known;
    let changed = await this.#scripts.rampartPresenceSwap(key, this.#generation, flag, known ?? (await this.#adopt()));
    if (changed === -1) {
      // The generation this node wrote under is gone: the states were lost, and so, perhaps, the
      // session counts of every node (until their next heartbeat writes them back).
      if (known !== undefined) {
        this.#lost = true;
        this.#recoveringUntil = this.#now() + this.#recoverMs;
      }
      changed = await this.#scripts.rampartPresenceSwap(key, this.#generation, flag, await this.#adopt());
    }
    const now = this.#now();
    if (online) {
      this.#unsure.delete(userKey);
      return changed === 1;
    }
    if (changed === 1) {
      this.#unsure.delete(userKey);
      return true;
    }
    // No state to flip. Normally "already offline"; shortly after a loss, contacts may still show
    // the user online — but the count that said "offline" may itself be missing another node's
    // sessions. Held back, checked again once the counts are back (`due`), then published.
    const since = this.#unsure.get(userKey);
    if (since !== undefined && now - since >= this.#settleMs) {
      this.#unsure.delete(userKey);
      return true;
    }
    if (since === undefined && now < this.#recoveringUntil) this.#unsure.set(userKey, now);
    return false;
  }

  due(): string[] {
    const now = this.#now();
    const out: string[] = [];
    for (const [userKey, since] of this.#unsure) if (now - since >= this.#settleMs) out.push(userKey);
    return out;
  }

  holds(userKey: string): boolean {
    return this.#unsure.has(userKey);
  }

  releaseHeld(): string[] {
    for (const userKey of this.#unsure.keys()) this.#unsure.set(userKey, -Infinity);
    return [...this.#unsure.keys()];
  }

  /** The generation to write under: the one in Redis, or a new one when there is none. */
  async #adopt(): Promise<string> {
    const fresh = randomUUID();
    await this.#client.set(this.#generation, fresh, 'NX');
    this.#known = (await this.#client.get(this.#generation)) ?? fresh;
    return this.#known;
  }

  async states(userKeys: readonly string[]): Promise<boolean[]> {
    if (userKeys.length === 0) return [];
    const values = await this.#client.mget(...userKeys.map((k) => this.#key(k)));
    return values.map((v) => v !== null);
  }

  track(userKey: string, local: boolean): void {
    if (!local) {
      this.#client.multi().srem(this.#mine, userKey).srem(this.#claims, userKey).exec().catch((err: unknown) => this.#o.onError?.(err, 'presence'));
      return;
    }
    this.#client
      .multi()
      .sadd(this.#nodes, this.#o.nodeId)
      .sadd(this.#mine, userKey)
      .exec()
      .then((replies) => {
        const [node, user] = replies ?? [];
        const err = node?.[0] ?? user?.[0];
        if (err) throw err;
        if (node !== undefined) this.#noteRecorded(node[1] as number);
      })
      .catch((err: unknown) => {
        this.#doubt = true;
        this.#o.onError?.(err, 'presence');
      });
  }

  /** An SADD of this node to `presence:nodes` answered `added` (1: it was not there). */
  #noteRecorded(added: number): void {
    if (added === 1 && this.#seen) this.#taken = true;
    this.#seen = true;
  }

  checked(userKey: string): void {
    this.#client.srem(this.#claims, userKey).catch((err: unknown) => this.#o.onError?.(err, 'presence'));
  }

  async sweep(): Promise<string[]> {
    const first = this.#firstSweep ? '1' : '0';
    const p = this.#o.keyPrefix;
    let recorded: number;
    let claimed: string[];
    try {
      [recorded, ...claimed] = await this.#scripts.rampartPresenceSweep(this.#nodes, `${p}:presence:claimants`, this.#o.nodeId, `${p}:node:`, `${p}:presence:n:`, `${p}:presence:c:`, first);
    } catch (err) {
      // It may have run, and recorded this node again after it was taken for dead.
      this.#doubt = true;
      throw err;
    }
    // Once taken over, a previous life's users are in the claim set until checked.
    this.#firstSweep = false;
    if (recorded >= 0) this.#noteRecorded(recorded);
    return claimed;
  }

  async rejoin(local: ReadonlySet<string>): Promise<boolean> {
    const lost = this.#lost;
    const taken = this.#taken;
    const doubt = this.#doubt;
    this.#lost = this.#taken = this.#doubt = false;
    if (local.size === 0) return false;
    try {
      const [[, member], [, count]] = (await this.#client.multi().sismember(this.#nodes, this.#o.nodeId).scard(this.#mine).exec()) as [[unknown, number], [unknown, number]];
      if (member === 1) this.#seen = true;
      // Present, with a set at least as large as the users held here, and never found gone from
      // the nodes since the last look: nothing was taken away (one round trip for the common case).
      // Once taken, the set's size says nothing (this node's sweep may have filled it with the
      // users of a dead node): each local user is recorded again, SADD telling which were missing.
      if (member === 1 && count >= local.size && !lost && !taken && !doubt) return false;
      const users = [...local];
      const write = this.#client.multi().sadd(this.#nodes, this.#o.nodeId);
      for (let i = 0; i < users.length; i += REJOIN_CHUNK) write.sadd(this.#mine, ...users.slice(i, i + REJOIN_CHUNK));
      const replies = (await write.exec()) ?? [];
      let missing = 0;
      for (const [err, added] of replies.slice(1)) {
        if (err) throw err;
        missing += added as number;
      }
      this.#seen = true;
      return lost || taken || member !== 1 || missing > 0;
    } catch (err) {
      // Not settled: the next sweep looks again.
      if (lost) this.#lost = true;
      if (taken) this.#taken = true;
      if (doubt) this.#doubt = true;
      throw err;
    }
  }

  async close(): Promise<void> {
    this.#liveness.stop();
    await quitRedis(this.#client);
  }

  #key(userKey: string): string {
    return `${this.#o.keyPrefix}:presence:u:${userKey}`;
  }
}
